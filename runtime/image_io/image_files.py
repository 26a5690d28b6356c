"""Images out of the runtime's CLI: .png grids and .npy arrays written atomically (temporary name, then
rename). Reading (IDX, .npy, .png, each checked before it is read) is in image_input; read_images is
re-exported here.

.npy output can be written chunk by chunk (NpyWriter), so `edgevae sample --n 100000` never holds all
samples in memory.
"""

from pathlib import Path

import numpy as np

from edgevae.atomic import atomic_open, write_bytes

from ..inference.checks import check_count, check_image_batch, check_path
from ..contract.errors import InputError
from .image_input import read_images  # noqa: F401  (re-exported: callers import it from here)
from .png import encode_png
from ..contract.safe_files import escape
from ..contract.typed_json import short_repr

MAX_PNG_IMAGES = 4096  # a grid of more than this is unreadable; write .npy instead
OUTPUT_SUFFIXES = (".png", ".npy")


def check_output_path(path) -> Path:
    """path as a Path if it ends in .png or .npy and its folder exists, else InputError naming it."""
    path = check_path("path", path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"output {path} must end in .png or .npy")
    if not path.parent.is_dir():
        raise InputError(f"output folder {path.parent} does not exist")
    if path.is_dir():
        raise InputError(f"output {path} is a folder; name a file in it")
    return path


def _columns(columns) -> int | None:
    return None if columns is None else check_count("columns", columns)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (clipped there; NaN is refused) as uint8 pixels, rounded to the nearest grey level."""
    if not isinstance(images, np.ndarray) or not np.issubdtype(images.dtype, np.floating):
        raise InputError(f"images must be a numpy array of floats, got {getattr(images, 'dtype', type(images).__name__)}")
    if np.isnan(images).any():
        raise InputError("images hold NaN, which has no pixel value")
    return np.rint(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """float [N,1,H,W] -> uint8 [rows*H, columns*W] (or [N,3,H,W] -> RGB [rows*H, columns*W, 3]), row-major,
    no padding, so that a grid of H x W tiles reads back with read_images. columns: default ceil(sqrt(N))."""
    images, columns = check_image_batch(images), _columns(columns)
    n, c, h, w = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = -(-n // columns)
    tiles = np.zeros((rows * columns, h, w, c), np.uint8)
    tiles[:n] = to_uint8(images.transpose(0, 2, 3, 1))
    out = tiles.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, columns * w, c)
    return out[..., 0] if c == 1 else out


def write_images(path: Path, images: np.ndarray, *, columns: int | None = None) -> None:
    """images float [N,C,H,W] -> path: a .png grid (C 1 or 3) or a float32 .npy array, written atomically."""
    path, images, columns = check_output_path(path), check_image_batch(images), _columns(columns)
    if path.suffix.lower() == ".png":
        if len(images) > MAX_PNG_IMAGES:
            raise InputError(f"{len(images)} images are too many for a PNG grid (at most {MAX_PNG_IMAGES}); write .npy")
        if images.shape[1] not in (1, 3):
            raise InputError(f"images have {images.shape[1]} channels; a PNG grid holds gray (1) or RGB (3)")
        write_bytes(path, encode_png(grid(images, columns)))
    else:
        with NpyWriter(path, images.shape) as out:
            out.write(images)


class NpyWriter:
    """A .npy file written chunk by chunk under a temporary name and renamed into place when all
    shape[0] rows have been written (removed on an exception), so a partial array is never left at path.

    Plain file writes, not a memmap: a memmap's written pages count as the process's resident memory,
    which made `sample --n 100000` peak at 464 MB instead of staying near the chunk size.
    """

    def __init__(self, path: Path, shape: tuple, *, dtype=np.float32):
        if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)) or not shape:
            raise InputError(f"shape must be a tuple of array sizes, got {escape(short_repr(shape))}")
        try:
            dtype = np.dtype(dtype)
        except (TypeError, ValueError, SyntaxError) as err:
            raise InputError(f"dtype {escape(short_repr(dtype))} is not a numpy dtype ({type(err).__name__})") from None
        if dtype.kind != "f" or dtype.fields is not None or dtype.subdtype is not None:
            raise InputError(f"dtype must be a float dtype (images), got {dtype}")
        self.path, self.dtype = check_path("path", path), dtype
        self.shape = tuple(check_count(f"shape[{i}]", d, minimum=0) for i, d in enumerate(shape))
        self.rows = 0

    def __enter__(self) -> "NpyWriter":
        self._open = atomic_open(self.path)
        try:  # __exit__ does not run when __enter__ raises: a signal during the header must remove the file here
            self._file = self._open.__enter__()
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
            np.lib.format.write_array_header_1_0(self._file, header)
        except BaseException as err:
            self._open.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def write(self, chunk: np.ndarray) -> None:
        """Append rows: chunk's shape must be [k, *shape[1:]]."""
        if not isinstance(chunk, np.ndarray):
            raise InputError(f"chunk must be a numpy array, got {type(chunk).__name__}")
        if tuple(chunk.shape[1:]) != self.shape[1:] or self.rows + len(chunk) > self.shape[0]:
            raise InputError(f"chunk of shape {list(chunk.shape)} does not fit the .npy of shape {list(self.shape)} "
                             f"after {self.rows} rows")
        self._file.write(np.ascontiguousarray(chunk, dtype=self.dtype).tobytes())
        self.rows += len(chunk)

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None and self.rows != self.shape[0]:
            error = InputError(f"{self.path}: {self.rows} rows written, {self.shape[0]} expected")
            self._open.__exit__(ValueError, error, None)  # removes the temporary file
            raise error
        self._open.__exit__(kind, value, traceback)  # renamed into place, or removed on an exception
