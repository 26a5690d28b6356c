"""`edgevae export`: a VAE (or a checkpoint) -> a validated model dir (fp32 graphs + manifest.json).

The model dir is built whole in a temporary sibling folder and renamed into place, so MODEL_DIR either
does not exist, or holds a complete, validated export.
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from edgevae import __version__
from edgevae.train.checkpoint import load_model
from edgevae.train.model import VAE

from .graphs import GRAPHS, OPSET, export_graphs
from .manifest import build_manifest, write_manifest
from .validate import BATCH_SIZES, TOLERANCE, check_parity


def check_destination(out: Path, force: bool) -> None:
    """Refuse a destination that is a file, or a non-empty folder unless force (it is then replaced whole)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(f"--out {out} exists and is not empty; pass --force to replace it")


def make_readable(folder: Path) -> None:
    """rwxr-xr-x / rw-r--r--: mkdtemp and atomic_write create owner-only modes, but a model dir is for sharing."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder tmp to out; an existing out is first moved aside, then deleted."""
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
        os.replace(out, old)  # onto the fresh empty folder: POSIX rename replaces an empty directory
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def export_model_dir(model: VAE, out_dir, *, training_metrics: dict | None = None, images: np.ndarray | None = None,
                     images_source: str | None = None, force: bool = False, ort_format: bool = False,
                     tolerance: float = TOLERANCE) -> Path:
    """Export model's encoder and decoder to out_dir as a validated fp32 model dir; returns out_dir.

    training_metrics: stored as the manifest's "training" entry and in each graph's metadata_props.
    images: float32 [>=64,1,28,28] validation images (None: seeded uniform noise; the manifest says which).
    force: replace a non-empty out_dir. ort_format: also write .ort files (see ort_format.py).
    Raises ValueError, leaving out_dir untouched, when the graphs differ from PyTorch beyond tolerance.
    """
    out = Path(out_dir)
    check_destination(out, force)
    latent_dim = model.config.latent_dim
    metadata = {"edgevae_version": __version__, "latent_dim": str(latent_dim),
                "training": json.dumps(training_metrics or {}, sort_keys=True)}
    protos = export_graphs(model, metadata)
    parity = check_parity(model, protos, images, images_source, tolerance)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for name, proto in protos.items():
            onnx.save_model(proto, tmp / GRAPHS[name].file)  # < 2 GB: one self-contained file, no .data
        ort = None
        if ort_format:
            from .ort_format import convert_to_ort

            ort = convert_to_ort(tmp, [spec.file for spec in GRAPHS.values()])
        write_manifest(tmp, build_manifest(tmp, latent_dim, OPSET, parity, training_metrics, ort))
        make_readable(tmp)
        move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def training_summary(checkpoint: Path, state: dict) -> dict:
    """The manifest's "training" entry: epoch, final test metrics (merged with metrics.json's), train config."""
    history = state.get("history") or [{}]
    final = {k: v for k, v in history[-1].items() if k.startswith("test_")}
    metrics_path = Path(checkpoint).with_name("metrics.json")
    if metrics_path.is_file():  # eval adds iwae_nll there
        try:
            final |= {k: v for k, v in json.loads(metrics_path.read_text()).get("final", {}).items() if k != "epoch"}
        except (json.JSONDecodeError, AttributeError):
            pass  # metrics.json is a convenience copy; the checkpoint's history is authoritative
    return {"epoch": state["epoch"], "final": final, "train_config": state.get("train_config", {})}


def validation_images(data_dir) -> tuple[np.ndarray | None, str | None]:
    """The first 64 Fashion-MNIST test images from data_dir (or the Debian folder), and where from.

    (None, None) when data_dir was not given and the Debian folder is absent: export then validates on
    seeded noise rather than downloading. A data_dir given but unusable is an error.
    """
    from edgevae.train.data import DEBIAN_DIR, load_split, prepare_torchvision_root

    folder = Path(data_dir) if data_dir else DEBIAN_DIR
    try:
        root = prepare_torchvision_root(folder)
    except FileNotFoundError:
        if data_dir:
            raise
        return None, None
    test_x, _ = load_split(root, train=False)
    n = max(BATCH_SIZES)
    return test_x[:n].numpy(), f"Fashion-MNIST test images 0..{n - 1} from {folder}"


def main(args) -> None:
    """CLI entry: load args.checkpoint, export it to args.out, print where and the worst parity figure."""
    t0 = time.perf_counter()
    check_destination(args.out, args.force)  # before the slow part
    model, state = load_model(args.checkpoint)
    images, source = validation_images(args.data_dir)
    out = export_model_dir(model, args.out, training_metrics=training_summary(args.checkpoint, state),
                           images=images, images_source=source, force=args.force, ort_format=args.ort_format)
    parity = json.loads((out / "manifest.json").read_text())["parity"]
    worst = max(d for rows in parity["max_abs_diff"].values() for outs in rows.values() for d in outs.values())
    print(f"exported {args.checkpoint} -> {out} (max abs diff vs PyTorch {worst:.2g}, "
          f"tolerance {parity['tolerance']:g}; {time.perf_counter() - t0:.1f} s)")
