"""Malformed inputs not covered by the per-module tests (test_runtime*.py, test_export_cli.py,
test_trainer.py): damaged ONNX files whose manifest hash was updated (so onnxruntime itself must refuse
them), output paths that cannot be written, folders where a file is expected, counts so large that they
must be refused at once, flags out of range. Each CLI case exits 2 with exactly one stderr line and
leaves no file behind (no output, no temporary name); each API case raises InputError or ModelDirError."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import make_model, need_torch, run_cli, save_test_checkpoint, write_idx_dataset

from edgevae.cli import main
from edgevae.runtime import InputError, ModelDirError, VAERuntime



@pytest.fixture(scope="module")
def shared(tmp_path_factory, model_dir):
    """What the CLI cases read but never change: a model dir, a tiny dataset, a checkpoint (None without torch:
    only TORCH_COMMANDS read it), an input."""
    import importlib.util

    root = tmp_path_factory.mktemp("shared")
    data = write_idx_dataset(root / "idx", n_train=64, n_test=16)
    checkpoint = None
    if importlib.util.find_spec("torch"):
        checkpoint = save_test_checkpoint(root / "checkpoint.pt", make_model(latent_dim=8))
    np.save(root / "x.npy", np.full((3, 28, 28), 0.5, np.float32))
    return {"model": model_dir, "data": data, "checkpoint": checkpoint, "x": root / "x.npy"}


def replace_graph(folder: Path, file: str, data: bytes) -> None:
    """Overwrite folder/file with data and give the manifest its new sha256 and size, so that the hash
    check passes and only onnxruntime can notice that the graph is damaged."""
    (folder / file).write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    for graphs in manifest["variants"].values():
        for entry in graphs.values():
            if entry["file"] == file:
                entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (folder / "manifest.json").write_text(json.dumps(manifest))


def damaged_copy(model: Path, tmp: Path, damage) -> Path:
    broken = tmp / "broken"
    shutil.copytree(model, broken)
    damage(broken)
    return broken


def truncated_graph(file):
    return lambda d: replace_graph(d, file, (d / file).read_bytes()[: (d / file).stat().st_size // 2])


def random_graph(file):
    return lambda d: replace_graph(d, file, np.random.default_rng(0).bytes((d / file).stat().st_size))


def graph_is_a_folder(d):
    (d / "encoder.onnx").unlink()
    (d / "encoder.onnx").mkdir()


def manifest_is_a_folder(d):
    (d / "manifest.json").unlink()
    (d / "manifest.json").mkdir()


def format_version(d):
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["format"] = "edgevae-model/2"
    (d / "manifest.json").write_text(json.dumps(manifest))


def a_file(t: Path) -> Path:
    (t / "plain").write_text("a regular file, used where a folder is expected\n")
    return t / "plain"


def a_folder(t: Path, name: str) -> Path:
    (t / name).mkdir()
    return t / name


def garbage(t: Path, name: str, data: bytes) -> Path:
    (t / name).write_bytes(data)
    return t / name


def pickled_npy(t: Path) -> Path:
    np.save(t / "objects.npy", np.array([{"not": "pixels"}], dtype=object), allow_pickle=True)
    return t / "objects.npy"


# case -> (argv from (shared inputs s, empty tmp folder t), part of the expected stderr line)
CLI_CASES = {
    # output paths
    "sample out is an existing folder": (lambda s, t: ["sample", "--model", s["model"], "--n", 2, "--out", a_folder(t, "o.npy")], "is a folder"),
    "sample out under a regular file": (lambda s, t: ["sample", "--model", s["model"], "--n", 2, "--out", a_file(t) / "o.png"], "does not exist"),
    "sample out in /proc": (lambda s, t: ["sample", "--model", s["model"], "--n", 2, "--out", "/proc/edgevae-o.png"], "/proc/"),
    "train out under a regular file": (lambda s, t: ["train", "--epochs", 1, "--data-dir", s["data"], "--out", a_file(t) / "run"], "Not a directory"),
    "export out under a regular file": (lambda s, t: ["export", s["checkpoint"], "--out", a_file(t) / "m"], "plain"),
    # folders where a file is expected, files where a folder is expected
    "sample model is a file": (lambda s, t: ["sample", "--model", s["x"], "--n", 2, "--out", t / "o.png"], "is not a folder"),
    "reconstruct input is a folder": (lambda s, t: ["reconstruct", "--model", s["model"], "--input", a_folder(t, "in.npy"), "--out", t / "o.png"],
                                      "not a file"),
    "eval checkpoint is a folder": (lambda s, t: ["eval", a_folder(t, "c.pt"), "--data-dir", s["data"]], "not a file"),
    "export checkpoint is a folder": (lambda s, t: ["export", a_folder(t, "c.pt"), "--out", t / "m"], "not a file"),
    "train data-dir is a file": (lambda s, t: ["train", "--epochs", 1, "--data-dir", s["checkpoint"], "--out", t / "run"], "no Fashion-MNIST found"),
    "quantize model dir is a file": (lambda s, t: ["quantize", s["checkpoint"], "--data-dir", s["data"]], "is not a folder"),
    "graph is a folder": (lambda s, t: ["info", "--model", damaged_copy(s["model"], t, graph_is_a_folder)], "cannot read encoder.onnx: Is a directory"),
    "manifest is a folder": (lambda s, t: ["info", "--model", damaged_copy(s["model"], t, manifest_is_a_folder)], "cannot read manifest.json"),
    # damaged graphs with a matching hash: onnxruntime must refuse them, in one line
    "truncated decoder": (lambda s, t: ["sample", "--model", damaged_copy(s["model"], t, truncated_graph("decoder.onnx")), "--n", 2, "--out", t / "o.png"],
                          "decoder.onnx is not a valid ONNX graph"),
    "random-byte decoder": (lambda s, t: ["sample", "--model", damaged_copy(s["model"], t, random_graph("decoder.onnx")), "--n", 2, "--out", t / "o.npy"],
                            "decoder.onnx is not a valid ONNX graph"),
    "truncated encoder": (lambda s, t: ["reconstruct", "--model", damaged_copy(s["model"], t, truncated_graph("encoder.onnx")), "--input", s["x"],
                                        "--out", t / "o.png"], "encoder.onnx is not a valid ONNX graph"),
    "unknown format version": (lambda s, t: ["info", "--model", damaged_copy(s["model"], t, format_version)], "'edgevae-model/2'"),
    "quantize unknown format version": (lambda s, t: ["quantize", damaged_copy(s["model"], t, format_version), "--data-dir", s["data"]], "'edgevae-model/2'"),
    # unreadable inputs
    "npy of random bytes": (lambda s, t: ["reconstruct", "--model", s["model"], "--input", garbage(t, "in.npy", b"\x93NUMPY garbage" * 9),
                                          "--out", t / "o.png"],
                            "not a readable .npy"),
    "npy of pickled objects": (lambda s, t: ["reconstruct", "--model", s["model"], "--input", pickled_npy(t), "--out", t / "o.png"],
                               "objects.npy holds object values"),
    # counts so large they must be refused before any work
    "sample n 10**12 to npy": (lambda s, t: ["sample", "--model", s["model"], "--n", 10**12, "--out", t / "o.npy"], "GB free"),
    "sample n 10**12 to png": (lambda s, t: ["sample", "--model", s["model"], "--n", 10**12, "--out", t / "o.png"], "too many for a PNG grid"),
    "interpolate steps 10**6 to png": (lambda s, t: ["interpolate", "--model", s["model"], "--input", s["x"], "--steps", 10**6, "--out", t / "o.png"],
                                       "too many for a PNG row"),
    # flags out of range and unknown names
    "sample threads -1": (lambda s, t: ["sample", "--model", s["model"], "--threads", -1, "--n", 2, "--out", t / "o.png"], "threads must be >= 1, got -1"),
    "reconstruct limit 0": (lambda s, t: ["reconstruct", "--model", s["model"], "--input", s["x"], "--limit", 0, "--out", t / "o.png"], "--limit must be >= 1"),
    "reconstruct unknown variant": (lambda s, t: ["reconstruct", "--model", s["model"], "--variant", "int3", "--input", s["x"], "--out", t / "o.npy"],
                                    "has no variant 'int3'"),
    "eval iwae-k 0": (lambda s, t: ["eval", s["checkpoint"], "--data-dir", s["data"], "--iwae-k", 0], "got 0, 20, None"),
    "train batch-size 0": (lambda s, t: ["train", "--epochs", 1, "--batch-size", 0, "--data-dir", s["data"], "--out", t / "run"], "batch_size must be >= 1"),
    "train latent-dim 0": (lambda s, t: ["train", "--epochs", 1, "--latent-dim", 0, "--data-dir", s["data"], "--out", t / "run"], "latent_dim must be >= 1"),
    "train lr 0": (lambda s, t: ["train", "--epochs", 1, "--lr", 0, "--data-dir", s["data"], "--out", t / "run"], "lr must be > 0"),
    "train limit-train 0": (lambda s, t: ["train", "--epochs", 1, "--limit-train", 0, "--data-dir", s["data"], "--out", t / "run"], "limit_train must be >= 1"),
    "quantize unknown variant": (lambda s, t: ["quantize", s["model"], "--variants", "int4", "--data-dir", s["data"]], "unknown variant 'int4'"),
    "quantize calibration-images 0": (lambda s, t: ["quantize", s["model"], "--calibration-images", 0, "--data-dir", s["data"]], "must be >= 1"),
    "quantize threads -1": (lambda s, t: ["quantize", s["model"], "--threads", -1, "--select", "--data-dir", s["data"]], "threads"),
}


TORCH_COMMANDS = ("train", "export", "quantize", "eval")  # edgevae[export]'s: not in the runtime's own install


def skip_without_torch(case: str) -> None:
    command = case.split()[0]
    if command in TORCH_COMMANDS:
        need_torch(f"run edgevae {command}")


def tree(folder: Path) -> list:
    """Every path under folder, hidden ones included, with each file's size and mtime."""
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
                  for p in folder.rglob("*"))


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_refuses_in_one_line_and_leaves_nothing(tmp_path, shared, capsys, monkeypatch, case):
    skip_without_torch(case)
    monkeypatch.setenv("EDGEVAE_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))  # data staging, outside t
    make_argv, message = CLI_CASES[case]
    argv = [str(a) for a in make_argv(shared, tmp_path)]
    before, model_before = tree(tmp_path), tree(shared["model"])
    runs = count_onnxruntime_runs(monkeypatch)
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"edgevae {argv[0]}: error: ") and captured.err.count("\n") == 1, captured.err
    assert message in captured.err and "Traceback" not in captured.err, captured.err
    assert tree(tmp_path) == before and tree(shared["model"]) == model_before  # no output, no temporary, no edit
    assert not Path("/proc/edgevae-o.png").exists()
    if "10**" in case:
        assert runs == [], f"{case}: {len(runs)} graph runs attempted instead of a refusal up front"


def count_onnxruntime_runs(monkeypatch) -> list:
    """A list that grows by one for every onnxruntime session run from now on (the runs still happen)."""
    import onnxruntime

    runs, real = [], onnxruntime.InferenceSession.run

    def counted(self, *args, **kwargs):
        runs.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", counted)
    return runs


# The real process for a few cases: no warning or traceback reaches stderr, exactly one line does.
SUBPROCESS_CASES = ["sample n 10**12 to npy", "random-byte decoder", "sample out in /proc", "train latent-dim 0", "eval iwae-k 0"]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_the_process_prints_exactly_one_line(tmp_path, shared, case):
    skip_without_torch(case)
    make_argv, message = CLI_CASES[case]
    argv = [str(a) for a in make_argv(shared, tmp_path)]
    before = tree(tmp_path)
    env = os.environ | {"EDGEVAE_CACHE": str(tmp_path.parent / f"{tmp_path.name}-cache")}
    proc = run_cli(*argv, timeout=120, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(f"edgevae {argv[0]}: error: "), proc.stderr
    assert message in proc.stderr
    assert tree(tmp_path) == before


def test_huge_sample_count_is_refused_at_once(rt, monkeypatch):
    runs = count_onnxruntime_runs(monkeypatch)
    with pytest.raises(InputError, match=r"n=1000000000000 samples would need 3\.14e\+06 GB"):
        rt.sample(10**12)
    assert runs == []  # refused before any decoding


def test_finite_latents_too_large_for_the_decoder_are_refused(rt):
    from helpers import overflowing_z

    z = np.zeros((2, 64), np.float32)
    z[1] = overflowing_z(rt)[0]  # finite float32; the decoder overflows inside the graph and NaN comes out
    with pytest.raises(InputError, match="3e\\+38 in magnitude: too large for the decoder"):
        rt.decode(z)
    assert np.all(np.isfinite(rt.decode(np.full((2, 64), 1e6, np.float32))))  # large but fine stays accepted


def test_reparameterize_refuses_an_overflowing_draw(rt):
    mu = np.zeros((2, 64), np.float32)
    logvar = np.zeros((2, 64), np.float32)
    logvar[0, 0] = 200.0  # exp(100) overflows float32
    with pytest.raises(InputError, match="overflows float32: logvar up to 200"):
        rt.reparameterize(mu, logvar, seed=0)


@pytest.mark.parametrize("damage,message", [
    (truncated_graph("encoder.onnx"), "encoder.onnx is not a valid ONNX graph"),
    (random_graph("encoder.onnx"), "encoder.onnx is not a valid ONNX graph"),
    (graph_is_a_folder, "cannot read encoder.onnx: Is a directory"),
    (manifest_is_a_folder, "cannot read manifest.json"),
], ids=["truncated", "random bytes", "graph is a folder", "manifest is a folder"])
def test_damaged_model_dir_raises_model_dir_error(tmp_path, model_dir, damage, message):
    broken = damaged_copy(model_dir, tmp_path, damage)
    with pytest.raises(ModelDirError) as info:
        VAERuntime.load(broken).encode(np.zeros((1, 1, 28, 28), np.float32))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("value,message", [
    (np.zeros((1, 1, 28, 28), np.complex64), "floating dtype, got complex64"),
    (np.zeros((1, 1, 28, 28), object), "floating dtype, got object"),
    (np.zeros((1, 1, 28, 28), bool), "floating dtype, got bool"),
    (np.array(0.5, np.float32), "must have shape [N, 1, 28, 28]"),
    (None, "numpy array, got NoneType"),
], ids=["complex", "object", "bool", "0-d", "None"])
def test_encode_refuses_other_array_kinds(rt, value, message):
    with pytest.raises(InputError) as info:
        rt.encode(value)
    assert message in str(info.value)


def test_load_refuses_negative_threads(model_dir):
    with pytest.raises(InputError, match="threads must be >= 1, got -1"):
        VAERuntime.load(model_dir, threads=-1)
