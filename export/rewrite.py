"""Exact graph rewrites that let onnxruntime run the int8 graphs in fast int8 kernels.

Encoder, `pad_input_channels`: the first Conv reads the 1-channel image, so its int8 im2col GEMM has a
reduction depth of 1*3*3 = 9, and onnxruntime's u8s8 kernels (VNNI: 4 bytes per dot-product step) ran it
several times slower than the same Conv with the input zero-padded to 4 channels and zero kernel taps there
(K = 36). Figures in docs/results.md.

Decoder, `conv_transpose_as_conv`: onnxruntime's CPU provider has no int8 ConvTranspose: a quantized
ConvTranspose runs in fp32 between DequantizeLinear / QuantizeLinear and the int8 graph ends up slower
than fp32. Every ConvTranspose here becomes an ordinary Conv, which quantizes to QLinearConv:

- stride 1: a Conv with the kernel flipped and its in/out channels swapped, padding k-1-p.
- stride s > 1: the sub-pixel form (Shi et al. 2016). Output phase (rh, rw) of a strided ConvTranspose
  is a stride-1 correlation of the input with the taps t = r + s*j of the kernel, so one Conv with
  sh*sw*C_out channels and ceil(kh/sh) x ceil(kw/sw) kernels computes all phases at once; the phases are
  then interleaved and the ConvTranspose's padding cropped.
Kernels, strides and pads may differ between the axes; output_padding (extra rows at the end, which hold
only the bias) becomes extra end padding of the Conv. Groups, dilations, output_shape and auto_pad are
not rewritten: such a node is left in place with a warning (see conv_transpose_as_conv).

The interleave is written in channels-last order (Transpose to NHWC, Reshape, swap two axes, Reshape,
Slice, Transpose back) rather than as DepthToSpace: at ORT_ENABLE_ALL onnxruntime runs QLinearConv in
NHWC and cancels our Transposes against the ones it inserts, leaving one cheap block copy, whereas its
DepthToSpace kernel took a large share of the int8 decoder's time (docs/results.md).
The rewritten graph computes the same function up to float summation order (tests: max diff <= 1e-5).
"""

import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger(__name__)
TRANSPOSE, DEPTH_TO_SPACE = "transpose", "depth-to-space"  # the two interleaves of conv_transpose_as_conv


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _spatial_sizes(model: onnx.ModelProto) -> dict[str, tuple[int, int]]:
    """{tensor name: (H, W)} for every 4-D tensor whose spatial size shape inference can fix."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    sizes = {}
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[2].dim_value and dims[3].dim_value:
            sizes[value.name] = (dims[2].dim_value, dims[3].dim_value)
    return sizes


def _plan(node: onnx.NodeProto, weights: dict, in_hw: dict):
    """(weight [C_in,C_out,kh,kw], bias [C_out], strides, pads, output_padding) of a ConvTranspose this module can
    rewrite, or a string naming why it cannot (the node then stays a ConvTranspose, in fp32)."""
    if len(node.input) < 2 or node.input[1] not in weights:
        return "a weight that is not an initializer"
    weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
    has_bias = len(node.input) > 2 and bool(node.input[2])
    if has_bias and node.input[2] not in weights:
        return "a bias that is not an initializer"
    if weight.ndim != 4:
        return f"a {weight.ndim - 2}-D kernel (only 2-D is rewritten)"
    strides = list(_attr(node, "strides", [1, 1]))
    pads = list(_attr(node, "pads", [0, 0, 0, 0]))
    output_padding = list(_attr(node, "output_padding", [0, 0]))
    unsupported = {
        "group": _attr(node, "group", 1) != 1,
        "dilations": any(d != 1 for d in _attr(node, "dilations", [1, 1])),
        "output_shape": bool(_attr(node, "output_shape", [])),
        "auto_pad": _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"),
        "negative pads": min(pads) < 0 or min(output_padding) < 0,
        "output_padding >= stride": any(o >= s for o, s in zip(output_padding, strides)),  # onnxruntime refuses it too
    }
    if any(s > 1 for s in strides) and node.input[0] not in in_hw:
        unsupported["an input without a static spatial size"] = True
    if all(s == 1 for s in strides):  # the equivalent Conv's padding k-1-p must not be negative
        k = weight.shape[2:]
        unsupported["pads past the kernel"] = any(k[a] - 1 - pads[a] < 0 or k[a] - 1 - pads[a + 2] + output_padding[a] < 0 for a in (0, 1))
    bad = [name for name, flag in unsupported.items() if flag]
    if bad:
        return ", ".join(bad)
    bias = numpy_helper.to_array(weights[node.input[2]]).astype(np.float32) if has_bias else np.zeros(weight.shape[1], np.float32)
    return weight, bias, strides, pads, output_padding


def stride1_kernel(weight: np.ndarray) -> np.ndarray:
    """ConvTranspose kernel [C_in, C_out, kh, kw] -> the equivalent Conv kernel [C_out, C_in, kh, kw]."""
    return np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])


def subpixel_kernel(weight: np.ndarray, bias: np.ndarray, *, strides) -> tuple[np.ndarray, np.ndarray]:
    """ConvTranspose kernel [C_in, C_out, kh, kw] with strides (sh, sw) -> sub-pixel Conv kernel
    [sh*sw*C_out, C_in, Jh, Jw] (J = ceil(k/s) per axis) and bias, output channels ordered (rh, rw, c) for the
    channels-last interleave.

    Full output o = s*i + t, so phase r = o mod s at position m reads input m - j through tap t = r + s*j;
    the Conv (padding J-1 before) reads input m - (J-1) + u, hence u = J-1-j.
    """
    c_in, c_out, kh, kw = weight.shape
    sh, sw = strides
    jh, jw = -(-kh // sh), -(-kw // sw)
    kernel = np.zeros((sh, sw, c_out, c_in, jh, jw), np.float32)
    for rh in range(sh):
        for rw in range(sw):
            for uh in range(jh):
                for uw in range(jw):
                    th, tw = rh + sh * (jh - 1 - uh), rw + sw * (jw - 1 - uw)
                    if th < kh and tw < kw:
                        kernel[rh, rw, :, :, uh, uw] = weight[:, :, th, tw].T
    return kernel.reshape(sh * sw * c_out, c_in, jh, jw), np.tile(bias, sh * sw).astype(np.float32)


def _const(graph: onnx.GraphProto, name: str, value) -> str:
    graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return name


def _stride1_nodes(graph, node, weight, bias, pads, output_padding) -> list[onnx.NodeProto]:
    """One Conv: kernel flipped, channels swapped, padding k-1-p (plus output_padding at the end, whose extra
    rows read only zero padding and so hold the bias, as a ConvTranspose's do)."""
    p, (kh, kw) = node.name or node.output[0], weight.shape[2:]
    conv_pads = [kh - 1 - pads[0], kw - 1 - pads[1], kh - 1 - pads[2] + output_padding[0], kw - 1 - pads[3] + output_padding[1]]
    return [helper.make_node("Conv", [node.input[0], _const(graph, f"{p}/conv_w", stride1_kernel(weight)), _const(graph, f"{p}/conv_b", bias)],
                             list(node.output), name=f"{p}/conv", kernel_shape=[kh, kw], pads=conv_pads)]


def _subpixel_nodes(graph, node, weight, bias, strides, pads, output_padding, in_hw, interleave) -> list[onnx.NodeProto]:
    """Conv (all phases) + interleave + crop, producing node.output[0] in NCHW. interleave: "transpose"
    (channels-last Transpose/Reshape) or "depth-to-space" (DepthToSpace DCR; square strides only)."""
    c_out, (kh, kw), (sh, sw) = weight.shape[1], weight.shape[2:], strides
    kernel, phase_bias = subpixel_kernel(weight, bias, strides=strides)
    jh, jw = kernel.shape[2:]
    out_h = (in_hw[0] - 1) * sh + kh - pads[0] - pads[2] + output_padding[0]
    out_w = (in_hw[1] - 1) * sw + kw - pads[1] - pads[3] + output_padding[1]
    # phase grid of the Conv's output; output_padding can reach past the full ConvTranspose output, where
    # only the bias lands: extra end padding (zeros in, bias out) covers those rows
    extra_h = max(0, -(-(pads[0] + out_h - sh * (in_hw[0] + jh - 1)) // sh))
    extra_w = max(0, -(-(pads[1] + out_w - sw * (in_hw[1] + jw - 1)) // sw))
    h, w = in_hw[0] + jh - 1 + extra_h, in_hw[1] + jw - 1 + extra_w
    p = node.name or node.output[0]
    t = [f"{p}/subpixel_{i}" for i in range(6)]
    conv = helper.make_node("Conv", [node.input[0], _const(graph, f"{p}/subpixel_w", kernel), _const(graph, f"{p}/subpixel_b", phase_bias)],
                            [t[0]], name=f"{p}/subpixel_conv", kernel_shape=[jh, jw], pads=[jh - 1, jw - 1, jh - 1 + extra_h, jw - 1 + extra_w])
    if interleave == DEPTH_TO_SPACE and sh == sw:  # DCR reads channel (rh*s + rw)*C + c: the kernel's (rh, rw, c) order
        return [conv,
                helper.make_node("DepthToSpace", [t[0]], [t[1]], name=f"{p}/interleave", blocksize=sh, mode="DCR"),  # (N,C,s*h,s*w)
                helper.make_node("Slice", [t[1], _const(graph, f"{p}/crop_start", np.array(pads[:2], np.int64)),
                                           _const(graph, f"{p}/crop_end", np.array([pads[0] + out_h, pads[1] + out_w], np.int64)),
                                           _const(graph, f"{p}/crop_axes", np.array([2, 3], np.int64))], list(node.output), name=f"{p}/crop")]
    return [
        conv,
        helper.make_node("Transpose", [t[0]], [t[1]], name=f"{p}/to_nhwc", perm=[0, 2, 3, 1]),  # (N,h,w,sh*sw*C)
        helper.make_node("Reshape", [t[1], _const(graph, f"{p}/shape_phases", np.array([0, h, w, sh, sw * c_out], np.int64))],
                         [t[2]], name=f"{p}/split_rows"),  # (N,h,w,rh,rw*C)
        helper.make_node("Transpose", [t[2]], [t[3]], name=f"{p}/interleave", perm=[0, 1, 3, 2, 4]),  # (N,h,rh,w,rw*C)
        helper.make_node("Reshape", [t[3], _const(graph, f"{p}/shape_image", np.array([0, h * sh, w * sw, c_out], np.int64))],
                         [t[4]], name=f"{p}/merge"),  # (N,sh*h,sw*w,C)
        helper.make_node("Slice", [t[4], _const(graph, f"{p}/crop_start", np.array(pads[:2], np.int64)),
                                   _const(graph, f"{p}/crop_end", np.array([pads[0] + out_h, pads[1] + out_w], np.int64)),
                                   _const(graph, f"{p}/crop_axes", np.array([1, 2], np.int64))], [t[5]], name=f"{p}/crop"),
        helper.make_node("Transpose", [t[5]], list(node.output), name=f"{p}/to_nchw", perm=[0, 3, 1, 2]),
    ]


def conv_transpose_as_conv(model: onnx.ModelProto, interleave: str = TRANSPOSE) -> onnx.ModelProto:
    """A copy of model with every ConvTranspose replaced by an equivalent Conv (see module docstring).
    interleave: how strided layers put their phases back in place, TRANSPOSE (what int8 runs fastest) or
    DEPTH_TO_SPACE (one DepthToSpace node; layers whose strides differ between the axes keep TRANSPOSE).

    A ConvTranspose the rewrite cannot express (groups, dilations, an explicit output_shape, weights computed
    in the graph...) is left as it is, with one warning line naming it: int8 then keeps it in fp32.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    in_hw = _spatial_sizes(model)
    weights = {i.name: i for i in graph.initializer}
    nodes, dropped = [], set()
    for node in graph.node:
        plan = _plan(node, weights, in_hw) if node.op_type == "ConvTranspose" else None
        if plan is None or isinstance(plan, str):
            if plan is not None:
                log.warning("ConvTranspose %r has %s: not rewritten to Conv, it stays fp32 in int8 graphs", node.name, plan)
            nodes.append(node)
            continue
        weight, bias, strides, pads, output_padding = plan
        dropped.update(node.input[1:3])
        if all(s == 1 for s in strides):
            nodes.extend(_stride1_nodes(graph, node, weight, bias, pads, output_padding))
        else:
            nodes.extend(_subpixel_nodes(graph, node, weight, bias, strides, pads, output_padding, in_hw[node.input[0]], interleave))
    return _replace_nodes(model, nodes, dropped)


def _replace_nodes(model: onnx.ModelProto, nodes: list, dropped: set) -> onnx.ModelProto:
    """model with graph nodes `nodes`, the `dropped` initializers no node reads removed, shapes re-inferred, checked."""
    graph = model.graph
    still_used = {name for n in nodes for name in n.input}
    kept = [i for i in graph.initializer if i.name not in dropped or i.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # stale for the replaced tensors; re-inferred below
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


def pad_input_channels(model: onnx.ModelProto, multiple: int = 4) -> onnx.ModelProto:
    """A copy of model in which every ungrouped Conv that reads a graph input with C channels, C not a
    multiple of `multiple`, reads it zero-padded (Pad) to the next multiple instead, its kernel given zero
    taps for the added channels: the same sums, plus zeros (see module docstring)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    weights = {i.name: i for i in graph.initializer}
    nodes, dropped = [], set()
    for node in graph.node:
        if node.op_type != "Conv" or node.input[0] not in graph_inputs or _attr(node, "group", 1) != 1 or node.input[1] not in weights:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)  # [C_out, C, k...]
        extra = -weight.shape[1] % multiple
        if not extra:
            nodes.append(node)
            continue
        p = node.name or node.output[0]
        padded = np.concatenate([weight, np.zeros((weight.shape[0], extra, *weight.shape[2:]), np.float32)], axis=1)
        pads = np.zeros(2 * weight.ndim, np.int64)
        pads[weight.ndim + 1] = extra  # Pad's layout: all begins, then all ends; axis 1 is the channel axis
        nodes.append(helper.make_node("Pad", [node.input[0], _const(graph, f"{p}/channel_pads", pads)], [f"{p}/padded_input"],
                                      name=f"{p}/pad_channels"))
        conv = onnx.NodeProto.FromString(node.SerializeToString())
        conv.input[0], conv.input[1] = f"{p}/padded_input", _const(graph, f"{p}/padded_w", padded)
        nodes.append(conv)
        dropped.add(node.input[1])
    return _replace_nodes(model, nodes, dropped)


REWRITES = {  # name -> ModelProto -> ModelProto
    "conv-transpose-as-conv": conv_transpose_as_conv,
    "conv-transpose-as-conv-d2s": lambda model: conv_transpose_as_conv(model, DEPTH_TO_SPACE),
    "pad-input-channels": pad_input_channels,
}
