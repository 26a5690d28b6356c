"""Subcommand `bench` (argument parsing only: the benchmark imports torch, onnx and matplotlib when it runs)."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("bench", help="latency, throughput, roofline, cold start and size: runtime vs PyTorch")
    p.add_argument("--model", type=Path, help="model dir made by `edgevae export` (default: the model shipped in the package)")
    p.add_argument("--out", type=Path, help="folder for results.json, results.md and PNG plots (required unless --perf-test-data)")
    p.add_argument("--quick", action="store_true", help="batch 1 and 64, short runs, no torch.compile (under a minute)")
    p.add_argument("--checkpoint", type=Path,
                   help="RUN/checkpoint.pt for the PyTorch side (default: weights read from the fp32 graphs)")
    p.add_argument("--torch", metavar="MODULE:FACTORY",
                   help="your own PyTorch decoder for the PyTorch side: MODULE a module name or a .py file, FACTORY a "
                        "function in it returning the decoder you exported (or a VAE with a decode method)")
    p.add_argument("--perf-test-data", type=Path, metavar="DIR",
                   help="also write every graph and its seeded inputs in onnxruntime_perf_test's test_data_set layout "
                        "(alone, without --out: only that)")
    p.set_defaults(run=_bench, extra="bench")


def _bench(args) -> None:
    if args.out is None and args.perf_test_data is None:
        raise ValueError("pass --out DIR (the benchmark) and/or --perf-test-data DIR")
    if args.perf_test_data is not None:
        from .perf_test_data import write_perf_test_data

        paths = write_perf_test_data(args.model, args.perf_test_data)
        print(f"{len(paths)} graphs with inputs for onnxruntime_perf_test under {args.perf_test_data}")
    if args.out is not None:
        from .suite import main

        main(args)
