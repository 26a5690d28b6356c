"""`edgevae sample | reconstruct | interpolate | info`: outputs equal the Python API's, and every bad
input gives one line on stderr, exit status 2, and no output file (nor a temporary one)."""

import gzip
import shutil

import numpy as np
import pytest
from helpers import idx_bytes, run_cli, synthetic_images

from edgevae.cli import main
from edgevae.runtime.image_io.image_files import grid, read_images
from edgevae.runtime.image_io.png import decode_png


@pytest.fixture
def idx_file(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(synthetic_images(10, seed=3))))
    return path


def run(*argv):
    return main([str(a) for a in argv])


def test_sample_png_and_npy_equal_the_api(tmp_path, model_dir, rt):
    assert run("sample", "--model", model_dir, "--n", 10, "--seed", 4, "--out", tmp_path / "s.png") == 0
    assert run("sample", "--model", model_dir, "--n", 600, "--seed", 4, "--out", tmp_path / "s.npy") == 0
    expected = rt.sample(600, seed=4)
    assert np.array_equal(np.load(tmp_path / "s.npy"), expected)  # written in 19 chunks of <= 32
    png = decode_png((tmp_path / "s.png").read_bytes())
    assert png.shape == (3 * 28, 4 * 28)
    assert np.array_equal(png, grid(rt.sample(10, seed=4)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "s.png"]


def test_reconstruct_reads_idx_npy_and_png(tmp_path, model_dir, rt, idx_file):
    x = read_images(idx_file)
    np.save(tmp_path / "in.npy", x[:4])
    assert run("reconstruct", "--model", model_dir, "--input", idx_file, "--out", tmp_path / "r.npy") == 0
    assert np.array_equal(np.load(tmp_path / "r.npy"), rt.reconstruct(x))
    assert run("reconstruct", "--model", model_dir, "--input", tmp_path / "in.npy", "--seed", 1, "--out", tmp_path / "r1.npy") == 0
    assert np.array_equal(np.load(tmp_path / "r1.npy"), rt.reconstruct(x[:4], seed=1))
    assert run("reconstruct", "--model", model_dir, "--input", idx_file, "--limit", 3, "--out", tmp_path / "r.png") == 0
    png = decode_png((tmp_path / "r.png").read_bytes())
    assert png.shape == (2 * 28, 3 * 28)  # originals over reconstructions
    assert np.array_equal(png[:28], grid(x[:3], columns=3))
    assert np.array_equal(png[28:], grid(rt.reconstruct(x[:3]), columns=3))
    # a PNG grid of tiles reads back as images
    assert run("reconstruct", "--model", model_dir, "--input", tmp_path / "r.png", "--out", tmp_path / "rr.npy") == 0
    assert np.load(tmp_path / "rr.npy").shape == (6, 1, 28, 28)


def test_interpolate_and_info(tmp_path, model_dir, rt, idx_file, capsys):
    assert run("interpolate", "--model", model_dir, "--input", idx_file, "--a", 2, "--b", 5, "--steps", 4,
               "--out", tmp_path / "i.npy") == 0
    x = read_images(idx_file)
    assert np.array_equal(np.load(tmp_path / "i.npy"), rt.interpolate(x[2], x[5], steps=4))
    assert run("interpolate", "--model", model_dir, "--input", idx_file, "--out", tmp_path / "i.png") == 0
    assert decode_png((tmp_path / "i.png").read_bytes()).shape == (28, 8 * 28)
    capsys.readouterr()
    assert run("info", "--model", model_dir) == 0
    out = capsys.readouterr().out
    assert "edgevae-model/1" in out and "latent_dim    64" in out and "fp32" in out and "sha256 ok" in out


def _corrupt_model(model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    data = bytearray((broken / "decoder.onnx").read_bytes())
    data[100] ^= 1
    (broken / "decoder.onnx").write_bytes(bytes(data))
    return broken


def _npy(tmp_path, array, name="bad.npy"):
    np.save(tmp_path / name, array)
    return tmp_path / name


# case -> (argv built from (model dir, tmp folder, IDX file), part of the expected stderr line)
BAD = {
    "n zero": (lambda m, t, i: ["sample", "--model", m, "--n", 0, "--out", t / "o.png"], "--n must be >= 1, got 0"),
    "bad suffix": (lambda m, t, i: ["sample", "--model", m, "--n", 4, "--out", t / "o.jpg"], "must end in .png or .npy"),
    "no folder": (lambda m, t, i: ["sample", "--model", m, "--n", 4, "--out", t / "nope" / "o.png"], "does not exist"),
    "png too big": (lambda m, t, i: ["sample", "--model", m, "--n", 5000, "--out", t / "o.png"], "too many for a PNG grid"),
    "no model": (lambda m, t, i: ["sample", "--model", t / "nomodel", "--n", 4, "--out", t / "o.png"], "does not exist or is not a folder"),
    "variant": (lambda m, t, i: ["sample", "--model", m, "--variant", "int4", "--n", 4, "--out", t / "o.png"], "has no variant 'int4'"),
    "threads": (lambda m, t, i: ["sample", "--model", m, "--threads", 0, "--n", 4, "--out", t / "o.png"], "threads must be >= 1"),
    "sha256": (lambda m, t, i: ["sample", "--model", _corrupt_model(m, t), "--n", 4, "--out", t / "o.png"], "decoder.onnx does not match its sha256"),
    "no input": (lambda m, t, i: ["reconstruct", "--model", m, "--input", t / "none.npy", "--out", t / "o.npy"], "does not exist"),
    "nan input": (lambda m, t, i: ["reconstruct", "--model", m, "--input", _npy(t, np.full((2, 28, 28), np.nan, np.float32)),
                                   "--out", t / "o.npy"], "NaN/inf"),
    "range": (lambda m, t, i: ["reconstruct", "--model", m, "--input", _npy(t, np.full((2, 28, 28), 255.0)),
                               "--out", t / "o.npy"], "[0, 1], got values in [255, 255]"),
    "shape": (lambda m, t, i: ["reconstruct", "--model", m, "--input", _npy(t, np.zeros((2, 28, 27), np.float32)),
                               "--out", t / "o.npy"], "bad.npy holds an array of shape [2, 28, 27]; want [N, 28, 28]"),
    "empty": (lambda m, t, i: ["reconstruct", "--model", m, "--input", _npy(t, np.zeros((0, 28, 28), np.float32)),
                               "--out", t / "o.npy"], "empty batch"),
    "int dtype": (lambda m, t, i: ["reconstruct", "--model", m, "--input", _npy(t, np.zeros((2, 28, 28), np.int64)),
                                   "--out", t / "o.npy"], "int64"),
    "index": (lambda m, t, i: ["interpolate", "--model", m, "--input", i, "--b", 99, "--out", t / "o.png"], "--b 99 is out of range"),
    "steps": (lambda m, t, i: ["interpolate", "--model", m, "--input", i, "--steps", 1, "--out", t / "o.png"], "--steps must be >= 2"),
    "info": (lambda m, t, i: ["info", "--model", _corrupt_model(m, t)], "decoder.onnx does not match its sha256"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gives_one_line_exit_2_and_no_output(tmp_path, model_dir, idx_file, capsys, case):
    make_argv, message = BAD[case]
    argv = make_argv(model_dir, tmp_path, idx_file)
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edgevae {argv[0]}: error: ") and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no o.*, no .o.*.tmp


def test_the_installed_command_exits_2_with_one_line(tmp_path, model_dir):
    """The real process: exit status and stderr as a shell sees them."""
    ok = run_cli("sample", "--model", str(model_dir), "--n", "4",
                         "--out", str(tmp_path / "ok.png"))
    assert ok.returncode == 0 and ok.stderr == "" and (tmp_path / "ok.png").is_file()
    bad = run_cli("sample", "--model", str(model_dir), "--n", "-3",
                          "--out", str(tmp_path / "bad.png"))
    assert bad.returncode == 2 and bad.stderr == "edgevae sample: error: --n must be >= 1, got -3\n"
    assert not (tmp_path / "bad.png").exists()
