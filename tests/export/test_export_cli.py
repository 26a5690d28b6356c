"""`edgevae export` end to end, as a user runs it: one command, one line out, one-line errors."""

import json
import os

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgevae.train.checkpoint import save_checkpoint
from helpers import make_model, make_trained_model, run_cli, save_test_checkpoint, write_idx_dataset


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A briefly trained model's checkpoint, with a metrics.json beside it as `edgevae eval` leaves it."""
    run = tmp_path_factory.mktemp("run")
    model = make_trained_model(seed=0, latent_dim=8)
    save_test_checkpoint(run / "checkpoint.pt", model, epoch=2)
    (run / "metrics.json").write_text(json.dumps({"final": {"epoch": 2, "test_neg_elbo": 300.0, "iwae_nll": 290.0}}))
    return run / "checkpoint.pt", model


@pytest.mark.heavy
def test_export_writes_a_model_dir_matching_the_checkpoint(tmp_path, checkpoint):
    path, model = checkpoint
    data_dir = write_idx_dataset(tmp_path / "idx", n_train=16, n_test=64)
    env = os.environ | {"EDGEVAE_CACHE": str(tmp_path / "cache")}
    result = run_cli("export", path, "--out", tmp_path / "m", "--data-dir", data_dir, env=env)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 and "max abs diff vs PyTorch" in result.stdout
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["latent_dim"] == 8 and f"from {data_dir}" in manifest["parity"]["encoder_inputs"]
    assert manifest["training"]["epoch"] == 2 and manifest["training"]["train_config"]["epochs"] == 2
    assert manifest["training"]["final"] == {"test_neg_elbo": 300.0, "test_bce": 280.0, "test_kl": 20.0,
                                             "iwae_nll": 290.0}  # metrics.json's eval figures merged in
    z = np.random.default_rng(0).standard_normal((5, 8), dtype=np.float32)
    sess = ort.InferenceSession(tmp_path / "m" / "decoder.onnx", providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = model.decoder(torch.from_numpy(z)).numpy()
    assert np.max(np.abs(sess.run(None, {"z": z})[0] - want)) < 1e-5  # the checkpoint's weights, not fresh ones


def other_architecture(path):
    save_checkpoint(path, {"epoch": 1, "model_config": {"latent_dim": 8}, "model": nn.Linear(3, 2).state_dict()})


def wrong_latent_dim(path):
    state = {"epoch": 1, "model_config": {"latent_dim": 16}, "model": make_model(latent_dim=8).state_dict()}
    save_checkpoint(path, state)


def truncated(path):
    save_test_checkpoint(path, make_model(latent_dim=8))
    path.write_bytes(path.read_bytes()[:5000])


# missing and non-edgevae checkpoints are refused by the same read_checkpoint code as "garbage"
BAD_CHECKPOINTS = {
    "garbage": (lambda p: p.write_bytes(b"not a checkpoint\n" * 10), "is not a readable PyTorch checkpoint"),
    "truncated": (truncated, "is not a readable PyTorch checkpoint"),
    "other architecture": (other_architecture, "does not hold the edgevae VAE architecture"),
    "wrong latent dim": (wrong_latent_dim, "does not hold the edgevae VAE architecture"),
}


@pytest.mark.heavy
@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_export_refuses_a_bad_checkpoint_in_one_line(tmp_path, case):
    make, message = BAD_CHECKPOINTS[case]
    path = tmp_path / "checkpoint.pt"
    make(path)
    result = run_cli("export", path, "--out", tmp_path / "m")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("edgevae export: error: ")
    assert message in result.stderr and str(path) in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no model dir, no temporary folder


@pytest.mark.heavy
def test_export_refuses_to_overwrite_without_force(tmp_path, checkpoint):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep").write_text("")
    result = run_cli("export", checkpoint[0], "--out", tmp_path / "m")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "--force" in result.stderr
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["keep"]
