"""A minimal PNG codec with zlib + struct, so the runtime needs no Pillow (PNG spec, W3C 2003).

encode_png writes 8-bit grayscale. decode_png reads the 8-bit non-interlaced PNGs that common tools
write (grayscale, gray+alpha, RGB, RGBA; all five row filters) and returns grayscale.
"""

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(gray: np.ndarray) -> bytes:
    """gray uint8 [H,W] -> PNG file bytes (colour type 0, every row with filter 0)."""
    if gray.dtype != np.uint8 or gray.ndim != 2 or 0 in gray.shape:
        raise ValueError(f"encode_png needs a non-empty uint8 [H,W] array, got {gray.dtype} {list(gray.shape)}")
    height, width = gray.shape
    rows = np.hstack([np.zeros((height, 1), np.uint8), gray])  # filter byte 0 before each row
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b"")


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    out = np.zeros((height + 1, stride), np.int64)  # row 0: the zero row above the image
    data = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    for y in range(height):
        kind, line, up = data[y, 0], data[y, 1:].astype(np.int64), out[y]
        if kind == 0:
            row = line
        elif kind == 2:
            row = (line + up) % 256
        elif kind == 1:  # Sub: a running sum along each sample position
            padded = np.zeros(-(-stride // bpp) * bpp, np.int64)
            padded[:stride] = line
            row = (np.cumsum(padded.reshape(-1, bpp), axis=0).reshape(-1) % 256)[:stride]
        elif kind in (3, 4):  # Average, Paeth: each byte needs the one just decoded
            row = line.copy()
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                upleft = up[i - bpp] if i >= bpp else 0
                pred = (left + up[i]) // 2 if kind == 3 else _paeth(left, up[i], upleft)
                row[i] = (line[i] + pred) % 256
        else:
            raise ValueError(f"PNG row {y} has unknown filter type {kind}")
        out[y + 1] = row
    return out[1:].astype(np.uint8)


def decode_png(data: bytes) -> np.ndarray:
    """PNG file bytes -> uint8 [H,W] grayscale (colour averaged, alpha dropped). ValueError when the
    file is not a PNG or uses what this reader skips (bit depth != 8, palette, interlacing)."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file (bad signature)")
    pos, header, idat = len(SIGNATURE), None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body, crc = data[pos + 8:pos + 8 + length], data[pos + 8 + length:pos + 12 + length]
        if len(crc) != 4:
            raise ValueError("truncated PNG file")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise ValueError(f"PNG chunk {kind.decode(errors='replace')} fails its CRC check (corrupt file)")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ValueError("PNG file lacks IHDR or IDAT")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in CHANNELS or interlace:
        raise ValueError(f"PNG with bit depth {depth}, colour type {colour}, interlace {interlace} is not supported "
                         "(need 8-bit gray/RGB(A), not interlaced)")
    channels = CHANNELS[colour]
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as err:
        raise ValueError(f"PNG image data is corrupt ({err})") from None
    if len(raw) != height * (width * channels + 1):
        raise ValueError("PNG image data has the wrong size for its header")
    pixels = _unfilter(raw, height, width * channels, channels).reshape(height, width, channels)
    colours = pixels[..., :3] if channels >= 3 else pixels[..., :1]
    return np.rint(colours.mean(axis=-1)).astype(np.uint8)
