"""The runtime's PNG codec and image files: round trips through our writer, Pillow (when installed) and
plain zlib; IDX (raw and .gz), .npy and .png inputs; atomic .npy writing."""

import gzip
import struct
import zlib

import numpy as np
import pytest
from helpers import idx_bytes, synthetic_images

from edgevae.runtime.image_io.image_files import NpyWriter, grid, read_images, to_uint8, write_images
from edgevae.runtime.image_io.png import decode_png, encode_png

SHAPES = [(1, 1), (28, 28), (3, 100), (57, 5)]


def idat_pixels(png: bytes, height: int, width: int) -> np.ndarray:
    """The pixels of an 8-bit grayscale PNG whose rows all use filter 0, read with zlib alone."""
    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        idat += png[pos + 8:pos + 8 + length] if kind == b"IDAT" else b""
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width + 1)
    assert np.all(rows[:, 0] == 0)
    return rows[:, 1:]


@pytest.mark.parametrize("shape", SHAPES)
def test_png_round_trips_through_zlib_our_reader_and_pillow(tmp_path, shape):
    gray = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(gray)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(idat_pixels(data, *shape), gray)
    assert np.array_equal(decode_png(data), gray)
    image = pytest.importorskip("PIL.Image")
    (tmp_path / "x.png").write_bytes(data)
    with image.open(tmp_path / "x.png") as im:
        assert im.mode == "L" and im.size == shape[::-1]
        assert np.array_equal(np.asarray(im), gray)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_our_reader_reads_pillow_pngs_with_every_row_filter(tmp_path, mode):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    gray = (np.add.outer(np.arange(40), np.arange(30)) * 3 % 256).astype(np.uint8)  # smooth: Pillow picks varied filters
    gray[::7] = rng.integers(0, 256, gray[::7].shape, dtype=np.uint8)
    img = Image.fromarray(gray, "L").convert(mode)
    img.save(tmp_path / "x.png", optimize=True)
    data = (tmp_path / "x.png").read_bytes()
    assert np.array_equal(decode_png(data), gray)


def test_png_reader_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="not a PNG file"):
        decode_png(b"GIF89a....")
    with pytest.raises(ValueError, match="truncated"):
        decode_png(encode_png(np.zeros((4, 4), np.uint8))[:-14])
    corrupt = bytearray(encode_png(np.zeros((4, 4), np.uint8)))
    corrupt[20] ^= 1  # inside IHDR
    with pytest.raises(ValueError, match="IHDR fails its CRC check"):
        decode_png(bytes(corrupt))
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4), np.float32))


def test_grid_is_row_major_without_padding():
    images = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 1, 4, 3) / 59
    g = grid(images)  # 3 columns, 2 rows; the 6th tile is black
    assert g.shape == (8, 9) and g.dtype == np.uint8
    assert np.array_equal(g[4:8, 3:6], to_uint8(images[4, 0])) and not g[4:8, 6:9].any()


def test_image_files_read_idx_npy_and_png(tmp_path):
    pixels = synthetic_images(6, seed=2)
    expected = pixels[:, None].astype(np.float32) / 255
    (tmp_path / "raw-idx3-ubyte").write_bytes(idx_bytes(pixels))
    (tmp_path / "gz-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(pixels)))
    np.save(tmp_path / "u8.npy", pixels)
    np.save(tmp_path / "f.npy", expected[:, 0])
    write_images(tmp_path / "grid.png", expected[:5])
    for name in ("raw-idx3-ubyte", "gz-idx3-ubyte.gz", "u8.npy", "f.npy"):
        x = read_images(tmp_path / name)
        assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32
        assert np.array_equal(x, expected), name
    from_png = read_images(tmp_path / "grid.png")
    assert from_png.shape == (6, 1, 28, 28)  # 3x2 grid, the last tile black
    assert np.array_equal(from_png[:5], expected[:5]) and not from_png[5].any()


def test_read_images_count_reads_the_first_images_of_every_format(tmp_path):
    pixels = synthetic_images(6, seed=4)
    (tmp_path / "raw-idx3-ubyte").write_bytes(idx_bytes(pixels))
    (tmp_path / "gz-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(pixels)))
    np.save(tmp_path / "u8.npy", pixels[:, None])
    np.save(tmp_path / "fortran.npy", np.asfortranarray(pixels.astype(np.float32) / 255))
    write_images(tmp_path / "grid.png", pixels[:, None].astype(np.float32) / 255)
    expected = pixels[:, None].astype(np.float32) / 255
    for name in ("raw-idx3-ubyte", "gz-idx3-ubyte.gz", "u8.npy", "fortran.npy", "grid.png"):
        for count in (1, 4, 100):
            x = read_images(tmp_path / name, count=count)
            assert x.shape == (min(count, 6), 1, 28, 28) and x.flags.c_contiguous, (name, count)
            assert np.allclose(x, expected[:count], atol=1 / 255 if name == "grid.png" else 0), (name, count)


@pytest.mark.parametrize("name,content,message", [
    ("bad-idx3-ubyte", b"\x00\x00\x08\x01" + b"\x00" * 20, "not an IDX image file"),
    ("short-idx3-ubyte", idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-5], "its header says 3x28x28"),
    ("bad.gz", b"not gzip", "not a readable gzip file"),
    ("bad.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 4, "lacks IHDR"),
    ("odd.png", encode_png(np.zeros((30, 28), np.uint8)), "28x30 pixels: not a 28x28 image"),
])
def test_image_files_refuse_bad_inputs_naming_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_images(tmp_path / name)
    assert message in str(info.value) and name in str(info.value)


def test_npy_writer_renames_on_success_and_leaves_nothing_on_error(tmp_path):
    with NpyWriter(tmp_path / "ok.npy", (3, 2)) as npy:
        npy.write(np.full((2, 2), 7.0))
        npy.write(np.full((1, 2), 8.0))
    assert np.array_equal(np.load(tmp_path / "ok.npy"), np.array([[7, 7], [7, 7], [8, 8]], np.float32))
    with pytest.raises(RuntimeError):
        with NpyWriter(tmp_path / "interrupted.npy", (3, 2)) as npy:
            npy.write(np.zeros((1, 2)))
            raise RuntimeError("interrupted")
    with pytest.raises(ValueError, match="1 rows written, 3 expected"):
        with NpyWriter(tmp_path / "short.npy", (3, 2)) as npy:
            npy.write(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="does not fit"):
        with NpyWriter(tmp_path / "wide.npy", (3, 2)) as npy:
            npy.write(np.zeros((1, 3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.npy"]
