"""Subcommands `verify`, `tune` and `sign`: the device-side checks of a model dir and its signature (argument
parsing only; numpy and onnxruntime are imported when one runs). All are torch-free."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("verify", help="run the model dir's golden inputs on this device and compare with the expected outputs")
    p.add_argument("--model", type=Path, help="model dir (default: the model shipped in the package)")
    p.add_argument("--variant", default="all",
                   help="all (default: every variant with goldens), auto (those --variant auto may run), or one variant")
    p.add_argument("--threads", type=int, help="intra-op threads for the check (default: onnxruntime's)")
    p.add_argument("--trust", type=Path, metavar="PUB.pem",
                   help="check first that the dir is signed (edgevae sign) by this public key's private key")
    p.set_defaults(run=_verify, extra=None)

    p = sub.add_parser("sign", help="sign a model dir's manifest and every file it names (MODEL_DIR/model.sig)")
    p.add_argument("model_dir", type=Path, help="model dir to sign")
    p.add_argument("--key", type=Path, required=True, metavar="KEY.pem",
                   help="elliptic-curve private key in PEM (P-256, P-384 or P-521), e.g. from "
                        "openssl ecparam -name prime256v1 -genkey -noout -out KEY.pem")
    p.set_defaults(run=_sign, extra="sign")

    p = sub.add_parser("tune", help="time every eligible variant x threads x batch size here; write a device profile")
    p.add_argument("--model", type=Path, help="model dir (default: the model shipped in the package)")
    p.add_argument("--budget-s", type=float, default=20.0, help="time budget in seconds (default 20)")
    p.add_argument("--in-model-dir", action="store_true",
                   help="write MODEL_DIR/device-profile.json instead of $XDG_CACHE_HOME/edgevae/profiles/")
    p.set_defaults(run=_tune, extra=None)


def _verify(args) -> int:
    from .verify import main

    return main(args)


def _sign(args) -> None:
    from ..contract.manifest import load
    from ..contract.safe_files import escape
    from ..contract.signing import sign, signed_files

    model = load(args.model_dir)
    path = sign(model, args.key)
    print(f"signed {len(signed_files(model))} files of {escape(model.path)} (manifest.json and every file it names) "
          f"-> {escape(path)}")


def _tune(args) -> None:
    from .tune import main

    main(args)
