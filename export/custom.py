"""Export any VAE that follows the graph contract, not only edgevae's own network, to a model dir.

The contract (docs: DESIGN.md "Graph I/O"): an encoder x [N,C,H,W] in [0,1] -> (mu [N,D], logvar [N,D]) and
a decoder z [N,D] -> Bernoulli means [N,C,H,W] in [0,1] (or logits, with logits=True: a Sigmoid is appended).
The two halves become two ONNX graphs through the same exporter, parity check (<= TOLERANCE against PyTorch)
and manifest as `edgevae export`, so quantize, the runtime, bench and the web runtime take the result as is.

    from edgevae.export.custom import export_vae
    export_vae(model.encode, model.decode, "mlp-vae", image_shape=(1, 28, 28), latent_dim=20)

encoder / decoder may be nn.Modules or bound methods of one (model.encode): the module is what is traced.
"""

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .validate import PARITY_BATCH_SIZES, TOLERANCE


@dataclass(frozen=True)
class ContractConfig:
    """What the exporter reads from a model's .config (edgevae's VAEConfig has the same two fields)."""

    latent_dim: int
    image_shape: tuple[int, int, int]


class _Half(nn.Module):
    """A user's module or bound method as one graph's module; `finish` maps its output onto the contract."""

    def __init__(self, fn, finish):
        super().__init__()
        if isinstance(fn, nn.Module):
            self.module, self.method = fn, "forward"
        elif inspect.ismethod(fn) and isinstance(fn.__self__, nn.Module):
            self.module, self.method = fn.__self__, fn.__name__  # registered, so its weights are traced as parameters
        else:
            raise TypeError(f"{fn!r} is neither an nn.Module nor a method of one")
        self.finish = finish

    def forward(self, x):
        return self.finish(getattr(self.module, self.method)(x))


class ContractVAE(nn.Module):
    """encoder + decoder wrapped to the graph contract, with the .encoder / .decoder / .config the exporter uses."""

    def __init__(self, encoder, decoder, image_shape, latent_dim: int, logits: bool = False):
        super().__init__()
        shape = tuple(int(v) for v in image_shape)
        if len(shape) != 3 or min(shape) < 1 or latent_dim < 1:
            raise ValueError(f"image_shape must be (C, H, W) and latent_dim >= 1, got {image_shape}, {latent_dim}")
        self.config = ContractConfig(int(latent_dim), shape)
        self.encoder = _Half(encoder, _mu_logvar)
        # reshape: an MLP decoder may return [N, C*H*W]; the contract's x_hat is [N,C,H,W]
        self.decoder = _Half(decoder, (lambda y: torch.sigmoid(y).reshape(-1, *shape)) if logits else (lambda y: y.reshape(-1, *shape)))
        self.check()

    @torch.no_grad()
    def check(self) -> None:
        """ValueError naming the half whose output does not fit the contract, before any export work."""
        self.eval()
        c, h, w = self.config.image_shape
        x, z = torch.rand(2, c, h, w), torch.randn(2, self.config.latent_dim)
        mu, logvar = self._try("encoder", x)
        if tuple(mu.shape) != (2, self.config.latent_dim) or tuple(logvar.shape) != tuple(mu.shape):
            raise ValueError(f"encoder returned mu {list(mu.shape)}, logvar {list(logvar.shape)}; want [N, {self.config.latent_dim}] each")
        x_hat = self._try("decoder", z)
        if x_hat.dtype != torch.float32 or float(x_hat.min()) < 0 or float(x_hat.max()) > 1:
            raise ValueError("decoder outputs are not float32 Bernoulli means in [0, 1]; if it returns logits, pass logits=True")


    def _try(self, half: str, value):
        try:
            return getattr(self, half)(value)
        except (RuntimeError, TypeError, ValueError) as err:
            raise ValueError(f"the {half} does not run on the contract's shapes ({'x' if half == 'encoder' else 'z'} "
                             f"{list(value.shape)}): {str(err).strip().splitlines()[0]}") from None


def _mu_logvar(out):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(f"encoder must return (mu, logvar), got {type(out).__name__}")
    return out[0], out[1]


def export_vae(encoder, decoder, out_dir, *, image_shape, latent_dim: int, logits: bool = False,
               images: np.ndarray | None = None, data: str | None = None, force: bool = False,
               tolerance: float = TOLERANCE) -> Path:
    """Export a user-defined VAE to out_dir as a validated fp32 model dir (see module docstring); returns out_dir.

    images: float32 [>=64,C,H,W] in [0,1] for the parity check; or data, a dataset spec (train/data.py), whose
    test images are fitted to image_shape and which quantize then calibrates on; neither: seeded noise.
    Raises ValueError when the modules break the contract or the graphs differ from PyTorch beyond tolerance.
    """
    from edgevae.runtime import manifest as contract

    from .exporter import export_model_dir, validation_images

    model = ContractVAE(encoder, decoder, image_shape, latent_dim, logits)
    source, training = "caller-supplied images", None
    if data is not None:
        c, h, w = model.config.image_shape
        train_config = {"data": data, "image_size": f"{h}x{w}", "channels": c}
        images, source = validation_images(None, train_config)
        if images is None:
            raise FileNotFoundError(f"data {data!r}: its files are not there")
        training = contract.Training(epoch=0, final={}, train_config=train_config)  # epoch 0: trained outside edgevae
    elif images is not None and len(images) < max(PARITY_BATCH_SIZES):
        raise ValueError(f"images: {len(images)} given, the parity check needs {max(PARITY_BATCH_SIZES)}")
    return export_model_dir(model, out_dir, training=training, images=images,
                            images_source=source if images is not None else None, force=force, tolerance=tolerance)
