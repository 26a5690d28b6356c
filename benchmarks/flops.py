"""Floating-point operations per image of an ONNX graph, counted from its layer shapes.

Only the matrix products are counted (Conv, ConvTranspose, Gemm, MatMul), at 2 FLOPs per multiply-add,
as in a GEMM roofline: the bias adds and activations are < 1% of these models' work and run at memory
speed anyway. Shapes come from onnx shape inference with the batch dimension left symbolic, so the count
is per image; a fully convolutional graph's symbolic height and width are first fixed to the size given (the
manifest's image or latent shape).
"""

from pathlib import Path

import numpy as np


def _dims(value_info) -> list:
    """[int | None] of a tensor's shape (None for a symbolic dimension such as "batch")."""
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _per_image(dims: list) -> int:
    """Product of the non-batch dimensions of an activation's shape."""
    if any(d is None for d in dims[1:]):
        raise ValueError(f"cannot count FLOPs: shape {dims} has a symbolic dimension besides the batch")
    return int(np.prod(dims[1:], dtype=np.int64))


def _attr(node, name, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def graph_flops(path, item_shape: tuple | None = None) -> int:
    """FLOPs per image of the ONNX graph at path (a float32 graph; see the module docstring); item_shape: the
    input's non-batch dimensions, for a graph that leaves them symbolic."""
    import onnx

    model = onnx.load(str(Path(path)))
    if item_shape is not None:
        for dim, size in zip(model.graph.input[0].type.tensor_type.shape.dim[1:], item_shape, strict=True):
            dim.dim_value = int(size)  # replaces a symbolic dim_param (one of the two is set)
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)  # data_prop: Resize sizes computed from Shape
    graph = model.graph
    shapes = {v.name: _dims(v) for v in [*graph.input, *graph.value_info, *graph.output]}
    shapes |= {t.name: list(t.dims) for t in graph.initializer}
    total = 0
    for node in graph.node:
        if node.op_type == "Conv":
            # weight [Cout, Cin/group, kh, kw]; each output element is one dot product of Cin/group*kh*kw
            weight = shapes[node.input[1]]
            total += 2 * _per_image(shapes[node.output[0]]) * int(np.prod(weight[1:]))
        elif node.op_type == "ConvTranspose":
            # weight [Cin, Cout/group, kh, kw]; each input element scatters into Cout/group*kh*kw outputs
            weight = shapes[node.input[1]]
            total += 2 * _per_image(shapes[node.input[0]]) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            # a [batch, K] @ b [K, M] (b stored [M, K] when transB): 2*K*M per row
            b = shapes[node.input[1]]
            m = b[-2] if node.op_type == "Gemm" and _attr(node, "transB", 0) else b[-1]
            total += 2 * _per_image(shapes[node.input[0]]) * m
    return total
