"""The `edgevae` command. Each package registers its own subcommands; their work is imported only when
a subcommand runs, so `edgevae sample` needs only the base install and `edgevae train` there names the
extra to install instead of failing deep inside an import."""

import argparse
import os
import sys
from importlib import import_module

from . import __version__

PACKAGE_CLIS = ("edgevae.train.cli", "edgevae.export.cli", "edgevae.runtime.cli", "edgevae.benchmarks.cli")
EXTRA_OF_MODULE = {"torch": "train", "torchvision": "train", "tqdm": "train", "onnx": "export", "onnxscript": "export",
                   "onnxconverter_common": "export", "matplotlib": "dev",
                   "onnxruntime": None, "numpy": None}  # None: part of the base install


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgevae", description="Train a convolutional VAE, export it to ONNX, run it without PyTorch.")
    parser.add_argument("--version", action="version", version=f"edgevae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in PACKAGE_CLIS:
        import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        print(f"edgevae {args.command}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as err:
        if os.environ.get("EDGEVAE_DEBUG"):
            raise
        root = (err.name or "").split(".")[0]
        extra = EXTRA_OF_MODULE.get(root, args.extra)
        install = f"pip install 'edgevae[{extra}]'" if extra else "pip install edgevae"
        print(f"edgevae {args.command}: needs the '{root}' package: {install}", file=sys.stderr)
        return 2
    except Exception as err:  # one line, never a traceback; EDGEVAE_DEBUG=1 shows it
        if os.environ.get("EDGEVAE_DEBUG"):
            raise
        known = isinstance(err, (ValueError, TypeError, OSError))
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(f"edgevae {args.command}: error: {'' if known else type(err).__name__ + ': '}{message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
