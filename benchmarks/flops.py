"""Floating-point operations per image of an ONNX graph, counted from its layer shapes.

Only the matrix products are counted (Conv, ConvTranspose, Gemm, MatMul), at 2 FLOPs per multiply-add,
as in a GEMM roofline: the bias adds and activations are < 1% of these models' work and run at memory
speed anyway. Shapes come from onnx shape inference on one image: the batch dimension is fixed to 1 (so
reshapes computed from the input's shape, as in attention blocks, resolve too), and a fully convolutional
graph's symbolic height and width to the size given (the manifest's image or latent shape).
"""

from pathlib import Path

import numpy as np


def _dims(value_info) -> list:
    """[int | None] of a tensor's shape (None for a symbolic dimension such as "batch")."""
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _per_image(dims: list) -> int:
    """Elements of an activation of the one-image graph (all of its dimensions: attention's [heads, tokens, C]
    holds every head's)."""
    if any(d is None for d in dims):
        raise ValueError(f"cannot count FLOPs: shape {dims} keeps a symbolic dimension for one image")
    return int(np.prod(dims, dtype=np.int64))


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
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = onnx.load(str(Path(path)))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value = 1  # one image; replaces the symbolic batch (dim_param: one of the two is set)
    if item_shape is not None:
        for dim, size in zip(dims[1:], item_shape, strict=True):
            dim.dim_value = int(size)
    # onnxruntime's symbolic shape inference: unlike onnx's, it follows sizes computed from Shape (attention's
    # reshapes, Resize) to concrete values
    model = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
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
