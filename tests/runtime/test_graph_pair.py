"""runtime/inference/graph_pair.py: a variant's encoder and decoder of a model dir (or graph files outside its
manifest) run with the manifest's io names, outputs checked, on the shipped model (no torch)."""

import shutil

import numpy as np
import pytest

from edgevae.runtime import ModelDirError, VAERuntime
from edgevae.runtime.contract import manifest as contract
from edgevae.runtime.contract.errors import InputError
from edgevae.runtime.inference.graph_pair import GraphPair
from edgevae.runtime.inference.sessions import SessionConfig


@pytest.fixture(scope="module")
def images(shipped):
    return np.random.default_rng(0).random((5, *shipped.image_shape), dtype=np.float32)


def test_a_variant_pair_gives_what_the_runtime_gives_before_its_conventions(shipped, images):
    """The shipped model's conventions are the identity (pixels and latent in [0, 1] and N(0, I), Bernoulli
    means), so encode and decode must equal VAERuntime's bit for bit on the same variant."""
    for variant in shipped.manifest.variants:
        pair, rt = GraphPair.of_variant(shipped, variant), VAERuntime.load(None, variant=variant, threads=None)
        mu, logvar = pair.encode(images)
        want_mu, want_logvar = rt.encode(images)
        assert np.array_equal(mu, want_mu) and np.array_equal(logvar, want_logvar), variant
        assert np.array_equal(pair.decode(mu), rt.decode(mu)), variant


def test_rows_per_call_do_not_change_the_outputs(shipped, images):
    """run concatenates its calls in order: one row per call gives the whole batch's outputs."""
    pair = GraphPair.of_variant(shipped, "fp32")
    whole = pair.run("encoder", images)
    for a, b in zip(whole, pair.run("encoder", images, rows=2)):
        assert a.shape == (5, *shipped.latent_shape) and np.allclose(a, b, rtol=0, atol=1e-5)


def test_files_outside_the_manifest_run_against_its_io(shipped, images, tmp_path):
    files = {g: shipped.path / shipped.manifest.variants["int8"][g].file for g in contract.GRAPH_NAMES}
    loose = GraphPair.of_files(shipped, files)
    listed = GraphPair.of_variant(shipped, "int8")
    assert np.array_equal(loose.encode(images)[0], listed.encode(images)[0])
    assert loose.label("decoder") == files["decoder"].name
    with pytest.raises(ValueError, match="exactly the graphs"):
        GraphPair.of_files(shipped, {"decoder": files["decoder"]})


def test_feed_uses_the_manifests_input_names_and_call_runs_bare(shipped):
    pair = GraphPair.of_variant(shipped, "fp32", config=SessionConfig(threads=1))
    z = np.zeros((3, *shipped.latent_shape), np.float32)
    assert list(pair.feed("decoder", z)) == list(shipped.manifest.io["decoder"].inputs)
    (x_hat,) = pair.call("decoder", z)()
    assert np.array_equal(x_hat, pair.decode(z))


def test_sessions_open_on_first_use_only(shipped):
    pair = GraphPair.of_variant(shipped, "fp32")
    pair.decode(np.zeros((1, *shipped.latent_shape), np.float32))
    assert list(pair._sessions) == ["decoder"]  # a pair that only decodes never builds its encoder


def test_an_unlisted_variant_or_a_changed_file_is_the_model_dirs_fault(shipped, tmp_path):
    with pytest.raises(ModelDirError, match="has no variant"):
        GraphPair.of_variant(shipped, "int4")
    copy = contract.load(shutil.copytree(shipped.path, tmp_path / "m"))
    (copy.path / "decoder.onnx").write_bytes((copy.path / "decoder.onnx").read_bytes()[:-1] + b"\0")
    pair = GraphPair.of_variant(copy, "fp32")
    with pytest.raises(ModelDirError, match="does not match its sha256"):
        pair.decode(np.zeros((1, *shipped.latent_shape), np.float32))


def _constant_decoder(shipped, value: float, batch_from_input: bool = True):
    """A decoder (onnx.ModelProto) with the shipped boundary whose x_hat is `value` everywhere (a fixed batch of 2
    when not batch_from_input): hashes can match while the graph is broken."""
    pytest.importorskip("onnx", reason="builds a graph (onnx: the export extra; the runtime itself needs none)")
    from onnx import TensorProto, helper

    c, h, w = shipped.image_shape
    nodes = [helper.make_node("Constant", [], ["v"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [value]))]
    if batch_from_input:
        nodes += [helper.make_node("Shape", ["z"], ["n"], end=1),
                  helper.make_node("Constant", [], ["chw"], value=helper.make_tensor("chw", TensorProto.INT64, [3], [c, h, w])),
                  helper.make_node("Concat", ["n", "chw"], ["shape"], axis=0)]
    else:
        nodes += [helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("shape", TensorProto.INT64, [4], [2, c, h, w]))]
    nodes.append(helper.make_node("Expand", ["v", "shape"], ["x_hat"]))
    graph = helper.make_graph(nodes, "decoder", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", shipped.latent_dim])],
                              [helper.make_tensor_value_info("x_hat", TensorProto.FLOAT, ["batch", c, h, w])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("value, batch_from_input, message", [
    (float("nan"), True, "decoder.broken.onnx returned NaN or inf in x_hat for finite input"),
    (1.5, True, r"returned x_hat values in \[1.5, 1.5\], outside the \[0, 1\] of Bernoulli means"),
    (0.5, False, r"returned x_hat as float32 \[2, 1, 28, 28\] for a batch of 5, expected float32 \[5, 1, 28, 28\]"),
])
def test_every_output_is_checked_and_blamed_on_its_file(shipped, tmp_path, value, batch_from_input, message):
    broken = tmp_path / "decoder.broken.onnx"
    broken.write_bytes(_constant_decoder(shipped, value, batch_from_input).SerializeToString())
    files = {"encoder": shipped.path / "encoder.onnx", "decoder": broken}
    with pytest.raises(ModelDirError, match=message):
        GraphPair.of_files(shipped, files).decode(np.zeros((5, *shipped.latent_shape), np.float32))


def test_a_decoder_overflowing_on_a_huge_z_is_the_callers_fault(shipped):
    from helpers import overflowing_z

    rt = VAERuntime.load(None, variant="fp32")
    with pytest.raises(InputError, match="too large for the decoder"):
        GraphPair.of_variant(shipped, "fp32").decode(overflowing_z(rt))


def test_a_graph_with_another_boundary_is_refused_as_it_opens(shipped, tmp_path):
    onnx = pytest.importorskip("onnx", reason="edits a graph (onnx: the export extra; the runtime itself needs none)")
    renamed = onnx.load(shipped.path / "decoder.onnx")
    renamed.graph.input[0].name = "latent"
    for node in renamed.graph.node:
        node.input[:] = ["latent" if i == "z" else i for i in node.input]
    path = tmp_path / "decoder.renamed.onnx"
    onnx.save(renamed, path)
    pair = GraphPair.of_files(shipped, {"encoder": shipped.path / "encoder.onnx", "decoder": path})
    with pytest.raises(ModelDirError, match=r"decoder.renamed.onnx has inputs \['latent'\]"):
        pair.session("decoder")
