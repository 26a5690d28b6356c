"""Subcommands `verify` and `tune`: the device-side checks of a model dir (argument parsing only; numpy and
onnxruntime are imported when one runs). Both are torch-free."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("verify", help="run the model dir's golden inputs on this device and compare with the expected outputs")
    p.add_argument("--model", type=Path, help="model dir (default: the model shipped in the package)")
    p.add_argument("--variant", default="all",
                   help="all (default: every variant with goldens), auto (those --variant auto may run), or one variant")
    p.add_argument("--threads", type=int, help="intra-op threads for the check (default: onnxruntime's)")
    p.set_defaults(run=_verify, extra=None)

    p = sub.add_parser("tune", help="time every eligible variant x threads x batch size here; write a device profile")
    p.add_argument("--model", type=Path, help="model dir (default: the model shipped in the package)")
    p.add_argument("--budget-s", type=float, default=20.0, help="time budget in seconds (default 20)")
    p.add_argument("--in-model-dir", action="store_true",
                   help="write MODEL_DIR/device-profile.json instead of $XDG_CACHE_HOME/edgevae/profiles/")
    p.set_defaults(run=_tune, extra=None)


def _verify(args) -> int:
    from .verify import main

    return main(args)


def _tune(args) -> None:
    from .tune import main

    main(args)
