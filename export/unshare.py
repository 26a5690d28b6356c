"""Shared initializers, and a pre-flight of onnxruntime's quantizer, for graphs the exporter accepts.

torch's exporter writes GroupNorm as Reshape -> InstanceNormalization(scale=ones, bias=zeros) -> Reshape -> Mul
-> Add, and the ONNX optimizer deduplicates the identical ones / zeros constants, so one initializer feeds every
InstanceNormalization node. onnxruntime's QDQ quantizer refuses a weight read by several nodes ("Quantization
parameter shared mode is not supported for weight yet"), and says so only after calibrating, minutes in, naming
no node. unshare_initializers gives each reader its own copy first (exact: the same values), and preflight runs
the quantizer on two calibration inputs, so that anything else it refuses fails in seconds, naming the graph.
"""

import tempfile
from collections import Counter
from pathlib import Path

import onnx

FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
PREFLIGHT_INPUTS = 2


def shared_initializers(model: onnx.ModelProto) -> dict[str, list[str]]:
    """{float initializer read by more than one node input: the names of the nodes reading it}."""
    floats = {i.name for i in model.graph.initializer if i.data_type in FLOAT_TYPES}
    readers = {}
    for node in model.graph.node:
        for name in node.input:
            if name in floats:
                readers.setdefault(name, []).append(node.name or node.op_type)
    return {name: nodes for name, nodes in readers.items() if len(nodes) > 1}


def unshare_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of model in which every float initializer read by several node inputs is copied, so each reader
    has its own (the first keeps the original). Values are unchanged: the graph computes the same outputs."""
    shared = shared_initializers(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if not shared:
        return out
    by_name = {i.name: i for i in out.graph.initializer}
    taken = set(by_name) | {v for n in out.graph.node for v in (*n.input, *n.output)}
    seen = Counter()
    for node in out.graph.node:
        for k, name in enumerate(node.input):
            if name not in shared:
                continue
            seen[name] += 1
            if seen[name] == 1:
                continue
            copy_name = f"{name}_copy{seen[name]}"
            while copy_name in taken:
                copy_name += "_"
            copy = onnx.TensorProto()
            copy.CopyFrom(by_name[name])
            copy.name = copy_name
            out.graph.initializer.append(copy)
            taken.add(copy_name)
            node.input[k] = copy_name
    return out


def preflight(prepared: Path, graph: str, *, calibration, settings) -> None:
    """Quantize the prepared graph with PREFLIGHT_INPUTS calibration inputs into a scratch file: seconds, where the
    real calibration takes minutes. ValueError naming the graph (and the nodes sharing a weight) when it fails."""
    from .variants import quantize_prepared

    model = onnx.load(prepared)
    shared = shared_initializers(model)
    if shared:  # unshare_initializers ran before: a graph that still shares one was changed after it
        name, nodes = next(iter(shared.items()))
        raise ValueError(f"int8 {graph}: initializer {name!r} is shared by nodes {nodes[:4]}; onnxruntime's "
                         "quantizer refuses shared weights")
    small = calibration[:PREFLIGHT_INPUTS]
    with tempfile.TemporaryDirectory(dir=Path(prepared).parent, prefix=".preflight-") as tmp:
        try:
            quantize_prepared(prepared, Path(tmp) / "int8.onnx", graph=graph, calibration=small,
                              settings=_with_batch(settings, len(small)))
        except Exception as err:  # onnxruntime.quantization raises plain Exception, ValueError, KeyError ...
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            ops = sorted({n.op_type for n in model.graph.node})
            raise ValueError(f"int8 {graph}: onnxruntime's quantizer fails on this graph: {first[:160]} "
                             f"(operators: {', '.join(ops)[:200]})") from None


def _with_batch(settings, batch: int):
    import dataclasses

    return dataclasses.replace(settings, batch_size=batch)
