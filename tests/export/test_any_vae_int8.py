"""int8 for graphs the exporter accepts beyond edgevae's own (issue 23): shared initializers (torch's GroupNorm
export) unshared exactly before quantizing, and a pre-flight that fails in seconds naming the graph."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgevae.export.unshare import preflight, shared_initializers, unshare_initializers
from edgevae.export.variants import Int8Settings


def group_norm_like() -> onnx.ModelProto:
    """Two InstanceNormalization nodes reading one scale and one bias, as the optimizer leaves GroupNorm's."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 5, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 5, 5])
    inits = [numpy_helper.from_array(np.full(4, 1.5, np.float32), "ones"),
             numpy_helper.from_array(np.full(4, 0.25, np.float32), "zeros"),
             numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 4, 3, 3)).astype(np.float32), "w")]
    nodes = [helper.make_node("InstanceNormalization", ["x", "ones", "zeros"], ["a"], name="norm1"),
             helper.make_node("Conv", ["a", "w"], ["b"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("InstanceNormalization", ["b", "ones", "zeros"], ["y"], name="norm2")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    return model


def run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_unsharing_gives_each_reader_its_own_copy_and_computes_the_same():
    model = group_norm_like()
    assert shared_initializers(model) == {"ones": ["norm1", "norm2"], "zeros": ["norm1", "norm2"]}
    unshared = unshare_initializers(model)
    assert shared_initializers(unshared) == {}
    assert shared_initializers(model)  # the input is left as it was
    assert len(unshared.graph.initializer) == len(model.graph.initializer) + 2
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(run(unshared, x), run(model, x))  # exact: the same values, the same kernels


def test_preflight_names_the_graph_and_the_nodes_sharing_a_weight(tmp_path):
    path = tmp_path / "g.onnx"
    onnx.save(group_norm_like(), path)
    calibration = np.random.default_rng(2).standard_normal((4, 4, 5, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"int8 decoder: initializer 'ones' is shared by nodes \['norm1', 'norm2'\]"):
        preflight(path, "decoder", calibration=calibration, settings=Int8Settings(calibration="minmax"))
    onnx.save(unshare_initializers(group_norm_like()), path)
    preflight(path, "decoder", calibration=calibration, settings=Int8Settings(calibration="minmax"))  # unshared: the quantizer takes it


@pytest.mark.heavy
def test_a_group_norm_silu_resnet_vae_quantizes_to_int8(tmp_path):
    from edgevae.benchmarks.any_vae_models import resnet_vae
    from edgevae.export.custom import export_vae
    from edgevae.export.quantize import QuantizeConfig, quantize_model_dir
    from edgevae.train.data import DataOverrides
    from edgevae.runtime import VAERuntime

    m = resnet_vae()
    export_vae(m.encoder, m.decoder, tmp_path / "m", image_shape=m.image_shape, latent_shape=m.latent_shape,
               conventions=m.conventions)
    config = QuantizeConfig(variants=("int8",), calibration_images=64, test_images=64, nll_images=0)
    manifest = quantize_model_dir(tmp_path / "m", config, data=DataOverrides(data="sklearn-digits"))
    q = manifest.quality["int8"]
    # a sanity bound, not a kernel figure: a broken quantization (wrong ranges, a dropped node) lands far below
    assert q.decoder_psnr_db is None or q.decoder_psnr_db > 20
    assert q.test_neg_elbo is not None  # a Gaussian head and posterior: nats are declared and reported
    rt = VAERuntime.load(tmp_path / "m", variant="int8", threads=1)
    assert rt.sample(2, seed=0).shape == (2, 3, 64, 64)
