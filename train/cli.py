"""Subcommands `train` and `eval` (argument parsing only: PyTorch is imported when they run)."""

import os
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("train", help="train the VAE on Fashion-MNIST or another image set (--data)")
    p.add_argument("--data-dir", help="folder with the four Fashion-MNIST IDX files (raw or .gz)")
    _data_arguments(p)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoint.pt, config.json, metrics.json, grids")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--beta", type=float, help="KL weight in the optimised loss (default 1: the true ELBO)")
    p.add_argument("--kl-warmup-epochs", type=float, help="ramp beta linearly from 0 over this many epochs")
    p.add_argument("--lr-decay-epochs", type=float,
                   help="cosine-decay the learning rate to 1%% of --lr over this many epochs, then hold it (default 0: constant)")
    p.add_argument("--binarize", action="store_true", help="dynamic binarization; fixed binarized test set")
    p.add_argument("--latent-dim", type=int, default=64)
    p.add_argument("--limit-train", type=int, help="train on the first N training images only")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--processes", default="auto", type=_processes_arg,
                   help="data-parallel processes of one thread each on this machine; auto (default): one per usable "
                        "core on the CPU (holds its share of a busy machine), 1 with --device cuda")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="bf16 autocast for the network (loss and optimizer stay fp32); auto (default): whichever of fp32 "
                        "and (where the hardware has it) bf16 a short probe of the real step measures faster here")
    p.add_argument("--resume", action="store_true", help="continue after the last finished epoch in --out")
    p.set_defaults(run=_train, extra="train")

    p = sub.add_parser("eval", help="test -ELBO and IWAE NLL of a checkpoint (merged into its metrics.json) or a model dir")
    p.add_argument("target", metavar="CHECKPOINT|MODEL_DIR", type=Path,
                   help="RUN/checkpoint.pt, or a model dir (evaluated with onnxruntime + numpy, as devices run it)")
    p.add_argument("--variant", default="fp32", help="model dir variant to evaluate (fp32, int8, ...; default fp32)")
    p.add_argument("--engine", choices=("onnx", "torch"), default="onnx",
                   help="for a checkpoint: onnxruntime on a temporary fp32 export (default, faster) or PyTorch eager")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per worker (default 1)")
    p.add_argument("--workers", type=int,
                   help="worker processes for the onnx engine (default: usable cores / --threads); same figures for any count")
    p.add_argument("--data-dir")
    _data_arguments(p, "(default: what the checkpoint was trained on)")
    p.add_argument("--iwae-k", type=int, default=1000, help="importance samples per image (default 1000)")
    p.add_argument("--limit-test", type=int, help="evaluate the first N test images only")
    p.add_argument("--batch-size", type=int, default=20, help="images per IWAE batch")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.set_defaults(run=_eval, extra="train")


def _data_arguments(p, default: str = "(default fashion-mnist)") -> None:
    """--data, --image-size, --channels: the dataset spec of train/data.py (train, eval)."""
    p.add_argument("--data", metavar="SPEC", help="fashion-mnist, sklearn-digits, sklearn-patches, idx:TRAIN[,TEST], "
                   f"npy:TRAIN[,TEST], folder:DIR, or a path {default}")
    p.add_argument("--image-size", metavar="HxW", help="center-crop and resize every image to H x W (sklearn-patches: the patch size)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="convert images to gray (1) or RGB (3); default: as stored")


def _processes_arg(text: str):
    """--processes: "auto" or an integer >= 1."""
    from argparse import ArgumentTypeError

    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise ArgumentTypeError(f"must be a positive integer or auto, got {text!r}")
    return int(text)


def _train(args) -> int | None:
    # OpenMP's default lets idle threads spin; on cores shared with other processes the spinning threads
    # take the time the working ones need: PASSIVE made 2-thread steps several times faster on a loaded
    # machine (docs/results.md, Training). OpenMP reads it once, when torch loads it: set it first.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "RANK" not in os.environ:  # not yet one rank of a data-parallel run (ours, or torchrun's)
        from edgevae.cpu import usable_cores

        processes = args.processes
        if processes == "auto":
            processes = 1 if args.device == "cuda" else usable_cores()
        if processes > 1:
            from .launch import launch

            return launch(processes, args.argv)
    from .trainer import main

    main(args)


def _eval(args) -> None:
    from .evaluate import main

    main(args)
