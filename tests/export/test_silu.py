"""export/silu.py: a SiLU's Sigmoid runs int8 (QLinearSigmoid + QLinearMul in onnxruntime), an output head's stays
fp32; sensitivity groups hold a SiLU whole; and `quantize --search` on a tiny GroupNorm/SiLU VAE."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgevae.export.silu import head_sigmoids, silu_pairs


def silu_graph() -> onnx.ModelProto:
    """Conv -> SiLU -> Conv -> SiLU (Mul inputs the other way round) -> Sigmoid(gate) * h (not a SiLU) -> Conv
    -> Sigmoid (the head)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((4, c, 3, 3)).astype(np.float32) * 0.3, f"w{k}")
               for k, c in enumerate((2, 4, 4))]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("Sigmoid", ["a"], ["sa"], name="silu0/sigmoid"),
             helper.make_node("Mul", ["a", "sa"], ["h"], name="silu0/mul"),
             helper.make_node("Conv", ["h", "w1"], ["b"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Sigmoid", ["b"], ["sb"], name="silu1/sigmoid"),
             helper.make_node("Mul", ["sb", "b"], ["g"], name="silu1/mul"),
             helper.make_node("Sigmoid", ["h"], ["gate"], name="gate/sigmoid"),
             helper.make_node("Mul", ["g", "gate"], ["gated"], name="gate/mul"),
             helper.make_node("Conv", ["gated", "w2"], ["logits"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Sigmoid", ["logits"], ["x_hat"], name="head")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 6, 6])
    y = helper.make_tensor_value_info("x_hat", TensorProto.FLOAT, ["batch", 4, 6, 6])
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], weights), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def test_silu_pairs_are_x_times_sigmoid_x_in_either_order_and_nothing_else():
    model = silu_graph()
    assert silu_pairs(model) == [("silu0/sigmoid", "silu0/mul"), ("silu1/sigmoid", "silu1/mul")]
    # a gate multiplying another tensor, and the output's Bernoulli means, are not SiLUs: left out of quantization
    assert head_sigmoids(model) == ["gate/sigmoid", "head"]


def test_a_sigmoid_whose_output_the_graph_returns_stays_fp32_even_in_a_silu():
    model = silu_graph()
    model.graph.output.append(helper.make_tensor_value_info("sa", TensorProto.FLOAT, None))
    assert head_sigmoids(model) == ["silu0/sigmoid", "gate/sigmoid", "head"]


def _quantized(tmp_path, fp32_groups=()):
    """silu_graph as int8 builds it (minmax calibration on seeded inputs), with fp32_groups kept fp32."""
    import dataclasses

    from edgevae.export import sensitivity
    from edgevae.export.variants import Int8Settings

    onnx.save(silu_graph(), tmp_path / "g.onnx")
    calibration = np.random.default_rng(1).standard_normal((16, 2, 6, 6)).astype(np.float32)
    prepared = sensitivity.prepare("decoder", tmp_path / "g.onnx", calibration=calibration, work=tmp_path)
    settings = dataclasses.replace(Int8Settings(calibration="minmax"),
                                   fp32_nodes=sensitivity.fp32_nodes_of(list(prepared.groups), fp32_groups))
    return prepared, prepared.build(tmp_path / "int8.onnx", settings)


def _neighbours(model: onnx.ModelProto, name: str) -> tuple[str, list[str]]:
    """(op of the node producing node `name`'s first input, ops of the nodes reading its output)."""
    node = next(n for n in model.graph.node if n.name == name)
    producer = next((n.op_type for n in model.graph.node if node.input[0] in n.output), "graph input")
    return producer, [n.op_type for n in model.graph.node if node.output[0] in n.input]


def _optimized(path, tmp_path) -> onnx.ModelProto:
    """The graph onnxruntime's CPU provider runs for the graph at path (the runtime's session options)."""
    from edgevae.runtime.inference.sessions import SessionConfig, session_options

    options = session_options(SessionConfig(threads=1))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # QDQ fusions, no NCHWc layout
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(tmp_path / "optimized.onnx")


def test_int8_quantizes_a_silu_whole_and_keeps_the_head_sigmoid_fp32(tmp_path):
    _, path = _quantized(tmp_path)
    model = onnx.load(path)
    for name in ("silu0/sigmoid", "silu1/sigmoid"):  # Q/DQ around the SiLU's Sigmoid: it runs int8
        assert _neighbours(model, name) == ("DequantizeLinear", ["QuantizeLinear"])
    assert _neighbours(model, "head")[1] == []  # Bernoulli means leave the graph in fp32, never quantized
    optimized = _optimized(path, tmp_path)
    ops = [n.op_type for n in optimized.graph.node]
    # onnxruntime runs the SiLU Sigmoids as lookup tables and their Muls in uint8 (the gate, read by an int8 Mul,
    # too: see export/silu.py), and the head as an fp32 Sigmoid
    assert ops.count("QLinearSigmoid") >= 2 and ops.count("QLinearMul") >= 2
    assert next(n.op_type for n in optimized.graph.node if "x_hat" in n.output) == "Sigmoid"


def test_a_group_kept_fp32_keeps_its_silu_fp32_too(tmp_path):
    from edgevae.export.sensitivity import node_groups

    prepared, _ = _quantized(tmp_path)
    groups = {g.name: g.nodes for g in node_groups(onnx.load(prepared.prepared))}
    silu0 = {n.name for n in onnx.load(prepared.prepared).graph.node if n.name.startswith("silu0/")}
    assert silu0 and silu0 <= set(groups["conv0"])  # the SiLU after conv0 belongs to conv0's group
    assert not {"head", "gate/sigmoid"} & {n for nodes in groups.values() for n in nodes}
    _, path = _quantized(tmp_path, fp32_groups=["conv0"])
    model = onnx.load(path)
    sigmoid = next(n.name for n in model.graph.node if n.name.startswith("silu0/") and n.op_type == "Sigmoid")
    assert _neighbours(model, sigmoid)[0] != "DequantizeLinear"  # reads conv0's fp32 output directly


class TinyGroupNormSiLU:
    """A GroupNorm/SiLU VAE small enough to search in seconds: RGB 16x16, latent [4, 4, 4]."""

    @staticmethod
    def modules():
        import torch
        from torch import nn

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.GroupNorm(4, 16), nn.SiLU(), nn.Conv2d(16, 16, 3, 2, 1),
                                         nn.GroupNorm(4, 16), nn.SiLU(), nn.Conv2d(16, 8, 1))

            def forward(self, x):
                h = self.net(x)
                return h[:, :4], h[:, 4:]

        torch.manual_seed(0)
        decoder = nn.Sequential(nn.Conv2d(4, 16, 3, 1, 1), nn.GroupNorm(4, 16), nn.SiLU(), nn.Upsample(scale_factor=2),
                                nn.Conv2d(16, 16, 3, 1, 1), nn.GroupNorm(4, 16), nn.SiLU(), nn.Upsample(scale_factor=2),
                                nn.Conv2d(16, 3, 3, 1, 1))
        return Encoder().eval(), decoder.eval()


@pytest.mark.heavy
def test_search_runs_on_a_group_norm_silu_vae_and_writes_a_valid_variant(tmp_path):
    from edgevae.export.custom import export_vae
    from edgevae.export.mixed import SearchConfig
    from edgevae.export.quantize import QuantizeConfig, quantize_model_dir
    from edgevae.export.sensitivity import fp32_compute_nodes
    from edgevae.runtime import VAERuntime
    from edgevae.runtime.contract.manifest import Conventions
    from edgevae.train.data import DataOverrides

    encoder, decoder = TinyGroupNormSiLU.modules()
    conventions = Conventions(pixel_range=(-1.0, 1.0), decoder_head="gaussian_mean", decoder_scale=0.1, downsampling=4)
    export_vae(encoder, decoder, tmp_path / "m", image_shape=(3, 16, 16), latent_shape=(4, 4, 4), conventions=conventions)
    # a budget only some fp32 layers meet (fp32 differs from the rewritten graph by summation order only), and a
    # speed floor no machine misses: the structure is tested, not this CPU's timing
    config = QuantizeConfig(variants=("int8",), calibration_images=32, test_images=16, nll_images=0, search=SearchConfig(
        budget_psnr=120.0, min_speedup=0.01, budget_s=300, methods=("minmax",), per_channel=(False,), symmetric=(False,),
        speed_batch=8, quick_rounds=1, timing_batches=(1,), retime_rounds=1))
    manifest = quantize_model_dir(tmp_path / "m", config, data=DataOverrides(data="sklearn-digits"))
    report = json.loads((tmp_path / "m" / "quant-search.json").read_text())
    assert report["summary"]["met"] and "int8-mixed" in manifest.variants
    assert {r["graph"] for r in report["sensitivity"]} == {"encoder", "decoder"}
    record = manifest.quality["int8-mixed"].settings["graphs"]
    for graph in ("encoder", "decoder"):
        written = onnx.load(tmp_path / "m" / manifest.variants["int8-mixed"][graph].file)
        onnx.checker.check_model(written)
        assert sorted(fp32_compute_nodes(written)) == sorted(record[graph]["fp32_groups"])
    psnr = manifest.quality["int8-mixed"].decoder_psnr_db
    assert psnr is None or psnr >= 120.0
    rt = VAERuntime.load(tmp_path / "m", variant="int8-mixed", threads=1)
    assert rt.sample(2, seed=0).shape == (2, 3, 16, 16)
