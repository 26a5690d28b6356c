import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgevae.runtime import VAERuntime
from edgevae.runtime.inference import likelihood
from helpers import make_trained_model, need_torch, run_cli, save_test_checkpoint, synthetic_images, write_idx_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(torch model, VAERuntime of its fp32 export, 24 test-like images [24,1,28,28])."""
    need_torch("train and export a model")
    from edgevae.export.exporter import export_model_dir

    model = make_trained_model(seed=1, latent_dim=16, steps=5)
    rt = VAERuntime.load(export_model_dir(model, tmp_path_factory.mktemp("m") / "model"), variant="fp32")
    x = synthetic_images(24, seed=5).astype(np.float32)[:, None] / 255
    return model, rt, x


def test_bernoulli_log_prob_matches_torch_bce_on_logits():
    torch = need_torch("compare with torch's binary cross-entropy")
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    logits = np.clip(rng.normal(0, 4, (3, 1, 28, 28)), -8, 8).astype(np.float32)
    x = rng.random((3, 1, 28, 28)).astype(np.float32)  # continuous targets: both log p and log(1 - p) count
    ref = -F.binary_cross_entropy_with_logits(torch.from_numpy(logits).double(), torch.from_numpy(x).double(),
                                              reduction="none").flatten(1).sum(1).numpy()
    got = likelihood.bernoulli_log_prob(x, torch.sigmoid(torch.from_numpy(logits)).numpy())
    assert np.abs(got - ref).max() < 0.01  # nats per image, 784 pixels
    assert np.abs(got - ref).max() > 0  # fp32 means lose some precision near 1: this is not the logits path


def test_probability_floor_keeps_saturated_pixels_finite():
    x = np.array([0.0, 1.0, 0.0, 1.0], np.float32).reshape(1, 1, 2, 2)
    p = np.array([1.0, 0.0, 0.0, 1.0], np.float32).reshape(1, 1, 2, 2)
    got = likelihood.bernoulli_log_prob(x, p)[0]
    assert got == pytest.approx(math.log(2.0 ** -24) + math.log(np.finfo(np.float32).tiny), rel=1e-5)


def test_logsumexp_is_stable_and_exact():
    a = np.array([[1000.0, -1000.0], [1000.0, -999.0]])
    assert np.allclose(likelihood.logsumexp(a, axis=0), [1000.0 + math.log(2), -999.0 + math.log1p(math.exp(-1))])


@pytest.mark.heavy
def test_numpy_elbo_and_iwae_match_torch_within_a_hundredth_of_a_nat(trained):
    import torch

    from edgevae.train.loss import iwae_nll, neg_elbo

    model, rt, x = trained
    rng = np.random.default_rng(0)
    eps = rng.standard_normal((len(x), rt.latent_dim), dtype=np.float32)
    ours = likelihood.neg_elbo(rt, x, eps=eps)["neg_elbo"]
    with torch.no_grad():  # image by image: the torch loss averages over its batch
        ref = np.array([neg_elbo(model, torch.from_numpy(x[i : i + 1]), eps=torch.from_numpy(eps[i : i + 1])).neg_elbo.item()
                        for i in range(len(x))])
    assert np.abs(ours - ref).max() < 0.01

    k = 50
    iwae_ours = likelihood.iwae_nll(rt, x, k=k, rng=np.random.default_rng(1), chunk=64)
    noise = np.random.default_rng(1)  # the same stream, drawn in the same slices (64 // 24 = 2 samples per call)
    eps_k = np.concatenate([noise.standard_normal((min(2, k - s), len(x), rt.latent_dim), dtype=np.float32)
                            for s in range(0, k, 2)])
    iwae_ref = iwae_nll(model, torch.from_numpy(x), k=k, eps=torch.from_numpy(eps_k)).numpy()
    assert np.abs(iwae_ours - iwae_ref).max() < 0.01
    assert np.all(iwae_ours < ours + 5)  # a tighter bound than one-sample ELBO, up to its noise


@pytest.mark.heavy
def test_eval_of_a_model_dir_reports_nats_with_standard_errors(tmp_path, monkeypatch):
    need_torch("train and export a model")
    from edgevae.export.exporter import export_model_dir
    from edgevae.train.data import DataOverrides
    from edgevae.train.evaluate import evaluate_checkpoint, evaluate_model_dir

    monkeypatch.setenv("EDGEVAE_CACHE", str(tmp_path / "cache"))
    data = str(write_idx_dataset(tmp_path / "idx", n_train=32, n_test=12))
    overrides = DataOverrides(data_dir=data)
    model = make_trained_model(seed=2, latent_dim=8)
    model_dir = export_model_dir(model, tmp_path / "model")
    result = evaluate_model_dir(model_dir, "fp32", data=overrides, iwae_k=20, batch_size=5, workers=1)
    assert result["eval_images"] == 12 and result["iwae_nll_stderr"] > 0
    assert result["iwae_nll"] < result["test_neg_elbo"]
    if os.cpu_count() >= 2:  # the noise of a batch depends on its place alone: any worker count, same figures
        in_two = evaluate_model_dir(model_dir, "fp32", data=overrides, iwae_k=20, batch_size=5, workers=2)
        assert in_two["workers"] == 2 and {k: v for k, v in in_two.items() if k != "workers"} == \
            {k: v for k, v in result.items() if k != "workers"}

    (tmp_path / "run").mkdir()
    ckpt = save_test_checkpoint(tmp_path / "run" / "checkpoint.pt", model)
    via_onnx = evaluate_checkpoint(ckpt, data=overrides, iwae_k=20, batch_size=5, engine="onnx")
    assert via_onnx["iwae_nll"] == pytest.approx(result["iwae_nll"], abs=1e-3)  # same export, same noise
    via_torch = evaluate_checkpoint(ckpt, data=overrides, iwae_k=20, batch_size=5, engine="torch")
    assert via_torch["iwae_nll"] == pytest.approx(result["iwae_nll"], abs=3 * result["iwae_nll_stderr"] + 1)

    proc = run_cli("eval", str(model_dir), "--variant", "fp32", "--data-dir", data,
                           "--iwae-k", "10")
    assert proc.returncode == 0, proc.stderr
    assert "IWAE NLL (k=10)" in proc.stdout and "+-" in proc.stdout
    for bad in (["--variant", "int9"], ["--workers", "0"], ["--workers", "100000"], ["--threads", "0"]):
        proc = run_cli("eval", str(model_dir), *bad, "--data-dir", data)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (bad, proc.stderr)


def _children(pid: int) -> set:
    """PIDs whose parent is pid (from /proc)."""
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


@pytest.mark.heavy
@pytest.mark.skipif(os.cpu_count() < 2 or not Path("/proc").is_dir(), reason="needs 2 cores and /proc")
def test_sigterm_during_a_two_worker_eval_leaves_no_worker_behind(tmp_path, monkeypatch):
    need_torch("train and export a model")
    from edgevae.export.exporter import export_model_dir

    monkeypatch.setenv("EDGEVAE_CACHE", str(tmp_path / "cache"))
    data = str(write_idx_dataset(tmp_path / "idx", n_train=32, n_test=400))
    model_dir = export_model_dir(make_trained_model(seed=2, latent_dim=8), tmp_path / "model")
    proc = subprocess.Popen([sys.executable, "-m", "edgevae", "eval", str(model_dir), "--data-dir", data,
                             "--iwae-k", "5000", "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_children(proc.pid)) < 2:  # both workers started (spawn's resource tracker may be a third child)
        assert proc.poll() is None and time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)
    workers = _children(proc.pid)
    time.sleep(2)
    assert proc.poll() is None, "finished before the signal: the test would prove nothing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("IWAE")]  # less the progress bar
    assert lines == ["edgevae eval: terminated by SIGTERM"]
    deadline = time.monotonic() + 600  # a hang guard only: the verdict is that every worker ends
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
