import json
import subprocess
import sys

import pytest
import torch

from edgevae.train import checkpoint as checkpoint_module
from edgevae.train.checkpoint import load_model
from edgevae.train.data import DataOverrides
from edgevae.train.evaluate import evaluate_checkpoint
from edgevae.train.model import VAEConfig
from edgevae.train.trainer import TrainConfig, train
from helpers import run_cli, write_idx_dataset

SMALL = VAEConfig(latent_dim=8)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVAE_CACHE", str(tmp_path / "cache"))
    return str(write_idx_dataset(tmp_path / "idx", n_train=256, n_test=64))


@pytest.mark.heavy
def test_training_lowers_the_loss_and_writes_the_run(tmp_path, data_dir):
    metrics = train(TrainConfig(epochs=3, batch_size=32, data_dir=data_dir), tmp_path / "run", model_config=SMALL)
    losses = [row["test_neg_elbo"] for row in metrics["epochs"]]
    assert losses[-1] < losses[0] - 20  # nats per image
    assert {"test_neg_elbo", "test_bce", "test_kl", "epoch"} <= metrics["final"].keys()
    for name in ("checkpoint.pt", "config.json", "metrics.json", "reconstructions.png", "samples.png", "neg_elbo.png"):
        assert (tmp_path / "run" / name).is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["latent_dim"] == 8


def test_cosine_lr_schedule_decays_to_the_floor_and_holds_it():
    from edgevae.train.trainer import LR_FLOOR, lr_at

    cfg = TrainConfig(lr=1e-3, lr_decay_epochs=10)
    assert lr_at(cfg, 0) == 1e-3 and lr_at(cfg, 5) == pytest.approx(1e-3 * (1 + LR_FLOOR) / 2)
    assert lr_at(cfg, 10) == lr_at(cfg, 25) == pytest.approx(1e-3 * LR_FLOOR)
    rates = [lr_at(cfg, p / 10) for p in range(101)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert lr_at(TrainConfig(lr=2e-3), 7.5) == 2e-3  # lr_decay_epochs 0: constant
    for bad in ({"lr_decay_epochs": -1}, {"lr_decay_epochs": float("nan")}, {"lr": float("nan")}, {"lr": float("inf")},
                {"beta": float("nan")}, {"kl_warmup_epochs": float("inf")}):
        with pytest.raises(ValueError, match="lr_decay_epochs >= 0, all finite"):
            TrainConfig(**bad)


@pytest.mark.heavy
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, data_dir):
    cfg = TrainConfig(epochs=3, batch_size=64, data_dir=data_dir, seed=7, kl_warmup_epochs=2, lr_decay_epochs=2.5)
    train(cfg, tmp_path / "straight", model_config=SMALL)
    train(TrainConfig(**{**cfg.__dict__, "epochs": 1}), tmp_path / "resumed", model_config=SMALL)
    train(cfg, tmp_path / "resumed", model_config=SMALL, resume=True)
    straight, _ = load_model(tmp_path / "straight" / "checkpoint.pt")
    resumed, state = load_model(tmp_path / "resumed" / "checkpoint.pt")
    assert state["epoch"] == 3 and [r["epoch"] for r in state["history"]] == [1, 2, 3]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.heavy
def test_resume_refuses_other_settings(tmp_path, data_dir):
    train(TrainConfig(epochs=1, batch_size=64, data_dir=data_dir), tmp_path / "run", model_config=SMALL)
    with pytest.raises(ValueError, match="other settings"):
        train(TrainConfig(epochs=2, batch_size=32, data_dir=data_dir), tmp_path / "run", model_config=SMALL, resume=True)


@pytest.mark.heavy
def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, data_dir, monkeypatch):
    run = tmp_path / "run"
    train(TrainConfig(epochs=1, batch_size=64, data_dir=data_dir), run, model_config=SMALL)
    before = (run / "checkpoint.pt").read_bytes()

    def save_half_then_fail(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        train(TrainConfig(epochs=2, batch_size=64, data_dir=data_dir), run, model_config=SMALL, resume=True)
    assert (run / "checkpoint.pt").read_bytes() == before
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []
    load_model(run / "checkpoint.pt")


@pytest.mark.heavy
def test_eval_merges_elbo_and_iwae_into_metrics(tmp_path, data_dir):
    run = tmp_path / "run"
    train(TrainConfig(epochs=1, batch_size=64, data_dir=data_dir), run, model_config=SMALL)
    result = evaluate_checkpoint(run / "checkpoint.pt", data=DataOverrides(data_dir=data_dir), iwae_k=50, batch_size=16)
    assert result["iwae_nll"] < result["test_neg_elbo"]
    assert result["iwae_k"] == 50 and result["eval_images"] == 64


@pytest.mark.heavy
def test_cli_reports_bad_input_in_one_line(tmp_path, data_dir):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for argv in (["eval", str(bad), "--data-dir", data_dir],
                 ["train", "--epochs", "0", "--out", str(tmp_path / "r"), "--data-dir", data_dir],
                 ["train", "--epochs", "1", "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path / "none")]):
        proc = run_cli(*argv)
        assert proc.returncode == 2, argv
        assert len(proc.stderr.strip().splitlines()) == 1 and "error" in proc.stderr, proc.stderr


def test_train_without_torch_names_the_extra():
    code = "import sys; sys.modules['torch'] = None; from edgevae.cli import main; sys.exit(main(['train', '--epochs', '1', '--out', 'x']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "edgevae train: needs the 'torch' package: pip install 'edgevae[train]'"


def test_the_plot_is_skipped_with_one_line_without_matplotlib(tmp_path, monkeypatch, capsys):
    from edgevae.train.plot import write_neg_elbo_plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert write_neg_elbo_plot([{"epoch": 1, "test_neg_elbo": 300.0}], tmp_path) is None
    assert capsys.readouterr().out.strip().splitlines() == ["no matplotlib: skipping the -ELBO plot (pip install matplotlib)"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.heavy
def test_a_run_records_its_probe_and_resume_keeps_the_choice(tmp_path, data_dir, monkeypatch):
    from edgevae.train import precision

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "native_bf16", lambda device, flags=None: True)
    monkeypatch.setattr(precision, "decide", lambda timings: list(timings)[3])  # bf16-nchw, whatever the timings
    train(TrainConfig(epochs=1, batch_size=64, data_dir=data_dir), tmp_path / "run", model_config=SMALL)
    probe = json.loads((tmp_path / "run" / "probe.json").read_text())
    assert probe["choice"] == "bf16-nchw" and set(probe["median_ms"]) == {"fp32", "fp32-nchw", "bf16", "bf16-nchw"}
    monkeypatch.setattr(precision, "decide", lambda timings: list(timings)[0])  # a new probe would now say fp32
    metrics = train(TrainConfig(epochs=2, batch_size=64, data_dir=data_dir), tmp_path / "run", model_config=SMALL, resume=True)
    assert [(row["precision"], row["channels_last"]) for row in metrics["epochs"]] == [("bf16", False)] * 2


@pytest.mark.heavy
def test_bf16_training_keeps_fp32_weights_loss_and_optimizer_state(tmp_path, data_dir):
    metrics = train(TrainConfig(epochs=1, batch_size=64, data_dir=data_dir, precision="bf16"), tmp_path / "run", model_config=SMALL)
    model, state = load_model(tmp_path / "run" / "checkpoint.pt")
    assert state["precision"] == "bf16" and metrics["epochs"][0]["precision"] == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(v.dtype == torch.float32 for s in state["optimizer"]["state"].values() for v in s.values() if v.dim())
    assert 0 < metrics["final"]["test_neg_elbo"] < 2000
