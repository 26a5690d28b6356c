"""manifest.json of a model dir (format "edgevae-model/1"): what export writes and quantize extends.

The runtime reads and checks it (edgevae.runtime.model_dir, which owns the format name); this module writes it.
"""

import hashlib
from pathlib import Path

from edgevae import __version__
from edgevae.runtime.model_dir import FORMAT
from edgevae.train.checkpoint import write_json
from edgevae.train.model import IMAGE_SHAPE

from .graphs import GRAPHS

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> dict:
    """{"file": name relative to the model dir, "sha256": hex, "bytes": size} for the file at path."""
    path = Path(path)
    return {"file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size}


def variant_entry(model_dir: Path, files: dict[str, str]) -> dict:
    """{"encoder": file_entry, "decoder": file_entry} for files {"encoder": name, "decoder": name} in model_dir."""
    return {graph: file_entry(Path(model_dir) / name) for graph, name in files.items()}


def build_manifest(model_dir: Path, latent_dim: int, opset: int, parity: dict,
                   training: dict | None = None, ort: dict | None = None) -> dict:
    """The manifest of a freshly exported model dir holding the fp32 variant."""
    manifest = {
        "format": FORMAT,
        "edgevae_version": __version__,
        "latent_dim": latent_dim,
        "image_shape": list(IMAGE_SHAPE),
        "opset": opset,
        "io": {name: {"inputs": list(s.inputs), "outputs": list(s.outputs)} for name, s in GRAPHS.items()},
        "variants": {"fp32": variant_entry(model_dir, {name: s.file for name, s in GRAPHS.items()})},
        "parity": parity,
        "training": training or {},
    }
    if ort is not None:
        manifest["ort"] = ort
    return manifest


def write_manifest(model_dir: Path, manifest: dict) -> None:
    """Write (or atomically replace) model_dir/manifest.json."""
    write_json(Path(model_dir) / MANIFEST, manifest)
