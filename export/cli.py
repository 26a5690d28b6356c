"""Subcommands of edgevae.export (argument parsing only: torch and onnx are imported when they run)."""

from pathlib import Path


def register(sub) -> None:
    """Add the export package's subcommands to the `edgevae` parser's subparsers."""
    p = sub.add_parser("export", help="checkpoint -> model dir: fp32 encoder.onnx + decoder.onnx, validated, manifest.json")
    p.add_argument("checkpoint", type=Path, nargs="?", help="RUN/checkpoint.pt written by `edgevae train` (or --diffusers)")
    p.add_argument("--diffusers", type=Path, metavar="DIR", help="export a diffusers AutoencoderKL or AutoencoderTiny "
                   "save_pretrained folder instead (needs the diffusers extra; never downloads)")
    p.add_argument("--image-size", metavar="HxW", help="--diffusers: the native image size, a multiple of the "
                   "downsampling factor (default: the config's sample_size, at most 64)")
    p.add_argument("--out", type=Path, required=True, help="model dir to create (built in a temporary folder, renamed into place)")
    p.add_argument("--data-dir", help="Fashion-MNIST IDX folder for the parity check (default: the Debian folder if present, else seeded noise)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists and is not empty")
    p.add_argument("--ort-format", action="store_true", help="also write ORT-format .ort files and their required operators")

    p.add_argument("--static-batch", metavar="B1,B2", help="also write fixed-shape fp32 graphs at these batch sizes "
                   "(variants fp32-bN, for NNAPI and other NPUs)")
    p.set_defaults(run=_export, extra="export")

    p = sub.add_parser("check", help="which execution providers (NNAPI, CoreML, XNNPACK, QNN, CPU) could run each graph, "
                       "by onnxruntime's own usability checker (torch-free; needs onnx)")
    p.add_argument("--model", type=Path, help="model dir (default: the model shipped in the package)")
    p.add_argument("--target", choices=("nnapi", "coreml", "xnnpack", "qnn", "cpu", "all"), default="all",
                   help="execution provider to judge (default all)")
    p.add_argument("--json", action="store_true", help="print the record as JSON (the manifest's `targets` format)")
    p.set_defaults(run=_check, extra="check")

    # --- quantize (owned by export/quantize.py) ---
    p = sub.add_parser("quantize", help="add int8 / int8-dynamic / fp16 variants to a model dir, with their quality vs fp32")
    p.add_argument("model_dir", type=Path, help="model dir written by `edgevae export`")
    p.add_argument("--data-dir", help="Fashion-MNIST IDX folder (calibration and test images; default: the Debian folder)")
    p.add_argument("--data", metavar="SPEC", help="dataset spec for calibration and test images, as for train "
                   "(default: the one the model was trained on; images are fitted to its image_shape)")
    p.add_argument("--variants", default="int8,int8-dynamic,fp16", help="comma-separated: int8, int8-dynamic, fp16")
    p.add_argument("--calibration", choices=("minmax", "entropy", "percentile"),
                   help="int8 calibration for both graphs (default: minmax for the encoder, percentile 99.9 for the decoder)")
    p.add_argument("--per-channel", action="store_true", help="per-channel int8 weights (default per-tensor: as accurate here, and faster)")
    p.add_argument("--calibration-images", type=int, default=1024, help="training images used to calibrate int8 (default 1024)")
    p.add_argument("--test-images", type=int, default=2000, help="first N test images for the -ELBO comparison (default 2000)")
    p.add_argument("--nll-images", type=int, default=200,
                   help="first N test images for each variant's IWAE NLL cost vs fp32 (default 200; 0: skip)")
    p.add_argument("--nll-k", type=int, default=100, help="importance samples per image for the NLL cost (default 100)")
    p.add_argument("--select", action="store_true", help="time every variant at batch 1, 8, 64, 256 and record the fastest within budget")
    p.add_argument("--threads", type=int, help="intra-op threads for --select timings (default: the runtime's)")
    p.add_argument("--search", action="store_true", help="also search mixed precision (layers kept fp32, calibration, "
                   "per-channel, symmetric) and add the fastest candidate inside the budget as variant int8-mixed; "
                   "report: MODEL_DIR/quant-search.{json,md,png}")
    p.add_argument("--budget-psnr", type=float, metavar="DB", help="--search: decoder PSNR vs fp32 at least DB")
    p.add_argument("--budget-nats", type=float, metavar="N", help="--search: -ELBO at most N nats/image above fp32 "
                   "(with neither budget: --select's, 35 dB and 1%% of fp32 -ELBO)")
    p.add_argument("--min-speedup", type=float, default=2.0, metavar="X", help="--search: at least X times fp32's speed, "
                   "encoder + decoder at batch 64 (default 2)")
    p.add_argument("--search-budget-s", type=float, default=600.0, metavar="S", help="--search: wall-time bound (default 600)")
    p.add_argument("--static-batch", metavar="B1,B2", help="also write fixed-shape graphs of every variant at these "
                   "batch sizes (variants V-bN, for NNAPI and other NPUs; a rebuilt variant's are rebuilt too)")
    p.set_defaults(run=_quantize, extra="export")
    # --- end quantize ---


def _export(args) -> None:
    if (args.checkpoint is None) == (args.diffusers is None):
        raise ValueError("give a checkpoint or --diffusers DIR (one of them)")
    if args.image_size is not None and args.diffusers is None:
        raise ValueError("--image-size applies to --diffusers")
    if args.diffusers is not None:
        from .diffusers_import import main

        args.extra = "diffusers"  # what a missing module is installed with

        main(args)
        return
    from .exporter import main

    main(args)


def _check(args) -> None:
    from .check import main

    main(args)


def _quantize(args) -> None:
    from .quantize import main

    main(args)
