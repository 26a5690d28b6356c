"""Fault injection (slow: `python -m pytest -m slow`): `edgevae train`, `export` and `quantize` killed with
SIGKILL at random moments, then run again. Training resumed with --resume ends with exactly the weights
and metrics of an uninterrupted run, and every checkpoint seen on disk loads; a killed export or quantize
leaves at --out either nothing or a complete, valid model dir, and nothing that breaks the retry.

Each test prints its figures (kills, what was on disk); `-s` shows them."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import make_model_dir, make_trained_model, save_test_checkpoint, write_idx_dataset

from edgevae.runtime import VAERuntime
from edgevae.runtime.contract.manifest import load
from edgevae.train.checkpoint import load_model, read_checkpoint

pytestmark = pytest.mark.slow

TRAIN_ARGS = ["--epochs", 4, "--batch-size", 32, "--latent-dim", 8, "--seed", 3, "--kl-warmup-epochs", 2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """128 training images: an epoch takes about a second here, so kills land in every phase of one."""
    return write_idx_dataset(tmp_path_factory.mktemp("faults") / "idx", n_train=128, n_test=64)


def start(argv, tmp: Path) -> subprocess.Popen:
    env = os.environ | {"EDGEVAE_CACHE": str(tmp / "cache")}
    return subprocess.Popen([sys.executable, "-m", "edgevae", *map(str, argv)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err


def kill_after(proc: subprocess.Popen, delay: float, watch=None, after=None) -> bool:
    """SIGKILL proc delay seconds after its start, or after after() first holds (polled every 10 ms), calling
    watch() meanwhile; True if proc was still running then."""
    since = None if after else time.monotonic()
    while proc.poll() is None:
        if watch:
            watch()
        if since is None and after():
            since = time.monotonic()
        if since is not None and time.monotonic() - since >= delay:
            break
        time.sleep(0.01)
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return alive


def temp_names(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


def test_training_killed_and_resumed_matches_an_uninterrupted_run(tmp_path, data):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    finish(start(["train", "--data-dir", data, "--out", straight, *TRAIN_ARGS], tmp_path))

    rng = random.Random(0)
    seen = {}  # checkpoint version (mtime, size) -> epoch it held

    def watch():
        path = killed / "checkpoint.pt"
        try:
            key = (path.stat().st_mtime_ns, path.stat().st_size)
        except FileNotFoundError:
            return
        if key not in seen:
            seen[key] = read_checkpoint(path)["epoch"]  # a half-written file here would raise

    kills, mid_write, runs = 0, 0, 0
    while True:
        runs += 1
        killed.mkdir(exist_ok=True)
        proc = start(["train", "--data-dir", data, "--out", killed, "--resume", *TRAIN_ARGS], tmp_path)
        if kills >= 6:  # enough: let this run finish
            finish(proc)
            break
        if runs % 2:  # kill mid-epoch, once this run has saved a new checkpoint (so every run makes progress)
            versions = len(seen)
            landed = kill_after(proc, rng.uniform(0.0, 1.5), watch, after=lambda: len(seen) > versions)
        else:  # kill as a checkpoint is being written (after an epoch of work), however fast or slow the machine
            writing = new_temp_folder(killed, ".checkpoint.pt.")
            landed = kill_after(proc, rng.uniform(0.0, 0.02), watch, after=writing)
        kills += landed
        mid_write += landed and bool(temp_names(killed))  # SIGKILL leaves the temporary file: proof it was mid-write
        if not landed and proc.returncode == 0:
            break
        if (killed / "checkpoint.pt").exists():
            watch()
            load_model(killed / "checkpoint.pt")
    watch()
    epochs = [seen[k] for k in sorted(seen)]
    assert epochs == sorted(epochs) and epochs[-1] == 4  # checkpoints only move forward
    assert kills >= 4 and mid_write >= 1 and len(seen) >= 2, (
        f"kills landed {kills}, mid-write {mid_write}, checkpoint versions {len(seen)}: the test proved too little")

    a, state_a = load_model(straight / "checkpoint.pt")
    b, state_b = load_model(killed / "checkpoint.pt")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    strip = lambda rows: [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]  # noqa: E731
    assert strip(state_a["history"]) == strip(state_b["history"])
    final_a = json.loads((straight / "metrics.json").read_text())["final"]
    final_b = json.loads((killed / "metrics.json").read_text())["final"]
    assert final_a == final_b
    leftovers = temp_names(killed)
    assert leftovers == []  # the next write sweeps what a killed writer left
    print(f"\ntraining: {kills} SIGKILLs ({mid_write} mid-write) survived in {runs} runs; checkpoint versions seen and loaded: {len(seen)} "
          f"(epochs {epochs}); final test -ELBO {final_b['test_neg_elbo']:.4f} == uninterrupted; "
          f"temporary files left by the kills: {len(leftovers)}")


def new_temp_folder(folder: Path, prefix: str):
    """A test for a temporary folder prefix* in folder that was not there when this was called."""
    before = set(os.listdir(folder))
    return lambda: any(name.startswith(prefix) and name not in before for name in os.listdir(folder))


def check_model_dir(out: Path) -> str:
    """'absent' or 'complete' (every variant's files hash and load); anything else fails the test."""
    if not out.exists():
        return "absent"
    model = load(out)
    model.verify()
    for variant in model.manifest.variants:
        rt = VAERuntime.load(out, variant=variant)
        rt.reconstruct(rt.sample(2, seed=0))  # both sessions build
    return "complete"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_test_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt", make_trained_model(latent_dim=8))


def test_export_killed_midway_leaves_nothing_or_a_complete_model_dir(tmp_path, data, checkpoint):
    out = tmp_path / "model"
    states = []
    # export takes ~8-15 s here (torch import, graph export, parity check), then writes files into a temporary
    # folder and renames it: kills at fixed times, then at 0-300 ms after the temporary folder appeared
    for delay, after in [(1.0, False), (3.0, False), (5.0, False)] + [(d, True) for d in (0.0, 0.02, 0.05, 0.1, 0.3)]:
        writing = after and new_temp_folder(tmp_path, ".model.")
        killed = kill_after(start(["export", checkpoint, "--out", out, "--data-dir", data], tmp_path), delay, after=writing)
        states.append((delay, killed, check_model_dir(out)))
        if out.exists():
            break
    if not out.exists():
        finish(start(["export", checkpoint, "--out", out, "--data-dir", data], tmp_path))  # the retry
    assert check_model_dir(out) == "complete"
    # over an existing model dir (--force): the old one or the new one, never a mix
    for delay in (0.0, 0.02, 0.05, 0.1, 0.3):
        writing = new_temp_folder(tmp_path, ".model.")
        proc = start(["export", checkpoint, "--out", out, "--data-dir", data, "--force"], tmp_path)
        killed = kill_after(proc, delay, after=writing)
        states.append((delay, killed, check_model_dir(out)))
    finish(start(["export", checkpoint, "--out", out, "--data-dir", data, "--force"], tmp_path))
    assert check_model_dir(out) == "complete"
    assert sum(k for _, k, _ in states) >= 5, f"too few kills landed: {states}"
    leftovers = temp_names(tmp_path)
    print(f"\nexport: {sum(k for _, k, _ in states)} SIGKILLs; (delay s, killed, --out after): {states}; "
          f"temporary folders left beside --out: {len(leftovers)}; retries succeeded")


def test_quantize_killed_midway_leaves_a_valid_model_dir(tmp_path, data):
    model = make_model_dir(tmp_path / "model", latent_dim=8)
    argv = ["quantize", model, "--data-dir", data, "--variants", "int8-dynamic,fp16", "--test-images", 16,
            "--calibration-images", 16]
    states = []
    for delay in (2.0, 4.0, 6.0, 8.0):
        killed = kill_after(start(argv, tmp_path), delay)
        states.append((delay, killed, check_model_dir(model), sorted(load(model).manifest.variants)))
    finish(start(argv, tmp_path))
    assert sorted(load(model).manifest.variants) == ["fp16", "fp32", "int8-dynamic"]
    # Quantizing again with other settings replaces existing variants by files with other hashes, and
    # --select times every variant (seconds) before the final manifest is written: kills land in that window.
    rng = random.Random(1)
    for _ in range(4):
        killed = kill_after(start(argv + ["--per-channel", "--select"], tmp_path), rng.uniform(4.0, 12.0))
        states.append(("again", killed, check_model_dir(model), sorted(load(model).manifest.variants)))
        finish(start(argv, tmp_path))  # back to per-tensor weights: the retry works, and the next kill replaces again
    finish(start(argv + ["--per-channel", "--select"], tmp_path))
    assert check_model_dir(model) == "complete" and load(model).manifest.selection
    assert sum(s[1] for s in states) >= 4, f"too few kills landed: {states}"
    leftovers = temp_names(model)
    print(f"\nquantize: {sum(s[1] for s in states)} SIGKILLs; states after each: {states}; "
          f"temporary files left in the model dir: {len(leftovers)}")
