"""The user's own PyTorch decoder as the bench's reference (`edgevae bench --torch MODULE:FACTORY`, or
`run_bench(config, torch_decoder=module)`), for VAEs exported with export_vae or `edgevae export --diffusers`.

What the module is: the decoder that was exported, taking what the decoder graph takes and returning what it
returns, i.e. export_vae's `decoder` argument. Its input is the model's latent [N, *latent_shape] before the
declared latent_scale / latent_shift (z / latent_scale + latent_shift: diffusers' own `vae.decode` input; the same
as the API's latent when the model declares neither), and its output the declared decoder head, [N,C,H,W] (or an
MLP's flat [N, C*H*W], as export_vae accepts). A module with a `decode` method is taken as the whole VAE and its
`decode` is what runs (a diffusers AutoencoderKL / AutoencoderTiny: `.decode(z).sample`); any other module runs
its forward. TorchDecoder wraps it so that it takes the runtime's latents: both sides decode the same arrays.
"""

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgevae.runtime.contract.conventions import to_unit
from edgevae.runtime.contract.errors import InputError

CHECK_BATCH = 2


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def _import(module: str, spec: str):
    """MODULE of --torch: a path to a .py file (loaded under a private name) or an importable module name."""
    try:
        if module.endswith(".py") or "/" in module or "\\" in module:
            path = Path(module)
            if not path.is_file():
                raise InputError(f"--torch {spec}: {module} is not a file")
            name = f"edgevae_bench_torch_{path.stem}"
            found = importlib.util.spec_from_file_location(name, path)
            loaded = importlib.util.module_from_spec(found)
            sys.modules[name] = loaded  # as a regular import does: dataclasses and pickling look it up there
            found.loader.exec_module(loaded)
            return loaded
        return importlib.import_module(module)
    except InputError:
        raise
    except (Exception, SystemExit) as err:  # the user's code at import may raise anything
        raise InputError(f"--torch {spec}: cannot import {module}: {_first_line(err)}") from None


def load_factory(spec: str) -> tuple[nn.Module, str]:
    """(the module FACTORY returns, its label) for spec "MODULE:FACTORY". FACTORY: a function or class called with
    no arguments, or an nn.Module itself. InputError naming the spec for anything else."""
    module, _, factory = spec.rpartition(":")  # rpartition: a Windows path holds a colon too
    if not module or not factory.isidentifier():
        raise InputError(f"--torch {spec!r} is not MODULE:FACTORY (e.g. my_vae.py:build_decoder)")
    found = getattr(_import(module, spec), factory, None)
    if found is None:
        raise InputError(f"--torch {spec}: {module} has no {factory}")
    if not isinstance(found, nn.Module):
        if not callable(found):
            raise InputError(f"--torch {spec}: {factory} is a {type(found).__name__}, not callable")
        try:
            found = found()
        except (Exception, SystemExit) as err:
            raise InputError(f"--torch {spec}: {factory}() raised {_first_line(err)}") from None
        if not isinstance(found, nn.Module):
            raise InputError(f"--torch {spec}: {factory}() returned a {type(found).__name__}, not a torch.nn.Module")
    return found, f"--torch {spec}"


class TorchDecoder(nn.Module):
    """The user's decoder (or VAE's decode) taking the runtime's latents: [N, *latent_shape] in the model's
    convention -> the declared head [N,C,H,W], as the decoder graph returns it."""

    def __init__(self, module: nn.Module, *, conventions, image_shape: tuple):
        super().__init__()
        self.module = module.eval()
        self.method = "decode" if callable(getattr(module, "decode", None)) else "forward"
        self.scale, self.shift = conventions.latent_scale, conventions.latent_shift
        self.image_shape = tuple(image_shape)
        self.flat = conventions.downsampling is None  # only a fixed-size image can come flat (export_vae's rule)

    def forward(self, z):
        if (self.scale, self.shift) != (1.0, 0.0):  # the runtime's _to_graph_latent, on this side
            z = z / self.scale + self.shift
        y = getattr(self.module, self.method)(z)
        if isinstance(getattr(y, "sample", None), torch.Tensor):  # diffusers' DecoderOutput
            y = y.sample
        elif isinstance(y, (tuple, list)) and y:
            y = y[0]
        if self.flat and isinstance(y, torch.Tensor) and y.dim() == 2:
            y = y.reshape(-1, *self.image_shape)
        return y


def torch_decoder_for(runtime, module, *, label: str) -> TorchDecoder:
    """module wrapped for runtime's model, once it decodes CHECK_BATCH seeded latents to float32 images of the
    manifest's shape; InputError naming label and both shapes otherwise."""
    if not isinstance(module, nn.Module):
        raise InputError(f"{label} is a {type(module).__name__}, not a torch.nn.Module")
    decoder = TorchDecoder(module, conventions=runtime.conventions, image_shape=runtime.image_shape)
    z = np.random.default_rng(0).standard_normal((CHECK_BATCH, *runtime.latent_shape), dtype=np.float32)
    try:
        with torch.inference_mode():
            y = decoder(torch.from_numpy(z))
    except Exception as err:  # the user's forward may raise anything
        raise InputError(f"{label} does not run on z {list(z.shape)}: {_first_line(err)}") from None
    want = (CHECK_BATCH, *runtime.image_shape)
    got = f"{y.dtype} {list(y.shape)}" if isinstance(y, torch.Tensor) else f"a {type(y).__name__}"
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != want or y.dtype != torch.float32:
        raise InputError(f"{label} returned {got} for z {list(z.shape)}; the model dir's decoder returns "
                         f"torch.float32 {list(want)}")
    return decoder


def decoded_images(decoder: nn.Module, z: np.ndarray, *, conventions) -> np.ndarray:
    """decoder(z) mapped to images in [0, 1] by the model's declared head, as runtime.decode maps its graph's
    output (the same to_unit): the two sides' results are then directly comparable."""
    with torch.inference_mode():
        y = decoder(torch.from_numpy(z)).numpy().astype(np.float32, copy=True)
    return to_unit(y, conventions)
