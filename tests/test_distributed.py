import os
import subprocess
import sys

import pytest
import torch

from edgevae.train.checkpoint import load_model
from edgevae.train.distributed import World, local_slice, world_from_env
from edgevae.train.model import VAEConfig
from edgevae.train.trainer import TrainConfig, train
from helpers import write_idx_dataset

pytestmark = pytest.mark.heavy  # end-to-end runs: in CI (scripts/test.sh), not in a bare `pytest`

# Adam's update lr * m / sqrt(v) is invariant to the gradient's scale, so a relative gradient error d (here
# from summation order: two half-batch sums all-reduced instead of one sum, ~1e-7 in fp32) moves a weight by
# ~lr * d per step; weights whose gradient is near Adam's eps (1e-8) amplify it most. Measured: 4.1e-6 at
# most after 6 steps (decoder.project.weight); 5e-5 leaves room for other CPUs' kernels. A wrong shard,
# scale or noise slice moves weights by ~lr = 1e-3 per step: 20x this tolerance.
ATOL = 5e-5


@pytest.mark.parametrize("n", [1, 5, 7, 8, 128])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_local_slices_are_disjoint_and_cover_the_global_batch(n, size):
    parts = [range(n)[local_slice(n, World(rank, size))] for rank in range(size)]
    assert [i for part in parts for i in part] == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_world_comes_from_torchrun_variables():
    assert world_from_env({}) == World(0, 1, 0) and not World().distributed
    w = world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert w == World(1, 2, 1) and w.distributed and not w.is_main
    for bad in ({"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x"}):
        with pytest.raises(ValueError, match="RANK"):
            world_from_env(bad)


def torchrun(nproc: int, *argv: str, device: str = "cpu") -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node nproc -m edgevae train ...` as the README documents it."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "edgevae", "train", "--device", device, *argv]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_gloo_processes_train_and_resume_like_one_process(tmp_path, monkeypatch):
    """2 ranks x 1 thread, global batch 24 split 12 + 12 (and a last batch of 19 = 10 + 9, scaled), with
    binarization and KL warm-up: the same weights as one process after 2 epochs, the second one resumed."""
    monkeypatch.setenv("EDGEVAE_CACHE", str(tmp_path / "cache"))
    data = str(write_idx_dataset(tmp_path / "idx", n_train=67, n_test=16))
    flags = ["--data-dir", data, "--batch-size", "24", "--latent-dim", "8", "--seed", "3", "--binarize",
             "--kl-warmup-epochs", "1", "--precision", "fp32"]
    torchrun(2, "--epochs", "1", "--out", str(tmp_path / "ddp"), *flags)
    proc = torchrun(2, "--epochs", "2", "--out", str(tmp_path / "ddp"), "--resume", *flags)
    assert proc.stdout.count("epoch 2:") == 1  # rank 0 alone reports and writes

    cfg = TrainConfig(epochs=2, batch_size=24, seed=3, binarize=True, kl_warmup_epochs=1, precision="fp32", data_dir=data)
    train(cfg, tmp_path / "single", VAEConfig(latent_dim=8))
    single, _ = load_model(tmp_path / "single" / "checkpoint.pt")
    ddp, state = load_model(tmp_path / "ddp" / "checkpoint.pt")
    assert [row["processes"] for row in state["history"]] == [2, 2]
    for (name, a), b in zip(single.state_dict().items(), ddp.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=ATOL), f"{name}: max diff {(a - b).abs().max():.2e}"
    # the check has teeth: Adam steps move weights by ~lr each, far more than ATOL
    fresh = TrainConfig(epochs=1, batch_size=24, seed=3, binarize=True, kl_warmup_epochs=1, precision="fp32", data_dir=data)
    train(fresh, tmp_path / "one-epoch", VAEConfig(latent_dim=8))
    one, _ = load_model(tmp_path / "one-epoch" / "checkpoint.pt")
    assert (one.decoder.project.weight - ddp.decoder.project.weight).abs().max() > 20 * ATOL


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP with nccl needs 2 CUDA devices; this machine has "
                    f"{torch.cuda.device_count()}")
def test_two_nccl_processes_train(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVAE_CACHE", str(tmp_path / "cache"))
    data = str(write_idx_dataset(tmp_path / "idx", n_train=64, n_test=16))
    torchrun(2, "--epochs", "1", "--out", str(tmp_path / "run"), "--data-dir", data, "--batch-size", "16",
             "--latent-dim", "8", device="cuda")
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_single_gpu_training_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVAE_CACHE", str(tmp_path / "cache"))
    data = str(write_idx_dataset(tmp_path / "idx", n_train=64, n_test=16))
    metrics = train(TrainConfig(epochs=1, batch_size=16, device="cuda", data_dir=data), tmp_path / "run", VAEConfig(latent_dim=8))
    assert metrics["final"]["test_neg_elbo"] > 0
