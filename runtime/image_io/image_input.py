"""Images into the runtime's CLI (and training's IDX and .npy data sets): IDX (raw or .gz), .npy and .png files
read as float32 [N,C,H,W] in [0,1], with every size the file declares checked before anything is read or inflated.

An input file is untrusted: a small PNG can declare 10000x10000 pixels, a 2 MB .gz can inflate to 2 GB,
a sparse file can claim 20 GiB. So headers come first (PNG IHDR, IDX dims, .npy header: every field) and
are checked against what the call can use, then only the images asked for are read: `count` images from IDX
and .npy (a .gz is inflated only that far; a Fortran-order .npy too), and PNGs only up to MAX_INPUT_TILES
tiles. Every problem raises InputError naming the file (read_images also names a bad argument).

PNGs are decoded by Pillow when it is installed (a well-kept decoder that also reads 16-bit, palette
and interlaced files), otherwise by edgevae.runtime.image_io.png (8-bit gray/RGB(A)); both give the same pixels.
"""

import ast
import gzip
import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from ..inference.checks import check_count, check_path
from ..contract.errors import InputError
from .png import HEADER_BYTES, decode_png, png_header, raw_size, to_channels
from ..contract.safe_files import escape
from ..contract.typed_json import short_repr

IDX_UBYTE = 0x08  # IDX element type: unsigned byte
IDX_DIMS = (3, 4)  # [N,H,W] gray images, or [N,C,H,W]
MAX_INPUT_TILES = 4096  # a PNG input may hold at most this many tiles (the most a grid we write holds)
MAX_PNG_EXTRA_BYTES = 16 << 20  # metadata (ICC profile, text) a PNG may carry beyond its image data
MAX_READ_BYTES = 1 << 30  # float32 images one call may return (all 60000 Fashion-MNIST images: 188 MB)
# training holds its whole data set as one float32 tensor: it may read more (2.1M 32x32 RGB images), never unbounded
MAX_TRAIN_READ_BYTES = 8 << 30
NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER_BYTES = 1 << 16  # numpy writes ~128 bytes and itself refuses more than 10000 by default
SPAN_READ_BYTES = 16 << 20  # Fortran-order .npy: below this, the images' whole span is read at once


def _check_read(path: Path, k: int, size: tuple, channels: int = 1, max_bytes: int = MAX_READ_BYTES) -> None:
    """Refuse, before reading, k images whose float32 copy would pass max_bytes."""
    need = k * channels * size[0] * size[1] * 4
    if need > max_bytes:
        most = max_bytes // (channels * size[0] * size[1] * 4)
        raise InputError(f"{path}: {k} images would take {need / 1e9:.3g} GB as float32; read at most {most} at a time "
                         "(--limit / count)")


def _png_pixels_allowed(size: tuple) -> int:
    return MAX_INPUT_TILES * size[0] * size[1]


def _pillow_pixels(path: Path, max_pixels: int, channels: int) -> np.ndarray:
    """Decode with Pillow, then reduce to gray or RGB with png.to_channels, as the fallback decoder does."""
    from PIL import Image

    with warnings.catch_warnings():
        # The size was checked against max_pixels already; Pillow's own, larger bomb limit must not print.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path, formats=["PNG"]) as im:
            if im.width * im.height > max_pixels:
                raise InputError(f"declares {im.width}x{im.height} pixels")
            if im.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit gray: keep the high byte
                return to_channels((np.asarray(im, np.uint32) >> 8).astype(np.uint8)[..., None], channels)
            if im.mode not in ("L", "LA", "RGB", "RGBA"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode in ("PA", "P") else "RGB")
            pixels = np.asarray(im)
    return to_channels(pixels if pixels.ndim == 3 else pixels[..., None], channels)


def read_png(path: Path, *, size: tuple, channels: int = 1) -> np.ndarray:
    """A PNG of one H x W image or a grid of them (as write_images writes it) as uint8 [H', W'] gray, or
    [H', W', 3] RGB for channels 3.
    Its IHDR is checked first: at most MAX_INPUT_TILES tiles of `size`, and a file size to match."""
    max_pixels = _png_pixels_allowed(size)
    with open(path, "rb") as f:
        start = f.read(HEADER_BYTES)
        try:
            header = png_header(start)
        except ValueError as err:
            raise InputError(f"{path}: {err}") from None
        if header.width == 0 or header.height == 0:
            raise InputError(f"{path} declares a {header.width}x{header.height} image (the PNG spec needs both >= 1)")
        if header.width * header.height > max_pixels:
            raise InputError(f"{path} declares {header.width}x{header.height} pixels: more than a grid of "
                             f"{MAX_INPUT_TILES} {size[1]}x{size[0]} tiles ({max_pixels} pixels)")
        file_size = f.seek(0, 2)
        # Compressed image data is never much larger than raw (deflate's stored blocks: 5 bytes per 64 KiB).
        allowed = raw_size(header) * 1.01 + MAX_PNG_EXTRA_BYTES
        if file_size > allowed:
            raise InputError(f"{path} is {file_size} bytes: too large for the {header.width}x{header.height} "
                             f"image its header declares (at most {int(allowed)})")
        try:
            import PIL  # noqa: F401  (optional: the base install decodes 8-bit PNGs itself)
        except ImportError:
            f.seek(0)
            data = f.read()
        else:
            data = None
    try:
        return decode_png(data, max_pixels=max_pixels, channels=channels) if data is not None else _pillow_pixels(path, max_pixels, channels)
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    except Exception as err:  # Pillow: OSError, SyntaxError ("broken PNG file"), zlib.error, ...
        raise InputError(f"{path} is not a readable PNG file ({type(err).__name__}: {err})") from None


def _tiles(path: Path, pixels: np.ndarray, size: tuple) -> np.ndarray:
    """A PNG of one image, or a grid of size-d tiles (as `grid` writes them), [H',W'] or [H',W',C], as [N,C,H,W]."""
    pixels = pixels if pixels.ndim == 3 else pixels[..., None]
    (gh, gw, c), (h, w) = pixels.shape, size
    if gh % h or gw % w:
        raise InputError(f"{path} is {gw}x{gh} pixels: not a {w}x{h} image or a grid of them")
    return pixels.reshape(gh // h, h, gw // w, w, c).transpose(0, 2, 4, 1, 3).reshape(-1, c, h, w)


def _open_idx(path: Path):
    """The IDX file opened for reading: gzip when its name ends in .gz (inflated only as far as read)."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def read_idx(path: Path, *, size: tuple | None, count: int | None, channels: int | None = 1,
             max_bytes: int = MAX_READ_BYTES) -> np.ndarray:
    """The first `count` (None: all) images of an IDX file of unsigned bytes, [N,H,W] (gray) or [N,C,H,W], as
    uint8 [N,C,H,W]. size (H, W) and channels: what the images must be; None takes what the file declares."""
    gz = path.name.lower().endswith(".gz")
    try:
        with _open_idx(path) as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:3] != bytes([0, 0, IDX_UBYTE]) or magic[3] not in IDX_DIMS:
                raise InputError(f"{path} is not an IDX image file (magic {magic.hex() or 'missing'}, want 00000803 "
                                 "or 00000804: unsigned bytes, 3 or 4 dimensions)")
            header = f.read(4 * magic[3])
            if len(header) < 4 * magic[3]:
                raise InputError(f"{path} is {4 + len(header)} bytes long: too short for its IDX header "
                                 f"({4 + 4 * magic[3]} bytes)")
            n, *image = (int.from_bytes(header[i:i + 4], "big") for i in range(0, len(header), 4))
            c, h, w = image if len(image) == 3 else (1, *image)
            if len(image) == 2 and channels not in (None, 1):
                raise InputError(f"{path} is an IDX file of gray images; the model takes {channels} channels "
                                 "(use .npy or .png)")
            if channels is not None and c != channels:
                raise InputError(f"{path} holds {c}-channel images; the model takes {channels}")
            if size is not None and (h, w) != tuple(size):
                raise InputError(f"{path} holds {h}x{w} images; the model takes {size[0]}x{size[1]}")
            if min(c, h, w) < 1:
                raise InputError(f"{path} declares empty images ({c}x{h}x{w})")
            per_image = c * h * w
            if not gz:  # a raw file's length can be checked without reading it
                have = f.seek(0, 2) - 4 - len(header)
                if have != n * per_image:
                    raise InputError(f"{path} holds {have} pixel bytes, its header says {'x'.join(map(str, (n, *image)))}")
                f.seek(4 + len(header))
            k = n if count is None else min(n, count)
            _check_read(path, k, (h, w), c, max_bytes)
            data = f.read(k * per_image)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise InputError(f"{path} is not a readable {'gzip' if gz else 'IDX'} file ({err})") from None
    if len(data) != k * per_image:
        raise InputError(f"{path} ends after {len(data) // per_image} images; its header says {n}")
    return np.frombuffer(data, np.uint8).reshape(k, c, h, w)


def _npy_header(f, path: Path) -> tuple:
    """(shape, fortran_order, dtype) of an open .npy file, its file position left at the data. Every field
    is checked here, before any data is read: the magic, a format version of 1.0, 2.0 or 3.0 (the length field
    and the header's text encoding differ), a header of at most MAX_NPY_HEADER_BYTES that is a Python dict
    literal with exactly the keys descr, fortran_order and shape, shape a tuple of ints >= 0, fortran_order a
    bool. The header is parsed with ast.literal_eval, never evaluated; a pickled payload is never reached."""
    start = f.read(len(NPY_MAGIC) + 2)
    if len(start) < len(NPY_MAGIC) + 2 or not start.startswith(NPY_MAGIC):
        raise InputError(f"{path} is not a .npy file (it does not start with the \\x93NUMPY magic)")
    version = (start[-2], start[-1])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise InputError(f"{path} is not a readable .npy file (format {version[0]}.{version[1]}; formats 1.0, 2.0 "
                         "and 3.0 are read)")
    size_format, encoding = ("<H", "latin-1") if version == (1, 0) else ("<I", "latin-1" if version == (2, 0) else "utf-8")
    field = f.read(struct.calcsize(size_format))
    length = struct.unpack(size_format, field)[0] if len(field) == struct.calcsize(size_format) else -1
    if not 0 <= length <= MAX_NPY_HEADER_BYTES:
        raise InputError(f"{path} is not a readable .npy file (header length {length}: truncated, or over "
                         f"{MAX_NPY_HEADER_BYTES} bytes)")
    raw = f.read(length)
    try:
        if len(raw) != length:
            raise EOFError(f"the file ends inside its {length}-byte header")
        header = ast.literal_eval(raw.decode(encoding))
    except (EOFError, UnicodeDecodeError, ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
        reason = str(err).splitlines()[0][:80] if str(err) else ""
        raise InputError(f"{path} is not a readable .npy file (header: {type(err).__name__} {escape(reason)})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        keys = sorted(map(str, header))[:5] if isinstance(header, dict) else type(header).__name__
        raise InputError(f"{path} is not a readable .npy file (header must be a dict of descr, fortran_order and "
                         f"shape, got {escape(keys)})")
    shape, fortran_order, descr = header["shape"], header["fortran_order"], header["descr"]
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise InputError(f"{path} is not a readable .npy file (shape {escape(short_repr(shape))} is not a tuple of "
                         "sizes)")
    if type(fortran_order) is not bool:
        raise InputError(f"{path} is not a readable .npy file (fortran_order {escape(short_repr(fortran_order))} is "
                         "not True or False)")
    try:
        dtype = np.dtype(descr) if isinstance(descr, str) else None  # a type description: nothing is run
    except (TypeError, ValueError, SyntaxError, MemoryError):
        dtype = None
    usable = dtype is not None and dtype.fields is None and dtype.subdtype is None and not dtype.hasobject
    if not usable or not (dtype == np.uint8 or dtype == np.bool_ or dtype.kind == "f"):
        kind = dtype if dtype is not None else escape(short_repr(descr))
        raise InputError(f"{path} holds {kind} values; want uint8 pixels or floats in [0, 1] (or booleans)")
    return shape, fortran_order, dtype


def _read_fortran(f, offset: int, n: int, k: int, image: tuple, dtype: np.dtype) -> np.ndarray:
    """The first k of n images [C,H,W] stored in Fortran (column-major) order from offset. The image index
    varies fastest, so each of the C*H*W pixel positions holds the n images' values side by side: the first k
    of each are read (one read of the whole span when that is at most 4x, or 16 MiB, more than is used), never
    the whole file and never a memory map (which took 20 s, or ENOMEM under an address-space limit, for a
    78 GB file read for one image)."""
    pixels, size = math.prod(image), dtype.itemsize
    need, span = pixels * k * size, pixels * n * size
    if span <= max(4 * need, SPAN_READ_BYTES):
        f.seek(offset)
        data = f.read(span)
        images = np.frombuffer(data, dtype, count=pixels * n if len(data) == span else 0)
        images = images.reshape(pixels, n)[:, :k] if len(data) == span else None
    else:
        fd = f.fileno()
        data = b"".join(os.pread(fd, k * size, offset + p * n * size) for p in range(pixels))
        images = np.frombuffer(data, dtype).reshape(pixels, k) if len(data) == need else None
    if images is None:
        raise OSError("the file changed size while being read")
    c, h, w = image
    # [pixel, image] with pixel in Fortran order over (C, H, W), which is C order over (W, H, C)
    return np.ascontiguousarray(images.T.reshape(k, w, h, c).transpose(0, 3, 2, 1))


def read_npy(path: Path, *, size: tuple | None, count: int | None, channels: int | None = 1,
             max_bytes: int = MAX_READ_BYTES) -> np.ndarray:
    """The first `count` images of a .npy of uint8, bool or floats shaped [N,C,H,W] or [C,H,W] (and, for gray
    models, [N,H,W] or [H,W]), in C or Fortran order, format 1.0, 2.0 or 3.0. The header (_npy_header: every
    field) and the file's length are checked first; only the images used are read. size (H, W) and channels:
    what the images must be; None takes what the file declares ([N,H,W] is then gray, [N,C,H,W] as it is)."""
    with open(path, "rb") as f:
        shape, fortran_order, dtype = _npy_header(f, path)
        found = shape
        if channels is None or size is None:  # a data set: [N,H,W] or [N,C,H,W], nothing else
            if len(shape) not in (3, 4):
                raise InputError(f"{path} holds an array of shape {list(shape)}; want [N,H,W] or [N,C,H,W]")
            shape = (shape[0], 1, *shape[1:]) if len(shape) == 3 else shape
            if channels is None and shape[1] > 4 and shape[3] in (1, 3, 4):
                raise InputError(f"{path} holds {list(found)}, which looks channels-last; save it as [N,C,H,W] "
                                 "(np.transpose(a, (0, 3, 1, 2)))")
            channels = shape[1] if channels is None else channels
            size = tuple(shape[2:]) if size is None else tuple(size)
        elif channels == 1 and len(shape) in (2, 3):  # gray without its channel axis
            shape = (1, *shape) if len(shape) == 2 else shape
            shape = (shape[0], 1, *shape[1:])
        elif len(shape) == 3:  # one image
            shape = (1, *shape)
        image = (channels, *size)
        # Axes of size 1 added in front leave both memory orders' layouts unchanged, so `shape` describes the data.
        if len(shape) != 4 or shape[1:] != image or 0 in image:
            h, w = size
            want = (f"[N, {h}, {w}], [N, 1, {h}, {w}] or [{h}, {w}]" if channels == 1
                    else f"[N, {channels}, {h}, {w}] or [{channels}, {h}, {w}]")
            raise InputError(f"{path} holds an array of shape {list(found)}; want {want}")
        n = shape[0]
        offset, per_image = f.tell(), dtype.itemsize * channels * size[0] * size[1]
        have = f.seek(0, 2) - offset
        if have < n * per_image:
            raise InputError(f"{path} is truncated: its header says shape {list(shape)} ({n * per_image} bytes), "
                             f"it holds {have}")
        k = n if count is None else min(n, count)
        _check_read(path, k, size, channels, max_bytes)
        if fortran_order:
            return _read_fortran(f, offset, n, k, image, dtype)
        f.seek(offset)
        data = f.read(k * per_image)
        if len(data) != k * per_image:
            raise OSError("the file changed size while being read")
        return np.frombuffer(data, dtype).reshape(k, *image)


def read_images(path, size: tuple | None = (28, 28), count: int | None = None, channels: int | None = 1, *,
                max_bytes: int = MAX_READ_BYTES) -> np.ndarray:
    """Images from an IDX (raw or .gz), .npy or .png file as float32 [N,C,H,W] in [0,1], N <= count.

    size: the model's (H, W), channels its C (1 gray, 3 RGB: a PNG is converted); a file of other images is
    refused before its pixels are read. None (IDX and .npy only, as training reads its data sets): whatever
    the file declares.
    count: read at most this many images (None: all); a PNG is decoded whole but may hold at most
    MAX_INPUT_TILES tiles. max_bytes: the most their float32 copy may take (refused before reading).
    uint8 pixels are divided by 255; float arrays are taken as they are (the runtime checks their range).
    InputError naming the argument, or the file and what is wrong with it.
    """
    path = check_path("path", path)
    if size is not None:
        if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
            raise InputError(f"size must be (height, width) or None, got {escape(short_repr(size))}")
        size = (check_count("size[0]", size[0]), check_count("size[1]", size[1]))
    count = None if count is None else check_count("count", count)
    channels = None if channels is None else check_count("channels", channels)
    max_bytes = check_count("max_bytes", max_bytes)
    if not path.is_file():
        raise InputError(f"input {path} does not exist or is not a file")
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            images = read_npy(path, size=size, count=count, channels=channels, max_bytes=max_bytes)
        elif name.endswith(".png"):
            if size is None or channels is None:
                raise InputError(f"{path}: a PNG is read as tiles of the model's image size and channels; give both")
            images = _tiles(path, read_png(path, size=size, channels=channels), size)[:count]
        else:  # IDX, as Fashion-MNIST ships it: raw or gzipped
            images = read_idx(path, size=size, count=count, channels=channels, max_bytes=max_bytes)
    except OSError as err:  # unreadable (permissions, I/O error), or changed while read
        raise InputError(f"cannot read input {path}: {escape(err.strerror or err)}") from None
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    with np.errstate(over="ignore", invalid="ignore"):  # a float64 beyond float32 becomes inf: the runtime names it
        return images.astype(np.float32)
