"""Loading a model dir: every way it can be unusable gives ModelDirError with one line naming the cause;
and the default model shipped in the package (when present) is intact and makes real images."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from helpers import flip_byte, resign, shipped_model_dir

from edgevae.runtime import DEFAULT_MODEL_DIR, ModelDirError, VAERuntime
from edgevae.runtime.contract import manifest as model_dir_module


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    return shipped_model_dir(tmp_path_factory.mktemp("model_dir") / "model")


def edit_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _set(path, value):
    def change(manifest):
        *parents, last = path
        node = manifest
        for key in parents:
            node = node[key]
        node[last] = value
    return change


def _garbage_graph(folder):
    (folder / "decoder.onnx").write_bytes(b"not an onnx graph")
    resign(folder, "decoder.onnx")


def _swap_io_names(folder):
    edit_manifest(folder, _set(["io", "decoder", "inputs"], ["latent"]))


CASES = {
    "no manifest": (lambda d: (d / "manifest.json").unlink(), "has no manifest.json"),
    "not json": (lambda d: (d / "manifest.json").write_text("{oops"), "manifest.json is not valid JSON"),
    "not an object": (lambda d: (d / "manifest.json").write_text("[1, 2]"), "is not a JSON object"),
    "unknown format": (lambda d: edit_manifest(d, _set(["format"], "edgevae-model/9")), "'edgevae-model/9'"),
    "bad latent_dim": (lambda d: edit_manifest(d, _set(["latent_dim"], "64")), "latent_dim must be an integer, got '64'"),
    "no fp32": (lambda d: edit_manifest(d, lambda m: m["variants"].pop("fp32")), "must include 'fp32'"),
    "missing file": (lambda d: (d / "encoder.onnx").unlink(), "encoder.onnx is missing"),
    "path outside": (lambda d: edit_manifest(d, _set(["variants", "fp32", "decoder", "file"], "../decoder.onnx")),
                     "'../decoder.onnx' is not a plain file name inside the dir"),
    "sha256 mismatch": (lambda d: flip_byte(d / "decoder.onnx"), "decoder.onnx does not match its sha256"),
    "not onnx": (_garbage_graph, "decoder.onnx is not a valid ONNX graph"),
    "io names": (_swap_io_names, "the manifest says ['latent']"),
    "latent mismatch": (lambda d: edit_manifest(d, _set(["latent_dim"], 32)), "latent size 64, the manifest says latent_dim 32"),
    "bad selection": (lambda d: edit_manifest(d, _set(["selection"], {"decoder": {"8": "int4"}})), "names variant 'int4'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unusable_model_dir_raises_one_line(tmp_path, good_dir, case):
    broken = tmp_path / "model"
    shutil.copytree(good_dir, broken)
    damage, message = CASES[case]
    damage(broken)
    with pytest.raises(ModelDirError) as info:
        VAERuntime.load(broken).sample(1)  # graphs themselves are checked when their session is built
    assert message in str(info.value) and str(broken) in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_variant_lists_the_known_ones(good_dir):
    with pytest.raises(ModelDirError, match=r"has no variant 'int4' \(has: fp32, or 'auto'\)"):
        VAERuntime.load(good_dir, variant="int4")


def test_missing_folder_and_missing_default_model(tmp_path, monkeypatch):
    with pytest.raises(ModelDirError, match="does not exist or is not a folder"):
        VAERuntime.load(tmp_path / "nowhere")
    monkeypatch.setattr(model_dir_module, "DEFAULT_MODEL_DIR", tmp_path / "default_model")
    with pytest.raises(ModelDirError, match="no default model in this install"):
        VAERuntime.load(None)


def test_default_model_when_given_none(tmp_path, good_dir, monkeypatch):
    monkeypatch.setattr(model_dir_module, "DEFAULT_MODEL_DIR", good_dir)
    assert np.array_equal(VAERuntime.load(None).sample(4, seed=0), VAERuntime.load(good_dir).sample(4, seed=0))


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "manifest.json").is_file(), reason="no default model shipped in this checkout yet")
def test_shipped_default_model_is_intact_and_makes_real_images():
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    for variant, graphs in manifest["variants"].items():
        for graph, entry in graphs.items():
            assert hashlib.sha256((DEFAULT_MODEL_DIR / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
        samples = VAERuntime.load(None, variant=variant).sample(32, seed=0)
        assert samples.shape == (32, 1, 28, 28)
        flat = samples.reshape(32, -1)
        # real images: none blank or flat, brightness like Fashion-MNIST's (mean pixel 0.286; a model
        # gone wrong gives ~0.5 everywhere or ~0), and they differ from one another
        assert flat.std(1).min() > 0.05
        assert 0.15 < flat.mean() < 0.45
        assert np.abs(flat[:, None] - flat[None]).mean(-1)[~np.eye(32, dtype=bool)].min() > 0.01
