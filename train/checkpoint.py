"""Checkpoints and JSON files written atomically, and checkpoints read back with one-line errors."""

import json
import os
import tempfile
from pathlib import Path

import torch

from .model import VAE, VAEConfig


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside path, fsync it, then rename it over path.

    A crash at any point leaves either the old file or the new one, never a half-written one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would make the result private to this user
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def read_checkpoint(path) -> dict:
    """The checkpoint dict at path; ValueError / FileNotFoundError with one line when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist or is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} is not a readable PyTorch checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or not {"model", "model_config", "epoch"} <= state.keys():
        raise ValueError(f"checkpoint {path} is not an edgevae checkpoint (needs model, model_config, epoch)")
    return state


def load_model(path) -> tuple[VAE, dict]:
    """(VAE in eval mode with the checkpoint's weights, checkpoint dict)."""
    state = read_checkpoint(path)
    try:
        model = VAE(VAEConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"checkpoint {path} does not hold the edgevae VAE architecture: {first}") from None
    return model.eval(), state
