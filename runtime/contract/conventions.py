"""A model's declared conventions (runtime/contract/manifest.py Conventions) as array maps, shared by the runtime and by
quantize's quality measurements: images in [0, 1] to the encoder's pixel range, and x_hat of any decoder head
to images in [0, 1]."""

import numpy as np

from .manifest import Conventions


def to_pixels(x: np.ndarray, conventions: Conventions) -> np.ndarray:
    """Images in [0, 1] -> the encoder's pixel range (x itself for [0, 1])."""
    low, high = conventions.pixel_range
    return x if (low, high) == (0.0, 1.0) else (low + (high - low) * x).astype(np.float32)


def to_unit(y: np.ndarray, conventions: Conventions) -> np.ndarray:
    """The decoder's x_hat (finite) -> images in [0, 1], in place: sigmoid of logits; a Gaussian mean or an
    image mapped from pixel_range and clipped; Bernoulli means as they are."""
    head = conventions.decoder_head
    if head == "bernoulli_means":
        return y
    if head == "bernoulli_logits":
        with np.errstate(over="ignore"):  # exp(-y) overflows to inf for y << 0: the mean is then 0, as it should be
            return np.reciprocal(1.0 + np.exp(-y, out=y), out=y)
    low, high = conventions.pixel_range
    if (low, high) != (0.0, 1.0):
        y -= np.float32(low)
        y /= np.float32(high - low)
    return np.clip(y, 0.0, 1.0, out=y)
