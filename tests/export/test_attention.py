"""export/attention.py: int8 leaves attention's MatMuls of two activations (q.k^T, probabilities.v) and the Softmax
between them out of quantization, and quantizes a MatMul with a weight (an initializer or a Constant node's)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgevae.export.attention import activation_matmuls, attention_fp32_nodes


def attention_graph() -> onnx.ModelProto:
    """x [batch, 8, 4] -> q = x.wq (initializer), k^T = wk.x^T (Constant, on the left) -> scores = q.k^T ->
    Softmax -> p.x -> out; and a Softmax of a projection (not attention's)."""
    rng = np.random.default_rng(0)
    wq = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "wq")
    wk = helper.make_tensor("wk_value", TensorProto.FLOAT, (4, 4), rng.standard_normal(16).astype(np.float32).tolist())
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"], name="q_proj"),
             helper.make_node("Constant", [], ["wk"], value=wk, name="wk_const"),
             helper.make_node("Transpose", ["x"], ["x_t"], perm=[0, 2, 1], name="x_t"),
             helper.make_node("MatMul", ["wk", "x_t"], ["k_t"], name="k_proj"),
             helper.make_node("MatMul", ["q", "k_t"], ["scores"], name="qk"),
             helper.make_node("Softmax", ["scores"], ["p"], axis=-1, name="softmax"),
             helper.make_node("MatMul", ["p", "x"], ["attended"], name="pv"),
             helper.make_node("Softmax", ["attended"], ["out"], axis=-1, name="head_softmax")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8, 4])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 8, 4])
    model = helper.make_model(helper.make_graph(nodes, "attention", [x], [y], [wq]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def test_only_matmuls_of_two_activations_and_their_softmax_are_chosen():
    model = attention_graph()
    assert activation_matmuls(model) == ["qk", "pv"]  # q_proj (initializer) and k_proj (Constant) have a weight
    # the Softmax between q.k^T and probabilities.v; not one after probabilities.v
    assert attention_fp32_nodes(model) == ["qk", "softmax", "pv"]


def test_int8_leaves_attention_fp32_and_quantizes_weight_matmuls(tmp_path):
    from edgevae.export.variants import Int8Settings, quantize_prepared

    onnx.save(attention_graph(), tmp_path / "prepared.onnx")
    calibration = np.random.default_rng(1).standard_normal((16, 8, 4)).astype(np.float32)
    quantize_prepared(tmp_path / "prepared.onnx", tmp_path / "int8.onnx", graph="decoder", calibration=calibration,
                      settings=Int8Settings(calibration="minmax"))
    model = onnx.load(tmp_path / "int8.onnx")
    producer = {out: n.op_type for n in model.graph.node for out in n.output}
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    by_name = {n.name: n for n in model.graph.node}
    for name in ("q_proj", "k_proj"):  # int8: a DQ on the activation and on the weight
        assert [producer.get(i) for i in by_name[name].input] == ["DequantizeLinear", "DequantizeLinear"]
    # scores and probabilities never pass through uint8: onnxruntime cannot fuse q.k^T or Softmax into int8 kernels
    assert not {"scores", "p"} & quantized
    assert by_name["softmax"].input[0] == "scores" and by_name["pv"].input[0] == "p"
    assert "attended" in quantized  # a Softmax outside attention is quantized as before


def test_attention_left_fp32_is_in_no_sensitivity_group_and_in_the_int8_record():
    from edgevae.export.attention import ATTENTION_FP32
    from edgevae.export.sensitivity import node_groups
    from edgevae.export.variants import Int8Settings, _int8_record

    groups = node_groups(attention_graph())
    assert [g.name for g in groups] == ["q_proj", "k_proj"]  # never int8, so nothing for --search to keep fp32
    assert not {"qk", "softmax", "pv"} & {n for g in groups for n in g.nodes}
    assert ATTENTION_FP32 in _int8_record(Int8Settings(), 256)["fp32_nodes"]
