"""Helpers shared by the test modules: tiny seeded models, model dirs and IDX datasets built in code."""

import atexit
import gzip
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

_CACHE: dict[tuple[int, int], Path] = {}  # (seed, latent_dim) -> model dir exported once per session
_CACHE_ROOT: Path | None = None


def need_torch(why: str):
    """torch, or a skip of the calling test where torch is not installed (the wheel's torch-free install, where CI
    runs tests/runtime): why says what the test needs torch for."""
    import pytest

    return pytest.importorskip("torch", reason=f"needs torch to {why}; the runtime's torch-free install lacks it")


def make_model(seed: int = 0, latent_dim: int = 64):
    """A freshly initialised VAE (eval mode) whose weights depend only on seed and latent_dim."""
    import torch

    from edgevae.train.model import VAE, VAEConfig

    torch.manual_seed(seed)
    return VAE(VAEConfig(latent_dim=latent_dim)).eval()


def make_trained_model(seed: int = 0, latent_dim: int = 64, steps: int = 3):
    """make_model(seed, latent_dim) after `steps` Adam steps (lr 3e-3) on 16 synthetic images (eval mode).

    Training moves weights away from a fresh initialisation's: mu and logvar reach ~2.5 here instead
    of ~0.1, a range like a trained model's, so parity is tested on non-trivial outputs too.
    """
    import torch

    from edgevae.train.loss import neg_elbo

    model = make_model(seed, latent_dim).train()
    x = torch.from_numpy(synthetic_images(16, seed)).float().div(255).unsqueeze(1)  # (16,1,28,28)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        neg_elbo(model, x).loss.backward()
        opt.step()
    return model.eval()


def save_test_checkpoint(path, model, epoch: int = 1) -> Path:
    """A checkpoint of model at path, laid out as `edgevae train` writes it (no optimizer state needed)."""
    from dataclasses import asdict

    from edgevae.train.checkpoint import save_checkpoint
    from edgevae.train.trainer import TrainConfig

    history = [{"epoch": epoch, "test_neg_elbo": 300.0, "test_bce": 280.0, "test_kl": 20.0}]
    save_checkpoint(Path(path), {"epoch": epoch, "model_config": asdict(model.config),
                                 "train_config": asdict(TrainConfig(epochs=epoch)),
                                 "model": model.state_dict(), "history": history})
    return Path(path)


def run_cli(*args, timeout: float = 300, **kwargs):
    """`python -m edgevae ARGS` in a fresh interpreter: CompletedProcess with text stdout and stderr."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "edgevae", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def sha256_of(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resign(model_dir, name: str) -> None:
    """Rewrite model_dir's manifest so the file `name` passes its size and sha256 checks again: what an
    attacker who can edit the whole dir does."""
    import json

    manifest_path = Path(model_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for graphs in manifest["variants"].values():
        for entry in graphs.values():
            if entry["file"] == name:
                entry["sha256"], entry["bytes"] = sha256_of(Path(model_dir) / name), (Path(model_dir) / name).stat().st_size
    manifest_path.write_text(json.dumps(manifest))


def flip_byte(path, offset: int | None = None) -> None:
    """Invert one byte of the file at path (the middle one by default)."""
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def shipped_model_dir(path, fp32_only: bool = True) -> Path:
    """A copy at path of the model dir shipped in the package (trained, latent 64, 1x28x28, fp32 + int8), made
    without torch, so the runtime's tests also run on the wheel's torch-free install.

    fp32_only: keep the fp32 variant alone, as a fresh export has it (no int8 graphs, goldens, quality,
    selection or timings), so `auto` runs fp32; False: every variant, the manifest unchanged.
    """
    import json

    from edgevae.runtime.contract.manifest import DEFAULT_MODEL_DIR

    path = Path(path)
    if not fp32_only:
        shutil.copytree(DEFAULT_MODEL_DIR, path, dirs_exist_ok=True)
        return path
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    manifest["variants"] = {"fp32": manifest["variants"]["fp32"]}
    manifest.update(quality={}, selection={})  # written so by export, as the manifest's own to_json writes them
    manifest.pop("latency_ms", None)
    golden = manifest["golden"]
    for key in ("outputs", "tolerance", "measured", "reference"):
        golden[key] = {"fp32": golden[key]["fp32"]}
    files = [e["file"] for e in manifest["variants"]["fp32"].values()]
    files += [e["file"] for e in golden["inputs"].values()]
    files += [e["file"] for outputs in golden["outputs"]["fp32"].values() for e in outputs.values()]
    path.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(DEFAULT_MODEL_DIR / name, path / name)
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return path


def make_model_dir(path, seed: int = 0, latent_dim: int = 64) -> Path:
    """A validated fp32 model dir of make_model(seed, latent_dim) at path (which must not exist or be empty).

    Each (seed, latent_dim) is exported once per test session and copied after that (export takes seconds).
    """
    global _CACHE_ROOT
    from edgevae.export.exporter import export_model_dir

    key = (seed, latent_dim)
    if key not in _CACHE:
        if _CACHE_ROOT is None:
            _CACHE_ROOT = Path(tempfile.mkdtemp(prefix="edgevae-test-models-"))
            atexit.register(shutil.rmtree, _CACHE_ROOT, ignore_errors=True)
        _CACHE[key] = export_model_dir(make_model(seed, latent_dim), _CACHE_ROOT / f"seed{seed}-d{latent_dim}")
    path = Path(path)
    shutil.copytree(_CACHE[key], path, dirs_exist_ok=True)
    return path


# Small Fashion-MNIST-shaped IDX files written by the tests themselves.

REAL_DATA = Path("/usr/share/datasets/fashion-mnist")


def overflowing_z(rt) -> np.ndarray:
    """A finite z [1, D] (entries +-3e38, signs seeded) on which rt's fp32 decoder overflows to NaN inside
    the graph; checked here, with onnxruntime directly, so a test built on it cannot pass for want of one."""
    import onnxruntime as ort

    z = (3e38 * np.sign(np.random.default_rng(0).standard_normal((1, rt.latent_dim)))).astype(np.float32)
    decoder = ort.InferenceSession(rt.model.graph_bytes("fp32", "decoder"))
    assert np.isnan(decoder.run(None, {"z": z})[0]).any(), "this decoder does not overflow on z: pick another"
    return z


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims, data."""
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def synthetic_images(n: int, seed: int) -> np.ndarray:
    """uint8 [n,28,28]: bright rectangles of random size on black, so a VAE has something to learn."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for img in images:
        top, left = rng.integers(2, 12, size=2)
        h, w = rng.integers(6, 14, size=2)
        img[top : top + h, left : left + w] = rng.integers(128, 256)
    return images


def write_idx_dataset(folder: Path, n_train=256, n_test=64, gz=True, seed=0) -> Path:
    """The four IDX files of a tiny Fashion-MNIST look-alike in folder (gzipped or raw)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = lambda n: (np.arange(n) % 10).astype(np.uint8)  # noqa: E731
    arrays = {
        "train-images-idx3-ubyte": synthetic_images(n_train, seed),
        "train-labels-idx1-ubyte": labels(n_train),
        "t10k-images-idx3-ubyte": synthetic_images(n_test, seed + 1),
        "t10k-labels-idx1-ubyte": labels(n_test),
    }
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def sparse_file(path, header: bytes, size: int) -> Path:
    """header, then a hole up to size bytes (costs no disk); the test is skipped where the file system has none."""
    import pytest

    with open(path, "wb") as f:
        f.write(header)
        try:
            f.truncate(size)
        except OSError as err:
            pytest.skip(f"no sparse {size}-byte file here: {err}")
    return Path(path)
