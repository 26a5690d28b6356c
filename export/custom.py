"""Export any VAE that follows the graph contract, not only edgevae's own network, to a model dir.

The contract (docs: DESIGN.md "Graph I/O"): an encoder x [N,C,H,W] -> (mu, logvar) of the latent's shape
([N,D] or [N,C',h,w]), or the latent alone for a deterministic encoder, and a decoder z -> x_hat [N,C,H,W]
(an MLP's flat [N,C*H*W] is reshaped). What the tensors mean is declared by `conventions` (the manifest's
Conventions: pixel range, decoder head, posterior, prior, latent scale/shift, fully convolutional factor);
the default is edgevae's own family, Bernoulli means over [0, 1] pixels (logits=True appends a Sigmoid to a
decoder that returns logits). The two halves become two ONNX graphs through the same exporter, parity check
(<= TOLERANCE against PyTorch) and manifest as `edgevae export`, so quantize and the runtimes take the result as is.

    from edgevae.export.custom import export_vae
    export_vae(model.encode, model.decode, "mlp-vae", image_shape=(1, 28, 28), latent_dim=20)
    export_vae(vae.encode, vae.decode, "ldm-vae", image_shape=(3, 128, 128), latent_shape=(4, 16, 16),
               conventions=Conventions(pixel_range=(-1.0, 1.0), decoder_head="image", prior="none",
                                       latent_scale=0.18215, downsampling=8))

encoder / decoder may be nn.Modules or bound methods of one (model.encode): the module is what is traced.
"""

import inspect
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgevae.runtime.contract.manifest import CLASSIC, Conventions

from .validate import PARITY_BATCH_SIZES, TOLERANCE


@dataclass(frozen=True)
class ContractConfig:
    """What the exporter reads from a model's .config (edgevae's VAEConfig has the first two fields; the others
    default to its family)."""

    latent_dim: int
    image_shape: tuple[int, int, int]
    latent_shape: tuple[int, ...] | None = None  # None: (latent_dim,)
    conventions: Conventions = CLASSIC


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

    def __init__(self, encoder, decoder, *, image_shape, latent_dim: int | None, logits: bool = False,
                 latent_shape=None, conventions: Conventions | None = None):
        super().__init__()
        shape = tuple(int(v) for v in image_shape)
        latent = _latent_shape(latent_dim, latent_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape must be (C, H, W) of positive sizes, got {image_shape}")
        conventions = conventions or CLASSIC
        if not isinstance(conventions, Conventions):
            raise TypeError(f"conventions must be edgevae.runtime.contract.manifest.Conventions, got {type(conventions).__name__}")
        if logits and conventions.decoder_head != "bernoulli_means":
            raise ValueError(f"logits=True appends a Sigmoid for Bernoulli means; it contradicts decoder_head "
                             f"{conventions.decoder_head!r} (pass decoder_head='bernoulli_logits' to keep logits)")
        self.config = ContractConfig(math.prod(latent), shape, latent if len(latent) > 1 else None, conventions)
        fixed = conventions.downsampling is None  # a flat output can be reshaped only to one fixed size
        self.encoder = _Half(encoder, lambda out: _encoder_outputs(out, latent, conventions.stochastic, fixed))
        # an MLP decoder may return [N, C*H*W]; the contract's x_hat is [N,C,H,W]
        self.decoder = _Half(decoder, lambda y: _image(torch.sigmoid(y) if logits else y, shape, fixed))
        self.check()

    @torch.no_grad()
    def check(self) -> None:
        """ValueError naming the half whose output does not fit the contract, before any export work: at
        image_shape, and for a fully convolutional model at a second size too."""
        self.eval()
        c, h, w = self.config.image_shape
        factor = self.config.conventions.downsampling
        self._check_size(c, h, w)
        if factor is not None:
            self._check_size(c, h + factor, w + 2 * factor)  # not square: catches H and W swapped

    def _check_size(self, c: int, h: int, w: int) -> None:
        conventions = self.config.conventions
        low, high = conventions.pixel_range
        latent = list(self.config.latent_shape or (self.config.latent_dim,))
        if conventions.downsampling is not None:
            latent[1:] = h // conventions.downsampling, w // conventions.downsampling
        x = low + (high - low) * torch.rand(2, c, h, w)
        outs = self._try("encoder", x)
        if any(tuple(o.shape) != (2, *latent) for o in outs):
            names = "mu, logvar" if conventions.stochastic else "the latent"
            raise ValueError(f"encoder returned {', '.join(str(list(o.shape)) for o in outs)} for x [2, {c}, {h}, {w}]; "
                             f"want {names} of [N, {', '.join(map(str, latent))}]")
        x_hat = self._try("decoder", torch.randn(2, *latent))
        if tuple(x_hat.shape) != (2, c, h, w) or x_hat.dtype != torch.float32:
            raise ValueError(f"decoder returned {x_hat.dtype} {list(x_hat.shape)} for z {[2, *latent]}; want float32 [2, {c}, {h}, {w}]")
        if not bool(torch.isfinite(x_hat).all()):
            raise ValueError(f"decoder returned NaN or inf for z ~ N(0, I) of shape {[2, *latent]}")
        if conventions.decoder_head == "bernoulli_means" and (float(x_hat.min()) < 0 or float(x_hat.max()) > 1):
            raise ValueError("decoder outputs are not Bernoulli means in [0, 1]; if it returns logits, pass logits=True; "
                             "for an image in [-1, 1] or a Gaussian mean, declare it: conventions=Conventions(decoder_head=...)")


    def _try(self, half: str, value):
        try:
            return getattr(self, half)(value)
        except (RuntimeError, TypeError, ValueError) as err:
            raise ValueError(f"the {half} does not run on the contract's shapes ({'x' if half == 'encoder' else 'z'} "
                             f"{list(value.shape)}): {str(err).strip().splitlines()[0]}") from None


def _latent_shape(latent_dim, latent_shape) -> tuple:
    """The latent of one item from export_vae's latent_dim (flat shorthand) and latent_shape, which must agree."""
    if latent_shape is None:
        if latent_dim is None or isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be an integer >= 1 (or pass latent_shape=(C, h, w)), got {latent_dim!r}")
        return (latent_dim,)
    shape = tuple(latent_shape) if isinstance(latent_shape, (tuple, list)) else None
    if not shape or len(shape) not in (1, 3) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape):
        raise ValueError(f"latent_shape must be (D,) or (C, h, w) of positive integers, got {latent_shape!r}")
    if latent_dim is not None and latent_dim != math.prod(shape):
        raise ValueError(f"latent_dim {latent_dim} disagrees with latent_shape {list(shape)} ({math.prod(shape)} values)")
    return shape


def _encoder_outputs(out, latent: tuple, stochastic: bool, fixed: bool) -> tuple:
    """The encoder's output as the contract's (mu, logvar) or (z,), reshaped to the latent when it is flat."""
    if stochastic:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError(f"encoder must return (mu, logvar), got {type(out).__name__} (a deterministic encoder: "
                             "declare conventions=Conventions(posterior='deterministic'))")
    else:
        out = out if isinstance(out, (tuple, list)) else (out,)
        if len(out) != 1:
            raise ValueError(f"a deterministic encoder returns the latent alone, got {len(out)} values")
    reshape = fixed and len(latent) > 1
    return tuple(t.reshape(-1, *latent) if reshape and t.dim() == 2 else t for t in out)


def _image(y, shape: tuple, fixed: bool):
    return y.reshape(-1, *shape) if fixed and y.dim() != 4 else y


def export_vae(encoder, decoder, out_dir, *, image_shape, latent_dim: int | None = None, logits: bool = False,
               latent_shape: tuple | None = None, conventions: Conventions | None = None,
               images: np.ndarray | None = None, data: str | None = None, force: bool = False,
               tolerance: float = TOLERANCE) -> Path:
    """Export a user-defined VAE to out_dir as a validated fp32 model dir (see module docstring); returns out_dir.

    latent_dim: D of a flat latent [N, D]; latent_shape: the latent of one item, (D,) or (C, h, w) (give either,
    or both when they agree). conventions: what the graphs' tensors mean (default: edgevae's own family).
    images: float32 [>=64,C,H,W] in [0,1] for the parity check; or data, a dataset spec (train/data.py), whose
    test images are fitted to image_shape and which quantize then calibrates on; neither: seeded noise.
    Raises ValueError when the modules break the contract or the graphs differ from PyTorch beyond tolerance.
    """
    from edgevae.runtime.contract import manifest as contract

    from .exporter import export_model_dir, validation_images

    model = ContractVAE(encoder, decoder, image_shape=image_shape, latent_dim=latent_dim, logits=logits, latent_shape=latent_shape, conventions=conventions)
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
