"""Helpers shared by the test modules: tiny seeded models and model dirs built in code."""

import atexit
import shutil
import tempfile
from pathlib import Path

_CACHE: dict[tuple[int, int], Path] = {}  # (seed, latent_dim) -> model dir exported once per session
_CACHE_ROOT: Path | None = None


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
    from synthetic_data import synthetic_images

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
