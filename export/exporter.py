"""`edgevae export`: a VAE (or a checkpoint) -> a validated model dir (fp32 graphs + manifest.json).

The model dir is built whole in a temporary sibling folder and renamed into place, so MODEL_DIR either
does not exist, or holds a complete, validated export.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from edgevae import __version__
from edgevae.atomic import atomic_folder, write_bytes
from edgevae.runtime.contract import manifest as contract
from edgevae.train.checkpoint import load_model
from edgevae.train.model import VAE

from .check import check
from .graphs import OPSET, conventions_of, export_graphs, graph_specs, latent_shape_of
from .static import add_static, parse_batches, plan
from .validate import PARITY_BATCH_SIZES, TOLERANCE, check_parity


def check_destination(out: Path, force: bool) -> None:
    """Refuse a destination that is a file, or a non-empty folder unless force (it is then replaced whole)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(f"--out {out} exists and is not empty; pass --force to replace it")


def export_model_dir(model: VAE, out_dir, *, training: contract.Training | None = None, images: np.ndarray | None = None,
                     images_source: str | None = None, force: bool = False, ort_format: bool = False,
                     tolerance: float = TOLERANCE, static_batch: tuple[int, ...] = ()) -> Path:
    """Export model's encoder and decoder to out_dir as a validated fp32 model dir; returns out_dir.

    training: stored as the manifest's "training" entry and in each graph's metadata_props.
    images: float32 [>=64,1,28,28] validation images (None: seeded uniform noise; the manifest says which).
    force: replace a non-empty out_dir. ort_format: also write .ort files (see ort_format.py).
    static_batch: batch sizes of fixed-shape fp32 variants to add (export/static.py).
    Raises ValueError, leaving out_dir untouched, when the graphs differ from PyTorch beyond tolerance.
    """
    out = Path(out_dir)
    check_destination(out, force)
    latent_dim = model.config.latent_dim
    metadata = {"edgevae_version": __version__, "latent_dim": str(latent_dim),
                "training": json.dumps(contract.to_json(training) if training else {}, sort_keys=True)}
    protos = export_graphs(model, metadata=metadata)
    parity = check_parity(model, protos, images=images, images_source=images_source, tolerance=tolerance)
    specs = graph_specs(model)

    with atomic_folder(out, mode=0o755) as tmp:  # a model dir is for sharing: 0755, its files 0644
        for name, proto in protos.items():
            write_bytes(tmp / specs[name].file, proto.SerializeToString(), mode=0o644)  # one self-contained file, no .data
        ort = None
        if ort_format:
            from .ort_format import convert_to_ort

            ort = convert_to_ort(tmp, [spec.file for spec in specs.values()])
        manifest = contract.Manifest(
            format=contract.FORMAT, edgevae_version=__version__, latent_dim=latent_dim,
            image_shape=tuple(model.config.image_shape), opset=OPSET,
            io={name: contract.GraphIO(spec.inputs, spec.outputs) for name, spec in specs.items()},
            variants={contract.FP32: {name: contract.file_entry(tmp / spec.file) for name, spec in specs.items()}},
            parity=parity, training=training, ort=ort,
            # edgevae's own family writes neither, so its manifests stay as they were
            latent_shape=latent_shape_of(model) if len(latent_shape_of(model)) > 1 else None,
            conventions=None if conventions_of(model) == contract.CLASSIC else conventions_of(model))
        manifest = add_static(tmp, manifest, siblings=plan(manifest, static_batch))
        manifest = _with_goldens(tmp, manifest, images)
        manifest = dataclasses.replace(manifest, targets=check(contract.ModelDir(tmp, manifest)))
        contract.write(tmp, manifest)
    return out


def _with_goldens(folder: Path, manifest: contract.Manifest, images: np.ndarray | None) -> contract.Manifest:
    """manifest with the goldens of fp32 and its fixed-shape siblings (runtime/device/golden.py): their .npy files
    written into folder, the first validation images (seeded noise without them) and seeded latents through the
    exported graphs."""
    from edgevae.runtime.device import golden as goldens

    staged = contract.ModelDir(folder, manifest)
    golden, files = goldens.build(staged, list(manifest.variants), inputs=goldens.default_inputs(staged, images), source="edgevae export")
    goldens.write_files(folder, files)
    return dataclasses.replace(manifest, golden=golden)


def training_summary(checkpoint: Path, state: dict) -> contract.Training:
    """The manifest's "training" entry: epoch, final test metrics (merged with metrics.json's), train config."""
    history = state.get("history") or [{}]
    final = {k: v for k, v in history[-1].items() if k.startswith("test_")}
    metrics_path = Path(checkpoint).with_name("metrics.json")
    if metrics_path.is_file():  # eval adds iwae_nll there
        try:
            final |= {k: v for k, v in json.loads(metrics_path.read_text()).get("final", {}).items() if k != "epoch"}
        except (json.JSONDecodeError, AttributeError):
            pass  # metrics.json is a convenience copy; the checkpoint's history is authoritative
    final = {k: v for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return contract.Training(epoch=state["epoch"], final=final, train_config=state.get("train_config", {}))


def validation_images(data_dir, train_config: dict | None = None) -> tuple[np.ndarray | None, str | None]:
    """64 validation images and where from: the first test images of the dataset spec the model was trained on
    (train_config's data; training images after them when the test split is smaller), or of Fashion-MNIST from
    data_dir (or the Debian folder).

    (None, None) when that data is not at hand (Fashion-MNIST: data_dir not given and the Debian folder absent;
    another spec: its files are gone): export then validates on seeded noise rather than downloading.
    A data_dir given but unusable is an error.
    """
    from edgevae.train.data import DEBIAN_DIR, DataConfig, held_out_images, load_images

    fashion_mnist = (train_config or {}).get("data") in (None, "fashion-mnist")
    if fashion_mnist and not data_dir and not DEBIAN_DIR.is_dir():
        return None, None  # never a download here
    try:
        data = load_images(DataConfig.from_train_config(train_config or {}, data_dir=data_dir))
    except FileNotFoundError:
        if data_dir and fashion_mnist:
            raise
        return None, None
    n = max(PARITY_BATCH_SIZES)
    test = held_out_images(data, limit=n).numpy()
    images = np.concatenate([test, data.train[:max(0, n - len(test))].numpy()])
    return images, f"{data.source}: the first {len(test)} test images" + (", then training images" if len(test) < n else "")


def main(args) -> None:
    """CLI entry: load args.checkpoint, export it to args.out, print where and the worst parity figure."""
    t0 = time.perf_counter()
    check_destination(args.out, args.force)  # before the slow part
    static_batch = parse_batches(args.static_batch) if args.static_batch is not None else ()
    model, state = load_model(args.checkpoint)
    images, source = validation_images(args.data_dir, state.get("train_config"))
    out = export_model_dir(model, args.out, training=training_summary(args.checkpoint, state),
                           images=images, images_source=source, force=args.force, ort_format=args.ort_format,
                           static_batch=static_batch)
    parity = contract.load(out).manifest.parity
    worst = max(d for rows in parity.max_abs_diff.values() for outs in rows.values() for d in outs.values())
    print(f"exported {args.checkpoint} -> {out} (max abs diff vs PyTorch {worst:.2g}, "
          f"tolerance {parity.tolerance:g}; {time.perf_counter() - t0:.1f} s)")
