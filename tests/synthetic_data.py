"""Small Fashion-MNIST-shaped IDX files written by the tests themselves."""

import gzip
import struct
from pathlib import Path

import numpy as np

REAL_DATA = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims, data."""
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def synthetic_images(n: int, seed: int) -> np.ndarray:
    """uint8 [n,28,28]: bright rectangles of random size on black, so a VAE has something to learn."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for img in images:
        top, left = rng.integers(2, 12, size=2)
        h, w = rng.integers(6, 14, size=2)
        img[top : top + h, left : left + w] = rng.integers(128, 256)
    return images


def write_idx_dataset(folder: Path, n_train=256, n_test=64, gz=True, seed=0) -> Path:
    """The four IDX files of a tiny Fashion-MNIST look-alike in folder (gzipped or raw)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = lambda n: (np.arange(n) % 10).astype(np.uint8)  # noqa: E731
    arrays = {
        "train-images-idx3-ubyte": synthetic_images(n_train, seed),
        "train-labels-idx1-ubyte": labels(n_train),
        "t10k-images-idx3-ubyte": synthetic_images(n_test, seed + 1),
        "t10k-labels-idx1-ubyte": labels(n_test),
    }
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder
