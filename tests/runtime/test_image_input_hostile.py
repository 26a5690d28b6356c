"""Input files (issue 21, item 5): every header field of a .npy is checked before any data is touched, only
the images used are read in either memory order, formats 1.0, 2.0 and 3.0 are read, and every parse failure
is an InputError naming the file, as for IDX and PNG files."""

import gzip
import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from helpers import idx_bytes, run_cli, sparse_file, synthetic_images

from edgevae.runtime import InputError
from edgevae.runtime.image_io import image_input
from edgevae.runtime.image_io.image_files import read_images


def npy_file(array: np.ndarray, order: str = "C", version=(1, 0)) -> bytes:
    buffer = io.BytesIO()
    array = np.asfortranarray(array) if order == "F" else np.ascontiguousarray(array)
    np.lib.format.write_array(buffer, array, version=version)
    return buffer.getvalue()


def raw_npy(header: bytes, version=(1, 0), data: bytes = b"") -> bytes:
    """A .npy with the given header text, whatever it says (the length field as the version lays it out)."""
    size = struct.pack("<H" if version == (1, 0) else "<I", len(header))
    return b"\x93NUMPY" + bytes(version) + size + header + data


def images(shape, dtype, seed=0) -> np.ndarray:
    values = np.random.default_rng(seed).random(shape)
    return (values * 255).astype(np.uint8) if dtype == np.uint8 else values.astype(dtype)


# --- reading what is valid: both memory orders, three formats ------------------------------------------

LAYOUTS = [((5, 28, 28), 1), ((5, 1, 28, 28), 1), ((28, 28), 1), ((1, 28, 28), 1), ((4, 3, 6, 10), 3), ((3, 6, 10), 3)]


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape, channels", LAYOUTS, ids=[str(s) for s, _ in LAYOUTS])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, ">f4", np.float16, np.float64], ids=str)
@pytest.mark.parametrize("span_read", [True, False], ids=["one-read", "per-pixel"])
def test_every_layout_and_order_reads_the_same_images(tmp_path, monkeypatch, order, shape, channels, dtype, span_read):
    if not span_read:  # the per-pixel-position reads that a large Fortran file takes
        monkeypatch.setattr(image_input, "SPAN_READ_BYTES", 0)
    array = images(shape, dtype)
    (tmp_path / "x.npy").write_bytes(npy_file(array, order))
    full = array.reshape(-1, channels, *shape[-2:])  # what the array holds, as [N,C,H,W]
    expect = full.astype(np.float32) / (255.0 if dtype == np.uint8 else 1.0)
    for count in (1, 2, None):
        got = read_images(tmp_path / "x.npy", size=shape[-2:], count=count, channels=channels)
        assert got.flags.c_contiguous and got.dtype == np.float32
        assert np.array_equal(got, expect[:count]), (count, order)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_formats_1_2_and_3_are_read(tmp_path, version):
    array = synthetic_images(3, seed=2)
    (tmp_path / "v.npy").write_bytes(npy_file(array, version=version))
    assert np.array_equal(read_images(tmp_path / "v.npy"), array[:, None].astype(np.float32) / 255)


def test_a_format_3_header_is_utf8(tmp_path):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 28, 28), } # é\n".encode()
    (tmp_path / "u.npy").write_bytes(raw_npy(header, (3, 0), bytes(784 * 4)))
    assert read_images(tmp_path / "u.npy").shape == (1, 1, 28, 28)
    (tmp_path / "l.npy").write_bytes(raw_npy(header.replace("é".encode(), b"\xe9"), (3, 0), bytes(784 * 4)))
    with pytest.raises(InputError, match="l.npy is not a readable .npy file"):  # latin-1 is not UTF-8
        read_images(tmp_path / "l.npy")


# --- reading only what is used ------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["C", "F"])
def test_a_78_gb_npy_is_read_for_one_image_under_a_4_gib_address_space(tmp_path, order):
    """The issue's case: a Fortran-order file was memory-mapped whole (ENOMEM under the limit, naming no file)."""
    n = 78_000_000_000 // (784 * 4)
    header = raw_npy(f"{{'descr': '<f4', 'fortran_order': {order == 'F'}, 'shape': ({n}, 28, 28), }}\n".encode())
    path = sparse_file(tmp_path / "big.npy", header, len(header) + n * 784 * 4)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
            "from edgevae.runtime.image_io.image_files import read_images; "
            f"x = read_images({str(path)!r}, count=1); assert x.shape == (1, 1, 28, 28) and not x.any(), x.shape")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_fortran_order_reads_only_the_images_asked_for(tmp_path):
    import tracemalloc

    n = (2 << 30) // 784  # 2 GiB of uint8 images, a sparse file
    header = raw_npy(f"{{'descr': '|u1', 'fortran_order': True, 'shape': ({n}, 28, 28), }}\n".encode())
    path = sparse_file(tmp_path / "f.npy", header, len(header) + n * 784)
    with open(path, "r+b") as f:  # pixel (0, 0) of images 0 and 1, and pixel (27, 27) of image 1
        f.seek(len(header))
        f.write(b"\x07\x09")
        f.seek(len(header) + 783 * n + 1)
        f.write(b"\x05")
    tracemalloc.start()
    x = read_images(path, count=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20, peak
    assert x.shape == (2, 1, 28, 28) and np.count_nonzero(x) == 3
    assert x[0, 0, 0, 0] * 255 == 7 and x[1, 0, 0, 0] * 255 == 9 and x[1, 0, 27, 27] * 255 == 5


def test_a_huge_header_length_is_refused_unread(tmp_path):
    (tmp_path / "h.npy").write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + b"{")
    with pytest.raises(InputError, match=r"h.npy is not a readable .npy file \(header length 4294967280"):
        read_images(tmp_path / "h.npy")


# --- every malformed header: InputError naming the file ---------------------------------------------------

GOOD = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 28, 28), }"
MALFORMED = {
    "unclosed brace (TokenError in numpy)": (GOOD[:-3] + "\n", "not a readable .npy file"),
    "not a literal": ("__import__('os').system('true')\n", "not a readable .npy file"),
    "a call in shape": (GOOD.replace("(1, 28, 28)", "tuple(range(3))"), "not a readable .npy file"),
    "a list": ("[1, 2, 3]\n", "header must be a dict"),
    "missing shape": ("{'descr': '<f4', 'fortran_order': False}\n", "header must be a dict of descr"),
    "extra key": (GOOD[:-1] + "'x': 1}\n", "header must be a dict of descr"),
    "negative size": (GOOD.replace("(1, 28, 28)", "(1, -28, 28)"), "is not a tuple of sizes"),
    "float size": (GOOD.replace("(1, 28, 28)", "(1.0, 28, 28)"), "is not a tuple of sizes"),
    "bool size": (GOOD.replace("(1, 28, 28)", "(True, 28, 28)"), "is not a tuple of sizes"),
    "shape a list": (GOOD.replace("(1, 28, 28)", "[1, 28, 28]"), "is not a tuple of sizes"),
    "fortran_order 1": (GOOD.replace("False", "1"), "fortran_order 1 is not True or False"),
    "fortran_order 'no'": (GOOD.replace("False", "'no'"), "is not True or False"),
    "int64 values": (GOOD.replace("<f4", "<i8"), "holds int64 values"),
    "object values": (GOOD.replace("<f4", "|O"), "holds object values"),
    "structured": (GOOD.replace("'<f4'", "[('a', '<f4')]"), "values; want uint8 pixels or floats"),
    "sub-array": (GOOD.replace("<f4", "(2,)<f4"), "values; want uint8 pixels or floats"),
    "nonsense descr": (GOOD.replace("<f4", "zz9"), "'zz9' values"),
    "descr a number": (GOOD.replace("'<f4'", "4"), "4 values"),
    "NUL inside": (GOOD.replace(", }", ", \0}"), "not a readable .npy file"),
    "nested 5000 deep": ("(" * 5000 + ")" * 5000, "not a readable .npy file"),
    "a 5000-digit int": (GOOD.replace("(1, 28, 28)", "(" + "9" * 5000 + ", 28, 28)"), "not a readable .npy file"),
    "empty": ("", "not a readable .npy file"),
    "unhashable key": ("{[]: 1}", "not a readable .npy file"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_header_is_an_input_error_naming_the_file(tmp_path, case):
    header, message = MALFORMED[case]
    (tmp_path / "bad.npy").write_bytes(raw_npy(header.encode("latin-1"), data=bytes(784 * 4)))
    with pytest.raises(InputError) as info:
        read_images(tmp_path / "bad.npy")
    text = str(info.value)
    assert message in text and "bad.npy" in text and "\n" not in text and len(text) < 400, text


@pytest.mark.parametrize("content, message", [
    (b"", "is not a .npy file"), (b"\x93NUM", "is not a .npy file"), (b"PK\x03\x04" + bytes(20), "is not a .npy file"),
    (b"\x93NUMPY\x04\x00" + bytes(8), "not a readable .npy file (format 4.0; formats 1.0, 2.0 and 3.0 are read)"),
    (b"\x93NUMPY\x01\x01" + bytes(8), "(format 1.1;"),
    (b"\x93NUMPY\x01\x00\x50", "header length -1: truncated"),
    (b"\x93NUMPY\x01\x00\x50\x00{'descr'", "the file ends inside its 80-byte header"),
    (raw_npy(GOOD.encode(), data=bytes(100)), "is truncated: its header says shape [1, 1, 28, 28]"),
])
def test_broken_npy_files_name_the_file_and_the_problem(tmp_path, content, message):
    (tmp_path / "b.npy").write_bytes(content)
    with pytest.raises(InputError) as info:
        read_images(tmp_path / "b.npy")
    assert message in str(info.value) and "b.npy" in str(info.value), str(info.value)


def test_cli_names_the_file_of_a_malformed_header(tmp_path):
    (tmp_path / "bad.npy").write_bytes(raw_npy(MALFORMED["unclosed brace (TokenError in numpy)"][0].encode()))
    result = run_cli("reconstruct", "--input", tmp_path / "bad.npy", "--out", tmp_path / "r.png")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "bad.npy is not a readable .npy file" in result.stderr and "TokenError" not in result.stderr


# --- IDX and PNG: the same class ----------------------------------------------------------------------

def _png(width: int, height: int, depth: int = 8, colour: int = 0, idat: bytes | None = None) -> bytes:
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))  # noqa: E731
    rows = bytes((width + 1) * height) if idat is None else idat
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


IDX_GOOD = idx_bytes(synthetic_images(3, seed=0))
OTHER_FILES = [
    ("labels-idx1-ubyte", idx_bytes(np.zeros(20, np.uint8)), "is not an IDX image file"),
    ("ints-idx3-ubyte", b"\x00\x00\x0c\x03" + IDX_GOOD[4:], "is not an IDX image file"),  # type 0x0c: int32
    ("long-idx3-ubyte", IDX_GOOD + b"\x00", "holds 2353 pixel bytes, its header says 3x28x28"),
    ("huge-n-idx3-ubyte", struct.pack(">IIII", 0x803, 0xFFFFFFFF, 28, 28) + bytes(784), "its header says 4294967295x28x28"),
    ("zero-idx3-ubyte", struct.pack(">IIII", 0x803, 1, 0, 0), "holds 0x0 images"),
    ("garbage-idx3-ubyte.gz", b"\x1f\x8b" + bytes(30), "not a readable gzip file"),
    ("plain-idx3-ubyte.gz", IDX_GOOD, "not a readable gzip file"),  # named .gz, not gzip
    ("cut-idx3-ubyte.gz", gzip.compress(IDX_GOOD)[:12], "not a readable gzip file"),
    ("zero.png", _png(0, 0), "declares a 0x0 image"),
    ("crc.png", _png(28, 28)[:29] + b"\x00\x00\x00\x00" + _png(28, 28)[33:], "fails its CRC check"),
    ("short.png", _png(28, 28)[:20], "lacks IHDR"),
    ("depth.png", _png(28, 28, depth=3), "png"),
    ("colour.png", _png(28, 28, colour=5), "png"),
    ("notpng.png", b"GIF89a" + bytes(40), "not a PNG file"),
    ("rows.png", _png(28, 28, idat=bytes(10)), "png"),
]


@pytest.mark.parametrize("name, content, message", OTHER_FILES, ids=[n for n, _, _ in OTHER_FILES])
@pytest.mark.parametrize("pillow", [True, False], ids=["pillow", "fallback"])
def test_idx_and_png_faults_are_input_errors_naming_the_file(tmp_path, monkeypatch, name, content, message, pillow):
    if pillow:
        pytest.importorskip("PIL.Image")
    else:
        monkeypatch.setitem(sys.modules, "PIL", None)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as info:
        read_images(tmp_path / name, count=1)
    text = str(info.value)
    assert name in text and message.lower() in text.lower() and "\n" not in text, text


def test_unreadable_and_missing_inputs_are_input_errors(tmp_path):
    import os

    with pytest.raises(InputError, match="does not exist or is not a file"):
        read_images(tmp_path / "missing.npy")
    with pytest.raises(InputError, match="does not exist or is not a file"):
        read_images(tmp_path)
    os.mkfifo(tmp_path / "fifo.npy")
    with pytest.raises(InputError, match="does not exist or is not a file"):
        read_images(tmp_path / "fifo.npy")
    (tmp_path / "locked.npy").write_bytes(npy_file(synthetic_images(1, 0)))
    (tmp_path / "locked.npy").chmod(0)
    if os.access(tmp_path / "locked.npy", os.R_OK):
        pytest.skip("running as root: a mode-0 file is still readable")
    with pytest.raises(InputError, match="cannot read input .*locked.npy: Permission denied"):
        read_images(tmp_path / "locked.npy")
