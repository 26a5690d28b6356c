"""Checks of what callers hand the runtime. Each returns a float32 C-contiguous array ready for
onnxruntime, or raises InputError naming the argument and the bad value, so that no error surfaces
from deep inside onnxruntime."""

import os
from pathlib import Path

import numpy as np

from edgevae.cpu import usable_cores  # noqa: F401 (re-exported: callers ask checks for it)

from ..contract.errors import InputError


def _as_float32(name, value) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise InputError(f"{name} must be a numpy array, got {type(value).__name__}")
    if not np.issubdtype(value.dtype, np.floating):
        hint = " (divide uint8 pixels by 255)" if value.dtype == np.uint8 else ""
        raise InputError(f"{name} must have a floating dtype, got {value.dtype}{hint}")
    with np.errstate(over="ignore", invalid="ignore"):  # a float64 beyond float32 becomes inf: _check_finite names it
        return np.ascontiguousarray(value, dtype=np.float32)


def _check_finite(name, x):
    if np.isfinite(x).all():  # the common case in one pass; the details only for the error
        return
    bad = ~np.isfinite(x)
    raise InputError(f"{name} holds {int(bad.sum())} NaN/inf value(s), first at index {np.argwhere(bad)[0].tolist()}")


def _check_batch(name, x, tail: tuple, tail_text: str):
    if x.ndim != 1 + len(tail) or tuple(x.shape[1:]) != tail:
        raise InputError(f"{name} must have shape {tail_text}, got {list(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(f"{name} is an empty batch (shape {list(x.shape)})")


def check_images(x, image_shape: tuple, *, name: str = "x", multiple_of: int | None = None) -> np.ndarray:
    """x as float32 [N,C,H,W] with N >= 1, finite, every value in [0, 1]. multiple_of: a fully convolutional
    model's downsampling factor; H and W may then be any positive multiple of it."""
    x = _as_float32(name, x)
    if multiple_of is not None and x.ndim == 4 and x.shape[1] == image_shape[0] and min(x.shape[2:]) >= 1:
        if x.shape[2] % multiple_of or x.shape[3] % multiple_of:
            raise InputError(f"{name} has H x W {x.shape[2]} x {x.shape[3]}; this model takes multiples of {multiple_of}")
        image_shape = x.shape[1:]
    _check_batch(name, x, tuple(image_shape), "[N, " + ", ".join(map(str, image_shape)) + "]")
    _check_finite(name, x)
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise InputError(f"{name} must hold pixel values in [0, 1], got values in [{low:g}, {high:g}]")
    return x


def check_image_batch(x, name: str = "images") -> np.ndarray:
    """x as float32 [N,C,H,W] with N >= 1 and every value finite, of any C, H, W (images to write: values
    outside [0, 1] are clipped when a PNG is written)."""
    x = _as_float32(name, x)
    if x.ndim != 4 or 0 in x.shape:
        raise InputError(f"{name} must have shape [N, C, H, W] with no empty axis, got {list(x.shape)}")
    _check_finite(name, x)
    return x


def check_latents(z, latent_dim, *, name: str = "z", any_size: bool = False) -> np.ndarray:
    """z as float32 [N, *latent] with N >= 1 and latent the model's latent shape (an int D: [D]), finite.
    any_size: a fully convolutional model's [C, h, w], whose h and w may be any positive sizes."""
    z = _as_float32(name, z)
    check_latent_shape(z.shape, latent_dim, name=name, any_size=any_size)
    _check_finite(name, z)
    return z


def check_latent_shape(shape: tuple, latent_dim, *, name: str = "z", any_size: bool = False) -> None:
    """check_latents' shape rule alone, for an array not read yet (a memory-mapped file)."""
    latent = (latent_dim,) if isinstance(latent_dim, (int, np.integer)) else tuple(latent_dim)
    if any_size and len(shape) == 1 + len(latent) and shape[1] == latent[0] and min(shape[2:], default=1) >= 1:
        latent = tuple(shape[1:])
    text = ("[N, C, h, w] with C = " + str(latent[0]) if any_size else "[N, " + ", ".join(map(str, latent)) + "]")
    model = f"the model's latent_dim is {latent[0]}" if len(latent) == 1 else f"the model's latent is {list(latent)}"
    if len(shape) != 1 + len(latent) or tuple(shape[1:]) != latent:
        raise InputError(f"{name} must have shape {text} ({model}), got {list(shape)}")
    if shape[0] == 0:
        raise InputError(f"{name} is an empty batch (shape {list(shape)})")


def check_count(name: str, value, *, minimum: int = 1) -> int:
    """value as a Python int >= minimum (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_model(value, name: str = "model"):
    """value if it is a checked model dir (manifest.load's ModelDir), else InputError naming the argument."""
    from ..contract.manifest import ModelDir

    if not isinstance(value, ModelDir):
        raise InputError(f"{name} must be a ModelDir (edgevae.runtime.contract.manifest.load(path)), got {type(value).__name__}")
    return value


def check_path(name: str, value) -> Path:
    """value (a str or os.PathLike naming a file or folder) as a Path; InputError naming the argument for
    anything else: other types, bytes paths, an empty string, a NUL character."""
    if isinstance(value, (str, os.PathLike)):
        try:
            text = os.fspath(value)
        except TypeError:  # __fspath__ returned neither str nor bytes
            text = None
        if isinstance(text, str) and text and "\0" not in text:
            return Path(text)
    got = ("an empty path" if value == "" else "a path holding NUL" if isinstance(value, str)
           else type(value).__name__)
    raise InputError(f"{name} must be a path (a non-empty str or os.PathLike without NUL), got {got}")


def check_threads(value, name: str = "threads") -> int:
    """value as an int from 1 to usable_cores(). onnxruntime starts every intra-op thread it is asked
    for: 1000000 of them exhaust memory (SIGSEGV) or block, and more threads than usable cores only
    time-slice. name: how the caller knows the argument (the CLI passes "--threads")."""
    value = check_count(name, value)
    cores = usable_cores()
    if value > cores:
        raise InputError(f"{name} {value} is more than the {cores} CPU core(s) this process may use; "
                         f"pass {name} {cores} or fewer")
    return value
