"""Latents handed to `edgevae decode`: a .npy file read without trusting it.

np.load with allow_pickle=False refuses object arrays; memory mapping means a file of any size is read
only as far as the decoder gets, chunk by chunk, and a header claiming more rows than the file holds fails
at once. Shapes and values (float, finite, the model's latent) are checked per chunk by the runtime.
"""

import os
import stat
from pathlib import Path

import numpy as np

NPY_MAGIC = b"\x93NUMPY"


def read_latents(path) -> np.ndarray:
    """The array in the .npy file at path, memory-mapped read-only; ValueError naming the file otherwise."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise ValueError(f"--latents {path}: expected a .npy file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not hang the open
    except FileNotFoundError:
        raise ValueError(f"--latents {path} does not exist") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"--latents {path} is not a regular file")
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:  # no .npz archive or pickle reaches np.load
            raise ValueError(f"--latents {path} is not a .npy array")
    try:
        z = np.load(path, mmap_mode="r", allow_pickle=False)  # numpy memory-maps only by file name
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"--latents {path} is not a readable .npy array ({str(err).splitlines()[0][:80]})") from None
    if z.ndim < 2 or len(z) == 0:
        raise ValueError(f"--latents {path} has shape {list(z.shape)}; expected [N, *latent] with N >= 1")
    return z
