"""The `edgevae` command. Each package registers its own subcommands; their work is imported only when
a subcommand runs, so `edgevae sample` needs only the base install and `edgevae train` there names the
extra to install instead of failing deep inside an import."""

import argparse
import os
import sys
import warnings
from importlib import import_module

from . import __version__

PACKAGE_CLIS = ("edgevae.train.cli", "edgevae.export.cli", "edgevae.runtime.cli", "edgevae.benchmarks.cli",
                "edgevae.runtime.site.cli", "edgevae.runtime.device.cli")
EXTRA_OF_MODULE = {"torch": "train", "torchvision": "train", "tqdm": "train", "onnx": "export", "onnxscript": "export",
                   "onnxconverter_common": "export", "matplotlib": "dev", "model_signing": "sign", "OpenSSL": "sign",
                   "onnxruntime": None, "numpy": None}  # None: part of the base install
# Commands that run for hours or until stopped show warnings as they come; the others hold them until
# the end, so that a failure prints its one line and nothing else (numpy's RuntimeWarnings included).
LIVE_WARNINGS = ("train", "serve")


def printable(text) -> str:
    """text with control characters written as escapes (the model dir's own rule, runtime/contract/manifest.py)."""
    from edgevae.runtime.contract.safe_files import escape

    return escape(text)


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error (2-4 lines); edgevae's contract is one line and exit 2.
    Subparsers inherit the class (add_subparsers uses the parent's type), so every subcommand has it."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="edgevae", description="Train a convolutional VAE, export it to ONNX, run it without PyTorch.")
    parser.add_argument("--version", action="version", version=f"edgevae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in PACKAGE_CLIS:
        import_module(name).register(sub)
    parser.commands = sub.choices  # {name: its parser}, for errors found after parsing
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: `train` runs itself again per rank
    if unknown:  # reported by the subcommand's parser, so the line names it: `edgevae info: error: ...`
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command in LIVE_WARNINGS:
        return _run(args)
    with warnings.catch_warnings(record=True) as caught:  # the filters stay; shown ones are held until the end
        status = _run(args)
    if status == 0:  # a run that worked shows its warnings; a failure shows only its one line
        for w in caught:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return status


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread like KeyboardInterrupt for SIGINT, so that every
    `except BaseException` cleanup (temporary files, folders) runs before the process ends."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def _stop_native_runs_on_signals() -> None:
    """Python runs a signal's handler only between bytecodes, so while onnxruntime computes inside one call a
    SIGTERM would wait for the call to end, for ever with a hostile graph. Python's C-level handler also writes
    the signal's number to the wakeup fd: a thread reading it stops every onnxruntime run in flight
    (runtime/inference/run_guard.py), the run returns, and the handler raises as usual."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set it
    earlier = signal.set_wakeup_fd(-1)
    if earlier != -1:  # watched already (main() called again in one process), or an event loop's: leave it
        signal.set_wakeup_fd(earlier)
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    stopping = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}

    def watch():
        while True:
            if any(signum in stopping for signum in os.read(read_end, 64)):
                guard = sys.modules.get("edgevae.runtime.inference.run_guard")  # only if a run can be in flight
                if guard is not None:
                    guard.stop_all_runs()

    threading.Thread(target=watch, name="edgevae-signal-watch", daemon=True).start()


def _run(args) -> int:
    import signal

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_terminated)
    _stop_native_runs_on_signals()
    try:
        status = args.run(args)  # None, or an exit status of its own (verify: 1 when a check fails)
    except KeyboardInterrupt:
        print(f"edgevae {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated as err:
        print(f"edgevae {args.command}: terminated by {signal.Signals(err.signum).name}", file=sys.stderr)
        return 128 + err.signum
    except ModuleNotFoundError as err:
        if os.environ.get("EDGEVAE_DEBUG"):
            raise
        root = (err.name or "").split(".")[0]
        # The command's own extra brings everything it needs: one install, not one round trip per module.
        extra = args.extra or EXTRA_OF_MODULE.get(root)
        install = f"pip install 'edgevae[{extra}]'" if extra else "pip install edgevae"
        print(f"edgevae {args.command}: needs the '{root}' package: {install}", file=sys.stderr)
        return 2
    except Exception as err:  # one line, never a traceback; EDGEVAE_DEBUG=1 shows it
        if os.environ.get("EDGEVAE_DEBUG"):
            raise
        known = isinstance(err, (ValueError, TypeError, OSError))
        message = printable(str(err).strip().splitlines()[0]) if str(err).strip() else ""
        print(f"edgevae {args.command}: error: {'' if known else type(err).__name__ + ': '}{message}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
