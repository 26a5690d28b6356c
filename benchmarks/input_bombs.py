"""Hostile and oversized inputs for the runtime CLI (issue 15, points 3 and 11): each case runs as a fresh
`edgevae` process with the shipped model, and the table reports its exit status, the first stderr line,
wall time, peak RSS and any file left beside the output.

    python -m edgevae.benchmarks.input_bombs [--only NAME,...] [--without-pillow] [--json FILE]

The cases are built in a temporary folder: PNGs whose header declares a huge image (10000x10000) or
whose rows all use the Paeth filter (5600x5600, and a 1792x1792 grid of 4096 tiles that is allowed),
a ~2 MB .gz IDX that inflates to 2.1 GB, 20 GiB sparse IDX and .npy files, a 196 MB .npy read for one
image, and `interpolate --steps 200000` to .npy. Each child runs under RLIMIT_AS (8 GiB by default), so
an unbounded read fails with MemoryError instead of taking the machine down.

To measure older code, put a copy of the package first on PYTHONPATH: the children inherit it.
"""

import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

ADDRESS_LIMIT = 8 << 30
TIMEOUT_S = 300

# The child's peak RSS is read by a tiny launcher (wait4), not by this process: a child forked from a
# big parent counts the parent's pages up to exec (see benchmarks/coldstart.py).
LAUNCHER = """
import json, os, resource, sys, time
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
t0 = time.perf_counter()
err = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
pid = os.posix_spawn(sys.argv[3], sys.argv[3:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_DUP2, err, 2)])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": time.perf_counter() - t0, "exit": os.waitstatus_to_exitcode(status),
                  "peak_rss_mib": usage.ru_maxrss / 1024}))
"""


def png_bytes(width: int, height: int, *, filter_type: int, rows: np.ndarray | None = None) -> bytes:
    """An 8-bit gray PNG whose every row uses filter_type; rows (uint8 [height,width]) default to zeros."""
    raw = np.zeros((height, width + 1), np.uint8)
    raw[:, 0] = filter_type
    if rows is not None:
        raw[:, 1:] = rows
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))  # noqa: E731
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + chunk(b"IEND", b""))


def gz_idx_bomb(path: Path, n: int) -> None:
    """A gzipped IDX declaring n 28x28 images of zeros, written in pieces (never n*784 bytes at once)."""
    piece = bytes(64 << 20)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28))
        left = n * 784
        while left:
            f.write(piece[:min(left, len(piece))])
            left -= min(left, len(piece))


def sparse(path: Path, header: bytes, *, size: int) -> None:
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(size)


def npy_header(shape: tuple, dtype=np.uint8) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": shape})
    return buf.getvalue()


def build_cases(tmp: Path) -> dict:
    """name -> argv (after `edgevae`); every case writes to tmp/out/<name>.npy or .png."""
    (tmp / "out").mkdir()
    rng = np.random.default_rng(0)
    (tmp / "declares-10000x10000.png").write_bytes(png_bytes(10000, 10000, filter_type=0))
    (tmp / "paeth-5600x5600.png").write_bytes(png_bytes(5600, 5600, filter_type=4))
    (tmp / "paeth-grid-1792x1792.png").write_bytes(png_bytes(1792, 1792, filter_type=4, rows=rng.integers(0, 8, (1792, 1792), dtype=np.uint8)))
    gz_idx_bomb(tmp / "bomb-idx3-ubyte.gz", 2_740_000)  # 2.15 GB of pixels
    sparse(tmp / "sparse-idx3-ubyte", struct.pack(">IIII", 0x803, (20 << 30) // 784, 28, 28), size=16 + ((20 << 30) // 784) * 784)
    n_sparse = (20 << 30) // 784
    header = npy_header((n_sparse, 28, 28))
    sparse(tmp / "sparse.npy", header, size=len(header) + n_sparse * 784)
    np.save(tmp / "big-float32.npy", np.full((62_500, 1, 28, 28), 0.5, np.float32))  # 196 MB
    np.save(tmp / "two.npy", rng.random((2, 28, 28), dtype=np.float32))
    np.save(tmp / "five-thousand.npy", rng.random((5000, 28, 28), dtype=np.float32))
    out = lambda name, ext=".npy": str(tmp / "out" / f"{name}{ext}")  # noqa: E731
    rec = lambda name, inp, *extra, ext=".npy": ["reconstruct", "--input", str(tmp / inp), *extra, "--out", out(name, ext)]  # noqa: E731
    return {
        "png declares 10000x10000": rec("p10k", "declares-10000x10000.png"),
        "png 5600x5600 paeth": rec("paeth", "paeth-5600x5600.png"),
        "png 1792x1792 paeth (4096 tiles)": rec("paeth-grid", "paeth-grid-1792x1792.png"),
        "gz idx bomb (2.1 GB inflated)": rec("gz", "bomb-idx3-ubyte.gz"),
        "sparse 20 GiB idx": rec("sparse-idx", "sparse-idx3-ubyte"),
        "sparse 20 GiB npy": rec("sparse-npy", "sparse.npy"),
        "196 MB npy, --limit 1": rec("limit1", "big-float32.npy", "--limit", "1"),
        "interpolate --steps 200000 to npy": ["interpolate", "--input", str(tmp / "two.npy"), "--steps", "200000", "--out", out("interp")],
        "reconstruct 5000 to png (>4096 tiles)": rec("tiles", "five-thousand.npy", "--limit", "5000", ext=".png"),
    }


def measure(argv: list, tmp: Path, *, limit: int) -> dict:
    err = tmp / "stderr.txt"
    cmd = [sys.executable, "-c", LAUNCHER, str(limit), str(err), sys.executable, "-m", "edgevae", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    result = json.loads(proc.stdout)
    lines = err.read_text(errors="replace").splitlines()
    result["stderr_lines"] = len(lines)
    result["stderr"] = lines[0][:160] if lines else ""
    out = Path(argv[-1])
    result["left"] = sorted(p.name for p in out.parent.iterdir())
    for p in out.parent.iterdir():
        p.unlink()
    return result


def decode_timing(repeats: int = 5) -> dict:
    """Median seconds to decode the 1792x1792 all-Paeth grid in this process: edgevae.runtime.image_io.png's
    decode_png (whichever copy is first on sys.path) and, when installed, Pillow."""
    import time

    from edgevae.runtime.image_io.png import decode_png

    rng = np.random.default_rng(0)
    data = png_bytes(1792, 1792, filter_type=4, rows=rng.integers(0, 8, (1792, 1792), dtype=np.uint8))
    decoders = {"edgevae decode_png": lambda: decode_png(data)}
    try:
        import io

        from PIL import Image

        decoders["Pillow"] = lambda: np.asarray(Image.open(io.BytesIO(data)))
    except ImportError:
        pass
    times = {name: [] for name in decoders}
    for _ in range(repeats):  # interleaved, so a busy moment hits both
        for name, decode in decoders.items():
            t0 = time.perf_counter()
            decode()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated substrings of case names")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--address-limit-gib", type=float, default=ADDRESS_LIMIT / (1 << 30))
    parser.add_argument("--without-pillow", action="store_true", help="hide Pillow from the children (edgevae's own PNG decoder)")
    parser.add_argument("--decode-timing", action="store_true", help="only time PNG decoders on the Paeth grid, in-process")
    args = parser.parse_args(argv)
    if args.decode_timing:
        print({name: f"{t:.3f} s" for name, t in decode_timing().items()})
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgevae-bombs-") as tmp:
        if args.without_pillow:  # a PIL package that cannot be imported, first on the children's path
            (Path(tmp) / "hide" / "PIL").mkdir(parents=True)
            (Path(tmp) / "hide" / "PIL" / "__init__.py").write_text("raise ImportError('hidden by input_bombs')\n")
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(tmp) / "hide"), os.environ.get("PYTHONPATH")]))
        cases = build_cases(Path(tmp))
        for name, case in cases.items():
            if args.only and not any(s in name for s in args.only.split(",")):
                continue
            r = results[name] = measure(case, Path(tmp), limit=int(args.address_limit_gib * (1 << 30)))
            print(f"{name:<40} exit {r['exit']:>3}  {r['seconds']:7.2f} s  {r['peak_rss_mib']:8.0f} MiB  "
                  f"lines {r['stderr_lines']}  left {r['left']}  | {r['stderr']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
