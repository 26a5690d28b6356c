"""The latent-space arithmetic every part of edgevae shares: one noise stream and one reparameterization.

Noise comes from numpy's Generator (never an ONNX RandomNormal node), drawn as float32 standard normals:
runtime sampling, export calibration and export quality all use this stream, so one seed means the same
eps everywhere. The JavaScript runtime documents its own generator and is compared on given latents.
"""

import numpy as np


def rng_of(seed) -> np.random.Generator:
    """numpy's Generator for seed: None (fresh entropy), an int >= 0, or a Generator (used as is).
    ValueError/TypeError for anything else; callers wrap it into their own error type."""
    if isinstance(seed, np.random.Generator) or seed is None:
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer >= 0, None or a numpy Generator, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def standard_normal(rng: np.random.Generator, shape) -> np.ndarray:
    """eps ~ N(0, I) as float32 of `shape`: drawing rows chunk by chunk from one Generator gives the same
    stream as one draw of all rows."""
    return rng.standard_normal(shape, dtype=np.float32)


def reparameterize(mu: np.ndarray, logvar: np.ndarray, *, eps: np.ndarray) -> np.ndarray:
    """z = mu + exp(logvar / 2) * eps (Kingma & Welling 2014, eq. 10), float32."""
    with np.errstate(over="ignore"):
        return (mu + np.exp(0.5 * logvar) * eps).astype(np.float32, copy=False)
