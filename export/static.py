"""Fixed-shape variants: a variant's graphs with the batch (and so every input and output shape) fixed.

NNAPI takes no node whose input has a dynamic shape, and CoreML runs dynamic shapes slowly: onnxruntime's own
usability checker puts 0 nodes of a dynamic-batch decoder on NNAPI and all of them once its shapes are fixed
(docs/npu.md). `--static-batch 1,8` on export or quantize writes, for every variant with a dynamic batch, a
sibling `<variant>-b<N>` per batch size, listed in the manifest's `static` (its base and batch) with goldens of
its own. A runtime runs a sibling when a batch has exactly its size, and never pads a batch to fit one.

The shapes are fixed with onnxruntime's own tool (onnxruntime.tools.onnx_model_utils, what
`python -m onnxruntime.tools.make_dynamic_shape_fixed` runs), then every value in the graph is re-inferred and
must come out fixed: a graph with any dynamic dimension left is refused, naming the tensor.
"""

import dataclasses
from pathlib import Path

import onnx

from edgevae.runtime.contract import manifest as contract
from edgevae.runtime.contract.manifest import GRAPH_NAMES, MAX_STATIC_BATCH


def parse_batches(text: str, flag: str = "--static-batch") -> tuple[int, ...]:
    """'1,8' -> (1, 8): positive integers up to MAX_STATIC_BATCH, comma-separated; ValueError naming the text."""
    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isascii() and p.isdigit() for p in parts) or not all(1 <= int(p) <= MAX_STATIC_BATCH for p in parts):
        raise ValueError(f"{flag} {text!r} must be batch sizes 1..{MAX_STATIC_BATCH}, comma-separated (e.g. 1,8)")
    return tuple(sorted({int(p) for p in parts}))


def static_name(base: str, batch: int) -> str:
    return f"{base}-b{batch}"


def static_file(graph: str, variant: str) -> str:
    return f"{graph}.{variant}.onnx"


def _dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]


def fix_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy of model whose first input has batch `batch` (its other dimensions must already be fixed), with
    every output and intermediate shape re-inferred and fixed; ValueError naming a tensor that stays dynamic."""
    from .check import ort_tools

    make_input_shape_fixed = ort_tools("onnx_model_utils").make_input_shape_fixed

    model = onnx.ModelProto.FromString(model.SerializeToString())
    initializers = {i.name for i in model.graph.initializer}
    for value in [i for i in model.graph.input if i.name not in initializers]:
        dims = _dims(value)
        if not dims or any(not isinstance(d, int) for d in dims[1:]):
            raise ValueError(f"input {value.name!r} has shape {dims}: only its batch (first) dimension may be dynamic")
        make_input_shape_fixed(model.graph, value.name, [batch, *dims[1:]])
    del model.graph.value_info[:]  # e.g. the quantizer's unk__ dimensions: inferred again from the fixed input
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    for output, found in zip(model.graph.output, inferred.graph.output):
        output.type.tensor_type.shape.CopyFrom(found.type.tensor_type.shape)
    model.graph.value_info.extend(inferred.graph.value_info)
    dynamic = [v for v in [*model.graph.output, *model.graph.value_info]
               if v.type.HasField("tensor_type") and not all(isinstance(d, int) for d in _dims(v))]
    if dynamic:
        raise ValueError(f"tensor {dynamic[0].name!r} keeps shape {_dims(dynamic[0])} at batch {batch}")
    onnx.checker.check_model(model)
    return model


def plan(manifest: contract.Manifest, batches, *, keep=()) -> list[tuple[str, int]]:
    """The (base, batch) siblings to build: every variant with a dynamic batch at each of `batches`, and the
    (base, batch) pairs of `keep` (the siblings a dir had before its bases were rebuilt), less those listed."""
    listed = {(s.base, s.batch) for s in manifest.static.values()}
    wanted = {(v, b) for v in manifest.variants if v not in manifest.static for b in batches}
    wanted |= {(v, b) for v, b in keep if v in manifest.variants}
    return sorted(wanted - listed)


def add_static(folder: Path, manifest: contract.Manifest, *, siblings) -> contract.Manifest:
    """manifest with the fixed-shape siblings [(base, batch)] written into folder (atomically, 0644) and listed;
    their goldens are the caller's to add (runtime/device/golden.py handles fixed shapes)."""
    from edgevae.atomic import write_bytes

    variants, static = dict(manifest.variants), dict(manifest.static)
    for base, batch in siblings:
        name = static_name(base, batch)
        if name in variants and name not in static:
            raise ValueError(f"variant {name!r} exists and is not a fixed-shape variant of {base!r}")
        entries = {}
        for graph in GRAPH_NAMES:
            source = onnx.load(folder / manifest.variants[base][graph].file)
            path = Path(folder) / static_file(graph, name)
            write_bytes(path, fix_batch(source, batch).SerializeToString(), mode=0o644)
            entries[graph] = contract.file_entry(path)
        variants[name], static[name] = entries, contract.StaticShape(base=base, batch=batch)
    return dataclasses.replace(manifest, variants=variants, static=static)
