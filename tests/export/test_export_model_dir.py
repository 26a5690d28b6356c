"""The model dir export writes: files, manifest contract, graph structure, refusal, overwrite, ORT format."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgevae import __version__
from edgevae.export import exporter
from edgevae.export.graphs import export_graphs
from edgevae.export.validate import TOLERANCE, check_parity
from edgevae.runtime.contract.manifest import Training, load
from helpers import make_model, make_model_dir, sha256_of


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("m") / "model", seed=0, latent_dim=16)


@pytest.fixture(scope="module")
def graphs_of_seed1():
    return export_graphs(make_model(seed=1, latent_dim=8), metadata={})


@pytest.fixture
def quick_export(monkeypatch, graphs_of_seed1):
    """export_model_dir for make_model(seed=1, latent_dim=8), reusing graphs exported once (export takes seconds)."""
    monkeypatch.setattr(exporter, "export_graphs", lambda model, metadata: graphs_of_seed1)
    return lambda out, **kw: exporter.export_model_dir(make_model(seed=1, latent_dim=8), out, **kw)


def manifest_of(model_dir) -> dict:
    """The manifest as the runtime reads and checks it: what export writes must pass its checks."""
    return load(model_dir).manifest.to_json()


def leftovers(folder):
    """Hidden temporary folders export may have left beside its destination."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_manifest_follows_the_contract(model_dir):
    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "edgevae-model/1" and manifest["edgevae_version"] == __version__
    assert manifest["latent_dim"] == 16 and manifest["image_shape"] == [1, 28, 28]
    assert manifest["io"] == {"encoder": {"inputs": ["x"], "outputs": ["mu", "logvar"]},
                              "decoder": {"inputs": ["z"], "outputs": ["x_hat"]}}
    assert set(manifest["variants"]) == {"fp32"}
    for graph, entry in manifest["variants"]["fp32"].items():
        path = model_dir / entry["file"]
        assert entry["file"] == f"{graph}.onnx" and entry["sha256"] == sha256_of(path)
        assert entry["bytes"] == path.stat().st_size
    goldens = [e["file"] for e in manifest["golden"]["inputs"].values()]
    goldens += [e["file"] for outs in manifest["golden"]["outputs"]["fp32"].values() for e in outs.values()]
    assert len(goldens) == 5 and all(name.startswith("golden.") and name.endswith(".npy") for name in goldens)
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(["decoder.onnx", "encoder.onnx", "manifest.json", *goldens])
    assert manifest_of(model_dir) == manifest


def test_manifest_records_parity_per_graph_output_and_batch(model_dir):
    parity = manifest_of(model_dir)["parity"]
    assert parity["tolerance"] == TOLERANCE and "uniform random" in parity["encoder_inputs"]
    diffs = parity["max_abs_diff"]
    assert {g: {b: set(o) for b, o in rows.items()} for g, rows in diffs.items()} == {
        "encoder": {b: {"mu", "logvar"} for b in ("1", "3", "64")},
        "decoder": {b: {"x_hat"} for b in ("1", "3", "64")}}
    assert all(0 <= d <= TOLERANCE for rows in diffs.values() for outs in rows.values() for d in outs.values())


@pytest.mark.parametrize("graph", ["encoder", "decoder"])
def test_graph_file_is_self_contained_checked_and_batch_dynamic(model_dir, graph):
    manifest = manifest_of(model_dir)
    proto = onnx.load(model_dir / f"{graph}.onnx", load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [manifest["opset"]]
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(proto.graph.input) + list(proto.graph.output)}
    assert dims == ({"x": ["batch", 1, 28, 28], "mu": ["batch", 16], "logvar": ["batch", 16]} if graph == "encoder"
                    else {"z": ["batch", 16], "x_hat": ["batch", 1, 28, 28]})
    assert len(proto.graph.value_info) > 0  # shape inference ran: intermediate shapes are recorded
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["edgevae_version"] == __version__ and props["latent_dim"] == "16" and props["graph"] == graph
    assert not any(n.op_type in ("RandomNormal", "RandomNormalLike") for n in proto.graph.node)


def test_graphs_run_at_any_batch_size_in_onnxruntime(model_dir):
    enc = ort.InferenceSession(model_dir / "encoder.onnx", providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(model_dir / "decoder.onnx", providers=["CPUExecutionProvider"])
    for n in (1, 5, 130):
        mu, logvar = enc.run(None, {"x": np.zeros((n, 1, 28, 28), np.float32)})
        (x_hat,) = dec.run(None, {"z": mu})
        assert mu.shape == logvar.shape == (n, 16) and x_hat.shape == (n, 1, 28, 28)


def test_training_metrics_go_into_manifest_and_metadata(tmp_path):
    training = {"epoch": 3, "final": {"test_neg_elbo": 250.5}, "train_config": {"epochs": 3}}
    out = exporter.export_model_dir(make_model(seed=1, latent_dim=8), tmp_path / "m", training=Training(**training))
    assert manifest_of(out)["training"] == training
    props = {p.key: p.value for p in onnx.load(out / "decoder.onnx").metadata_props}
    assert json.loads(props["training"]) == training


def test_parity_check_rejects_graphs_of_other_weights(graphs_of_seed1):
    with pytest.raises(ValueError, match=r"encoder output mu at batch 1 differs from PyTorch .*export refused"):
        check_parity(make_model(seed=2, latent_dim=8), graphs_of_seed1)


def test_export_refused_on_parity_leaves_nothing(tmp_path, monkeypatch, graphs_of_seed1):
    # fault injection: the graphs come from other weights than the model that is checked against them
    monkeypatch.setattr(exporter, "export_graphs", lambda model, metadata: graphs_of_seed1)
    with pytest.raises(ValueError, match="differs from PyTorch"):
        exporter.export_model_dir(make_model(seed=2, latent_dim=8), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_non_empty_destination_unless_forced(tmp_path, quick_export):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty; pass --force"):
        quick_export(out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    quick_export(out, force=True)
    assert not (out / "keep.txt").exists() and manifest_of(out)["latent_dim"] == 8
    assert leftovers(tmp_path) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a folder"):
        quick_export(tmp_path / "file")


def test_export_into_an_existing_empty_folder(tmp_path, quick_export):
    (tmp_path / "m").mkdir()
    out = quick_export(tmp_path / "m")
    assert (out / "manifest.json").is_file() and leftovers(tmp_path) == []


def test_ort_format_files_operators_and_outputs(tmp_path, quick_export):
    out = quick_export(tmp_path / "m", ort_format=True)
    entry = manifest_of(out)["ort"]
    ops = entry["required_operators"]["operators"]
    # every encoder Conv is followed by a LeakyRelu (export/fold.py folded the last one away): onnxruntime fuses
    # each pair into one FusedConv when it writes the .ort file
    assert {"FusedConv", "ConvTranspose", "Gemm", "Sigmoid"} <= {op for names in ops.values() for op in names}
    assert entry["required_operators"]["sha256"] == sha256_of(out / "required_operators.config")
    z = np.random.default_rng(0).standard_normal((4, 8), dtype=np.float32)
    outs = []
    for suffix in ("onnx", "ort"):
        graph = entry["graphs"]["decoder"] if suffix == "ort" else manifest_of(out)["variants"]["fp32"]["decoder"]
        assert graph["file"] == f"decoder.{suffix}" and graph["sha256"] == sha256_of(out / graph["file"])
        sess = ort.InferenceSession(out / graph["file"], providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {"z": z})[0])
    assert np.max(np.abs(outs[0] - outs[1])) < 1e-5  # the same model, optimised ahead of time
    assert entry["graphs"]["encoder"]["max_abs_diff_vs_onnx"] < 1e-5
