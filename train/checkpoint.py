"""Checkpoints and JSON files written atomically, and checkpoints read back with one-line errors."""

from pathlib import Path

import torch

from edgevae.atomic import atomic_write, write_json  # noqa: F401 (trainer writes its JSON through here)

from .model import VAE, VAEConfig


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
