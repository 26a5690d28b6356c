"""Images in and out of the runtime's CLI: reading IDX (raw or .gz), .npy and .png files as float32
[N,1,H,W] in [0,1]; writing .png grids and .npy arrays atomically (temporary name, then rename).

.npy output can be written chunk by chunk (NpyWriter), so `edgevae sample --n 100000` never holds all
samples in memory.
"""

import gzip
import os
import tempfile
from pathlib import Path

import numpy as np

from .png import decode_png, encode_png

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
MAX_PNG_IMAGES = 4096  # a grid of more than this is unreadable; write .npy instead
OUTPUT_SUFFIXES = (".png", ".npy")


def check_output_path(path) -> Path:
    """path as a Path if it ends in .png or .npy and its folder exists, else ValueError naming it."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"output {path} must end in .png or .npy")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    if path.is_dir():
        raise ValueError(f"output {path} is a folder; name a file in it")
    return path


def _temp_beside(path: Path) -> tuple:
    """(fd, name) of a new temporary file beside path, with the permissions a plain open() would give
    (mkstemp makes it 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return fd, tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to a temporary file beside path and rename it over path."""
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """float [N,1,H,W] -> uint8 [rows*H, columns*W], row-major, no padding, so that a grid of
    H x W tiles reads back with read_images. columns: default ceil(sqrt(N))."""
    n, _, h, w = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = -(-n // columns)
    tiles = np.zeros((rows * columns, h, w), np.uint8)
    tiles[:n] = to_uint8(images[:, 0])
    return tiles.reshape(rows, columns, h, w).transpose(0, 2, 1, 3).reshape(rows * h, columns * w)


def write_images(path: Path, images: np.ndarray, columns: int | None = None) -> None:
    """images float [N,1,H,W] -> path: a .png grid or a float32 .npy array, written atomically."""
    if path.suffix.lower() == ".png":
        if len(images) > MAX_PNG_IMAGES:
            raise ValueError(f"{len(images)} images are too many for a PNG grid (at most {MAX_PNG_IMAGES}); write .npy")
        atomic_write_bytes(path, encode_png(grid(images, columns)))
    else:
        with NpyWriter(path, images.shape) as out:
            out.write(images)


class NpyWriter:
    """A .npy file written chunk by chunk under a temporary name and renamed into place when all
    shape[0] rows have been written (removed on an exception), so a partial array is never left at path.

    Plain file writes, not a memmap: a memmap's written pages count as the process's resident memory,
    which made `sample --n 100000` peak at 464 MB instead of staying near the chunk size.
    """

    def __init__(self, path: Path, shape: tuple, dtype=np.float32):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        self.rows = 0

    def __enter__(self) -> "NpyWriter":
        fd, self._tmp = _temp_beside(self.path)
        self._file = os.fdopen(fd, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self._file, header)
        return self

    def write(self, chunk: np.ndarray) -> None:
        """Append rows: chunk's shape must be [k, *shape[1:]]."""
        if tuple(chunk.shape[1:]) != self.shape[1:] or self.rows + len(chunk) > self.shape[0]:
            raise ValueError(f"chunk of shape {list(chunk.shape)} does not fit the .npy of shape {list(self.shape)} "
                             f"after {self.rows} rows")
        self._file.write(np.ascontiguousarray(chunk, dtype=self.dtype).tobytes())
        self.rows += len(chunk)

    def __exit__(self, kind, value, traceback) -> None:
        self._file.close()
        try:
            if kind is None and self.rows != self.shape[0]:
                raise ValueError(f"{self.path}: {self.rows} rows written, {self.shape[0]} expected")
            if kind is None:
                os.replace(self._tmp, self.path)
        finally:  # a no-op after the rename; removes the temporary file on any failure, the rename's own included
            Path(self._tmp).unlink(missing_ok=True)


def _read_idx(path: Path, data: bytes) -> np.ndarray:
    if len(data) < 16 or int.from_bytes(data[:4], "big") != IDX_IMAGES_MAGIC:
        raise ValueError(f"{path} is not an IDX image file (magic {data[:4].hex()}, want {IDX_IMAGES_MAGIC:08x})")
    n, h, w = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    if len(data) != 16 + n * h * w:
        raise ValueError(f"{path} holds {len(data) - 16} pixel bytes, its header says {n}x{h}x{w}")
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, h, w)


def _tiles(path: Path, gray: np.ndarray, size: tuple) -> np.ndarray:
    """A PNG of one image, or a grid of size-d tiles (as `grid` writes them), as [N,1,H,W]."""
    (gh, gw), (h, w) = gray.shape, size
    if gh % h or gw % w:
        raise ValueError(f"{path} is {gw}x{gh} pixels: not a {w}x{h} image or a grid of them")
    return gray.reshape(gh // h, h, gw // w, w).transpose(0, 2, 1, 3).reshape(-1, 1, h, w)


def read_images(path, size: tuple = (28, 28)) -> np.ndarray:
    """Images from an IDX (raw or .gz), .npy or .png file as float32 [N,1,H,W] in [0,1].

    uint8 pixels are divided by 255; float arrays are taken as they are (the runtime checks their range).
    .npy may be [H,W], [N,H,W] or [N,1,H,W]. ValueError / FileNotFoundError name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist or is not a file")
    name = path.name.lower()
    if name.endswith(".npy"):
        try:
            images = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{path} is not a readable .npy file ({err})") from None
        if images.ndim == 2:
            images = images[None]
        if images.ndim == 3:
            images = images[:, None]
    elif name.endswith(".png"):
        try:
            gray = decode_png(path.read_bytes())
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        images = _tiles(path, gray, size)
    else:  # IDX, as Fashion-MNIST ships it: raw or gzipped
        try:
            data = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
        except (OSError, EOFError) as err:
            raise ValueError(f"{path} is not a readable gzip file ({err})") from None
        images = _read_idx(path, data)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"{path} holds {images.dtype} values; want uint8 pixels or floats in [0, 1]")
    return images.astype(np.float32)
