"""Subcommand `bench` (argument parsing only: the benchmark imports torch, onnx and matplotlib when it runs)."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("bench", help="latency, throughput, roofline, cold start and size: runtime vs PyTorch")
    p.add_argument("--model", type=Path, help="model dir made by `edgevae export` (default: the model shipped in the package)")
    p.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md and PNG plots")
    p.add_argument("--quick", action="store_true", help="batch 1 and 64, short runs, no torch.compile (under a minute)")
    p.add_argument("--checkpoint", type=Path,
                   help="RUN/checkpoint.pt for the PyTorch side (default: weights read from the fp32 graphs)")
    p.set_defaults(run=_bench, extra="bench")


def _bench(args) -> None:
    from .suite import main

    main(args)
