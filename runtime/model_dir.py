"""Reading and checking a model dir (the contract written by export and extended by quantize).

Everything is checked before a graph reaches onnxruntime: the manifest's format and fields, the variant,
that each file named is a plain file name inside the dir, and its sha256. A problem raises ModelDirError
with one line naming the dir, the file or the field.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelDirError

FORMAT = "edgevae-model/1"
GRAPHS = ("encoder", "decoder")
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
AUTO = "auto"  # variant chosen per batch size from the manifest's "selection"
FALLBACK_VARIANT = "fp32"  # required in every model dir


@dataclass(frozen=True)
class ModelDir:
    """A checked manifest: what the runtime needs to build sessions and check inputs."""

    path: Path
    latent_dim: int
    image_shape: tuple  # (C, H, W)
    io: dict  # {"encoder": {"inputs": [...], "outputs": [...]}, "decoder": {...}}
    variants: dict  # {variant: {graph: {"file", "sha256", ...}}}
    selection: dict  # {graph: {batch size (int): variant}}, empty when quantize did not select
    manifest: dict  # the whole manifest, for `edgevae info`

    def graph_bytes(self, variant: str, graph: str) -> bytes:
        """The ONNX file of (variant, graph), read once and checked against the manifest's sha256."""
        entry = self.variants[variant][graph]
        path = self.path / entry["file"]
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ModelDirError(f"model dir {self.path}: cannot read {entry['file']} ({err.strerror or err})") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"].lower():
            raise ModelDirError(f"model dir {self.path}: {entry['file']} has sha256 {digest[:12]}..., the manifest "
                                f"says {entry['sha256'][:12]}... (file changed or corrupt)")
        return data

    def variant_for(self, variant: str, batch: int, graph: str) -> str:
        """The concrete variant to run graph on a batch of this size; `auto` follows the graph's selection:
        the entry for the largest batch size <= batch (the smallest entry below all of them), fp32 without one."""
        if variant != AUTO:
            return variant
        choice = self.selection.get(graph)
        if not choice:
            return FALLBACK_VARIANT
        sizes = sorted(choice)
        below = [s for s in sizes if s <= batch]
        return choice[below[-1] if below else sizes[0]]

    def variants_needed(self, variant: str) -> list:
        """The concrete variants a runtime loaded with `variant` may run."""
        if variant != AUTO:
            return [variant]
        return sorted({v for choice in self.selection.values() for v in choice.values()}) or [FALLBACK_VARIANT]


def _fail(path, what):
    raise ModelDirError(f"model dir {path}: {what}")


def _check_graph_entry(path, variant, graph, entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
        _fail(path, f"manifest variants.{variant}.{graph} needs 'file' and 'sha256' strings")
    name = entry["file"]
    # Only plain names: a manifest must not point outside its own dir.
    if not name or Path(name).name != name or name in (".", ".."):
        _fail(path, f"manifest variants.{variant}.{graph}.file {name!r} is not a file name inside the dir")
    if not (path / name).is_file():
        _fail(path, f"{name} (variant {variant}, {graph}) is missing")


def _parse_selection(path, raw, variants):
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not set(raw) <= set(GRAPHS) or not all(isinstance(c, dict) for c in raw.values()):
        _fail(path, "manifest 'selection' must map graphs (encoder, decoder) to {batch size: variant}")
    selection = {}
    for graph, choice in raw.items():
        selection[graph] = {}
        for size, variant in choice.items():
            if not str(size).isdigit() or int(size) < 1:
                _fail(path, f"manifest selection.{graph} key {size!r} is not a positive batch size")
            if variant not in variants:
                _fail(path, f"manifest selection.{graph} {size!r} names variant {variant!r}, which the manifest lacks")
            selection[graph][int(size)] = variant
    return selection


def read_model_dir(model_dir=None) -> ModelDir:
    """The checked manifest of model_dir (None: the default model shipped in the package).

    Raises ModelDirError when the dir or its manifest is missing, not JSON, of another format, lacks a
    field, or names a file that is not there. File hashes are checked when a graph is read (graph_bytes).
    """
    if model_dir is None:
        path = DEFAULT_MODEL_DIR
        if not (path / "manifest.json").is_file():
            raise ModelDirError(f"no default model in this install ({path} has no manifest.json); "
                                "pass a model dir (--model DIR) made by `edgevae export`")
    else:
        path = Path(model_dir)
    if not path.is_dir():
        _fail(path, "does not exist or is not a folder")
    try:
        text = (path / "manifest.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(path, "has no manifest.json (not an edgevae model dir)")
    except (OSError, UnicodeDecodeError) as err:
        _fail(path, f"cannot read manifest.json ({err})")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as err:
        _fail(path, f"manifest.json is not valid JSON ({err.msg} at line {err.lineno})")
    if not isinstance(manifest, dict):
        _fail(path, "manifest.json is not a JSON object")
    if manifest.get("format") != FORMAT:
        _fail(path, f"manifest format {manifest.get('format')!r} is not {FORMAT!r}")

    latent_dim = manifest.get("latent_dim")
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
        _fail(path, f"manifest latent_dim {latent_dim!r} is not a positive integer")
    shape = manifest.get("image_shape")
    if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        _fail(path, f"manifest image_shape {shape!r} is not [C, H, W]")
    io = manifest.get("io")
    for graph in GRAPHS:
        names = io.get(graph) if isinstance(io, dict) else None
        if not isinstance(names, dict) or not isinstance(names.get("inputs"), list) or not isinstance(names.get("outputs"), list):
            _fail(path, f"manifest io.{graph} needs 'inputs' and 'outputs' lists")
    variants = manifest.get("variants")
    if not isinstance(variants, dict) or FALLBACK_VARIANT not in variants:
        _fail(path, f"manifest 'variants' must include {FALLBACK_VARIANT!r}")
    for variant, graphs in variants.items():
        if not isinstance(graphs, dict):
            _fail(path, f"manifest variants.{variant} is not an object")
        for graph in GRAPHS:
            _check_graph_entry(path, variant, graph, graphs.get(graph))
    selection = _parse_selection(path, manifest.get("selection"), variants)
    return ModelDir(path=path, latent_dim=latent_dim, image_shape=tuple(shape), io=io, variants=variants,
                    selection=selection, manifest=manifest)


def check_variant(model: ModelDir, variant: str) -> None:
    """ModelDirError unless variant is `auto` or one the manifest lists."""
    if variant != AUTO and variant not in model.variants:
        _fail(model.path, f"has no variant {variant!r} (has: {', '.join(sorted(model.variants))}, or 'auto')")
