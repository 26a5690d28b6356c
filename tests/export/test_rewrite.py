"""export/rewrite.py: every rewrite (ConvTranspose -> Conv, padded input channels) computes the same function."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgevae.export.rewrite import DEPTH_TO_SPACE, TRANSPOSE, conv_transpose_as_conv, pad_input_channels

TOL = 1e-5  # float32 summation order may differ between the kernels; nothing else may


def run(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]


def conv_transpose_graph(c_in, c_out, k, stride, pads, size, seed=0, output_padding=None, bias=True) -> onnx.ModelProto:
    """One ConvTranspose; k, stride and size may be ints (square) or (h, w) pairs."""
    pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
    (kh, kw), strides, (h, w) = pair(k), pair(stride), pair(size)
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal((c_in, c_out, kh, kw)).astype(np.float32), "w")]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b"))
    extra = {"output_padding": list(output_padding)} if output_padding else {}
    node = helper.make_node("ConvTranspose", ["x", "w", "b"] if bias else ["x", "w"], ["y"], name="ct",
                            strides=strides, pads=pads, **extra)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c_in, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def assert_rewrite_exact(model, c_in, size, interleave=TRANSPOSE):
    h, w = size if isinstance(size, tuple) else (size, size)
    x = np.random.default_rng(1).standard_normal((3, c_in, h, w)).astype(np.float32)
    rewritten = conv_transpose_as_conv(model, interleave)
    assert "ConvTranspose" not in {n.op_type for n in rewritten.graph.node}
    expected, got = run(model, {"x": x}), run(rewritten, {"x": x})
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOL


@pytest.mark.parametrize("c_in,c_out,k,stride,pads,size", [
    (3, 4, 3, 1, [1, 1, 1, 1], 5), (2, 1, 4, 1, [1, 1, 1, 1], 6), (4, 5, 3, 2, [1, 1, 1, 1], 7),
    (4, 3, 3, 2, [0, 0, 0, 0], 6), (2, 3, 4, 2, [1, 0, 2, 1], 5), (3, 2, 5, 3, [2, 1, 1, 2], 4),
    # non-square kernels, strides, pads and inputs, as model.py's rule and other exporters produce them
    (3, 2, (3, 4), 1, [1, 1, 1, 1], (5, 7)), (2, 3, (2, 4), 1, [1, 0, 1, 2], 6), (2, 3, 3, (2, 1), [1, 1, 1, 1], (4, 6)),
    (3, 2, (3, 2), (2, 3), [0, 1, 1, 0], (5, 3)), (2, 2, 3, 2, [1, 0, 1, 0], (3, 5)), (2, 2, 1, 2, [0, 0, 0, 0], 4),
])
@pytest.mark.parametrize("interleave", [TRANSPOSE, DEPTH_TO_SPACE])
def test_single_conv_transpose_rewrite_is_exact(c_in, c_out, k, stride, pads, size, interleave):
    assert_rewrite_exact(conv_transpose_graph(c_in, c_out, k, stride, pads, size), c_in, size, interleave)


@pytest.mark.parametrize("k,stride,pads,output_padding,size", [
    (3, 2, [1, 1, 1, 1], [1, 1], 4), (4, 2, [1, 1, 1, 1], [1, 0], (3, 5)), (3, 2, [0, 0, 0, 0], [1, 1], 3),
    (2, 2, [0, 0, 0, 0], [1, 1], 3), ((3, 5), (3, 2), [1, 2, 0, 1], [2, 1], (4, 3)), (4, (2, 3), [0, 1, 0, 1], [1, 2], 3),
])
@pytest.mark.parametrize("interleave", [TRANSPOSE, DEPTH_TO_SPACE])
def test_output_padding_is_rewritten_exactly(k, stride, pads, output_padding, size, interleave):
    assert_rewrite_exact(conv_transpose_graph(2, 3, k, stride, pads, size, output_padding=output_padding), 2, size,
                         interleave)


def test_conv_transpose_without_bias_is_rewritten():
    assert_rewrite_exact(conv_transpose_graph(2, 3, 3, 2, [1, 1, 1, 1], 4, bias=False), 2, 4)


def test_builtin_configs_decoders_rewrite_exactly():
    """Every ConvTranspose model.py's rule builds, odd and non-square sizes included, rewrites exactly."""
    import torch

    from edgevae.export.graphs import DECODER, export_graph
    from edgevae.train.model import VAE, VAEConfig

    for shape in [(3, 29, 30), (1, 31, 18)]:  # odd remainders: 3x2 final kernels, p3 = 1 on one axis
        torch.manual_seed(0)
        model = VAE(VAEConfig(latent_dim=4, image_shape=shape)).eval()
        decoder = export_graph(model, DECODER, metadata={})
        for interleave in (TRANSPOSE, DEPTH_TO_SPACE):
            rewritten = conv_transpose_as_conv(decoder, interleave)
            assert "ConvTranspose" not in {n.op_type for n in rewritten.graph.node}
            z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
            got, expected = run(rewritten, {"z": z}), run(decoder, {"z": z})
            assert got.shape == (3, *shape) and np.abs(got - expected).max() <= TOL


def test_depth_to_space_rewrite_keeps_every_tensor_4d_and_matches_the_reference_evaluator():
    """The NPU form (fp32-npu, fp16-npu, int8-npu): one DCR DepthToSpace per strided layer and no tensor of rank 5
    (NNAPI's Transpose and Reshape take rank <= 4), and the shipped fp32 decoder rewritten so computes what onnx's
    reference evaluator computes for the ConvTranspose graph, within float32 summation order (TOL)."""
    from onnx.reference import ReferenceEvaluator

    from edgevae.runtime.contract.manifest import DEFAULT_MODEL_DIR

    decoder = onnx.load(DEFAULT_MODEL_DIR / "decoder.onnx")
    rewritten = onnx.shape_inference.infer_shapes(conv_transpose_as_conv(decoder, DEPTH_TO_SPACE))
    ops = [n.op_type for n in rewritten.graph.node]
    strided = sum(1 for n in decoder.graph.node if n.op_type == "ConvTranspose"
                  and any(a.name == "strides" and max(a.ints) > 1 for a in n.attribute))
    assert "ConvTranspose" not in ops and "Transpose" not in ops and ops.count("DepthToSpace") == strided > 0
    modes = {helper.get_attribute_value(a) for n in rewritten.graph.node if n.op_type == "DepthToSpace"
             for a in n.attribute if a.name == "mode"}
    assert modes == {b"DCR"}  # the only mode NNAPI takes
    assert {len(v.type.tensor_type.shape.dim) for v in rewritten.graph.value_info} <= {2, 4}
    z = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    expected = ReferenceEvaluator(decoder).run(None, {"z": z})[0]
    for got in (ReferenceEvaluator(rewritten).run(None, {"z": z})[0], run(rewritten, {"z": z})):
        assert got.shape == expected.shape and np.abs(got - expected).max() <= TOL


def test_decoder_rewrite_is_exact_and_drops_old_weights(tmp_path):
    from helpers import make_model_dir

    model_dir = make_model_dir(tmp_path / "m")  # seed 0: exported once per session, shared with other tests
    decoder = onnx.load(model_dir / "decoder.onnx")
    rewritten = conv_transpose_as_conv(decoder)
    ops = [n.op_type for n in rewritten.graph.node]
    # the exported decoder has 3 ConvTranspose (the first was folded into the Gemm, export/fold.py)
    assert "ConvTranspose" not in ops and ops.count("Conv") == 3 and "DepthToSpace" not in ops
    used = {name for n in rewritten.graph.node for name in n.input}
    assert all(i.name in used for i in rewritten.graph.initializer)  # the replaced kernels are gone
    for batch in (1, 5):
        z = np.random.default_rng(batch).standard_normal((batch, 64)).astype(np.float32)
        assert np.abs(run(rewritten, {"z": z}) - run(decoder, {"z": z})).max() <= TOL


@pytest.mark.parametrize("attribute,value,named", [("dilations", [2, 2], "dilations"), ("group", 2, "group")])
def test_unsupported_conv_transpose_stays_with_one_warning(caplog, attribute, value, named):
    model = conv_transpose_graph(2, 2, 3, 2, [1, 1, 1, 1], 4)
    model.graph.node[0].attribute.append(helper.make_attribute(attribute, value))
    if attribute == "group":  # a grouped kernel is [C_in, C_out/group, k, k]
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w"))
    with caplog.at_level("WARNING", logger="edgevae.export.rewrite"):
        rewritten = conv_transpose_as_conv(model)
    assert [n.op_type for n in rewritten.graph.node] == ["ConvTranspose"]
    assert len(caplog.records) == 1 and "'ct'" in caplog.text and named in caplog.text
    assert "\n" not in caplog.records[0].getMessage()
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    assert np.array_equal(run(rewritten, {"x": x}), run(model, {"x": x}))


def conv_graph(c_in, c_out, group=1, seed=0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((c_out, c_in // group, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1], group=group)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c_in, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


@pytest.mark.parametrize("c_in,group,padded_to", [(1, 1, 4), (3, 1, 4), (5, 1, 8), (4, 1, None), (2, 2, None)])
def test_pad_input_channels_is_exact_and_pads_only_what_it_should(c_in, group, padded_to):
    model = conv_graph(c_in, 4, group)
    x = np.random.default_rng(1).random((3, c_in, 6, 6)).astype(np.float32)
    rewritten = pad_input_channels(model)
    weights = {i.name: numpy_helper.to_array(i) for i in rewritten.graph.initializer}
    conv = next(n for n in rewritten.graph.node if n.op_type == "Conv")
    if padded_to is None:  # already a multiple of 4, or grouped: left alone
        assert [n.op_type for n in rewritten.graph.node] == ["Conv"] and conv.input[1] == "w"
    else:
        assert [n.op_type for n in rewritten.graph.node] == ["Pad", "Conv"] and "w" not in weights
        assert weights[conv.input[1]].shape == (4, padded_to, 3, 3) and not weights[conv.input[1]][:, c_in:].any()
    assert np.abs(run(rewritten, {"x": x}) - run(model, {"x": x})).max() <= TOL


def test_encoder_input_padding_is_exact(tmp_path):
    from helpers import make_model_dir

    encoder = onnx.load(make_model_dir(tmp_path / "m") / "encoder.onnx")
    rewritten = pad_input_channels(encoder)
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops[:2] == ["Pad", "Conv"] and ops[2:] == [n.op_type for n in encoder.graph.node][1:]  # nothing else changed
    session = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(encoder.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = np.random.default_rng(batch).random((batch, 1, 28, 28), dtype=np.float32)
        for got, expected in zip(session.run(None, {"x": x}), reference.run(None, {"x": x})):
            assert got.shape == expected.shape and np.abs(got - expected).max() <= TOL
