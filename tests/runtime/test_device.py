"""On the device: goldens and `edgevae verify` (runtime/device/golden.py, runtime/device/verify.py), and `edgevae tune` with
the device profile the runtime then follows (runtime/device/tune.py, runtime/device/profile.py)."""

import io
import json
import shutil

import numpy as np
import pytest
from helpers import flip_byte, resign, run_cli, shipped_model_dir

from edgevae.runtime.contract import manifest as contract


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_export_stores_goldens_that_load_without_pickle(model_dir):
    golden = contract.load(model_dir).manifest.golden
    assert golden is not None and set(golden.outputs) == {"fp32"}
    for entry in golden.file_entries():
        array = np.load(model_dir / entry.file, allow_pickle=False)
        assert array.dtype == np.float32 and len(array) == 8
    m = golden.measured["fp32"]
    for graph, tolerance in golden.tolerance["fp32"].items():  # the documented rule, recomputed
        assert tolerance == pytest.approx(golden.safety_factor * max(m[graph], 8 * np.finfo(np.float32).eps))
        assert 0 < tolerance < 1e-3  # far below one grey level: a wrong model cannot hide under it


def test_verify_passes_on_a_fresh_model_dir(model_dir):
    result = run_cli("verify", "--model", model_dir)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:-1]]
    assert {(r[0], r[1], r[-1]) for r in rows} == {("encoder", "fp32", "yes"), ("decoder", "fp32", "yes")}
    assert _last_line(result.stdout).startswith("ok: all 2")


def test_shipped_model_verifies_every_variant():
    result = run_cli("verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"fp32", "int8"} <= {line.split()[1] for line in result.stdout.splitlines()[1:-1]}


def _initializer_offset(path, name_part: str) -> int:
    """Offset in the file of the high byte (sign and exponent) of the first float of an initializer whose name
    holds name_part: flipping it changes that weight by orders of magnitude."""
    onnx = pytest.importorskip("onnx", reason="finds an initializer with onnx, which the runtime's own install lacks")

    data = path.read_bytes()
    proto = onnx.load_model_from_string(data)
    tensor = next(t for t in proto.graph.initializer if name_part in t.name and len(t.raw_data) >= 64)
    offset = data.find(tensor.raw_data)
    assert offset > 0 and data.find(tensor.raw_data, offset + 1) == -1  # found, and only once
    return offset + 3  # little-endian float32: byte 3 holds the sign and 7 exponent bits


def test_verify_fails_on_one_flipped_initializer_byte_whose_hash_was_resigned(tmp_path):
    model = shipped_model_dir(tmp_path / "m")
    flip_byte(model / "decoder.onnx", _initializer_offset(model / "decoder.onnx", "weight"))
    resign(model, "decoder.onnx")
    result = run_cli("verify", "--model", model)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "decoder  fp32" in result.stdout and result.stdout.count(" NO") == 1  # the encoder still passes
    assert _last_line(result.stdout).startswith("FAIL: 1 of 2") and "decoder fp32" in _last_line(result.stdout)


def test_verify_fails_for_graphs_of_other_weights(tmp_path):
    model, other = shipped_model_dir(tmp_path / "m"), contract.DEFAULT_MODEL_DIR
    for name in ("encoder", "decoder"):  # the shipped int8 graphs: the same model with other (quantized) weights
        shutil.copyfile(other / f"{name}.int8.onnx", model / f"{name}.onnx")
        resign(model, f"{name}.onnx")
    result = run_cli("verify", "--model", model)
    assert result.returncode == 1 and result.stdout.count(" NO") == 2, result.stdout + result.stderr


def test_verify_bad_input_exits_2_with_one_line(tmp_path, model_dir):
    for args in (("--variant", "int9"), ("--threads", "0")):
        result = run_cli("verify", "--model", model_dir, *args)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare)
    raw = json.loads((bare / "manifest.json").read_text())
    del raw["golden"]
    (bare / "manifest.json").write_text(json.dumps(raw))
    result = run_cli("verify", "--model", bare)
    assert result.returncode == 2 and "has no goldens" in result.stderr


def test_golden_reader_refuses_pickles_and_huge_files(tmp_path, model_dir):
    from edgevae.runtime.contract.errors import ModelDirError
    from edgevae.runtime.device.golden import read_array

    model = contract.load(model_dir)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # a .npy whose payload is a pickle
    (tmp_path / "p.npy").write_bytes(buffer.getvalue())
    entry = contract.file_entry(tmp_path / "p.npy")
    with pytest.raises(ModelDirError, match="not a readable .npy|not float32"):
        read_array(contract.ModelDir(tmp_path, model.manifest), entry)
    huge = contract.FileEntry(file="p.npy", sha256=entry.sha256, bytes=1 << 30)
    with pytest.raises(ModelDirError, match="more than"):
        read_array(contract.ModelDir(tmp_path, model.manifest), huge)


# tune and the device profile


@pytest.fixture(scope="module")
def tuned(model_dir):
    from edgevae.runtime.device.tune import tune

    return tune(contract.load(model_dir), budget_s=0.3, batch_sizes=(1, 8), progress=False)


def test_tune_times_every_variant_and_thread_count_and_keeps_the_default_unless_clearly_beaten(tuned):
    from edgevae.runtime.inference.checks import usable_cores
    from edgevae.runtime.device.profile import Choice
    from edgevae.runtime.device.tune import KEEP_MARGIN

    for graph in ("encoder", "decoder"):
        for batch in ("1", "8"):
            rows = tuned.timings[graph][batch]
            assert {r.threads for r in rows} >= set(range(1, usable_cores() + 1))
            assert all(r.calls >= 3 and r.p25_ms <= r.median_ms <= r.p75_ms for r in rows)
            ms = {(r.variant, r.threads): r.median_ms for r in rows}
            best = min(ms.values())
            chosen, was = tuned.choice[graph][batch], tuned.default[graph][batch]
            assert was == Choice("fp32", None, "CPUExecutionProvider")  # no selection: the fallback, timed too
            if ms[(was.variant, was.threads)] <= (1 + KEEP_MARGIN) * best:
                assert chosen == was  # within the margin the runtime keeps what it ran
            else:
                assert ms[(chosen.variant, chosen.threads)] == best


def test_a_batch_that_cannot_end_before_the_hard_end_is_left_out_not_an_error(model_dir, monkeypatch, capfd):
    """A big model's batch 256 would be stopped at tune's hard end and end the whole tune in an error: tune leaves such
    a group out (predicted from the graph's cost per input at the smaller batches), says so in one line, and the
    runtime's auto follows the largest timed batch there."""
    from edgevae.runtime.device import tune as tuning
    from edgevae.runtime.device.profile import Plan

    assert tuning.fits(0.1, calls=2, left_s=0.61) and not tuning.fits(0.1, calls=2, left_s=0.59)  # MIN_ROUNDS = 3
    monkeypatch.setattr(tuning, "fits", lambda seconds, *, calls, left_s: False)  # nothing past a graph's first batch
    model = contract.load(model_dir)
    profile = tuning.tune(model, budget_s=0.3, batch_sizes=(1, 8, 64), progress=False)
    assert {g: set(sizes) for g, sizes in profile.choice.items()} == {"encoder": {"1"}, "decoder": {"1"}}
    assert {g: set(sizes) for g, sizes in profile.timings.items()} == {"encoder": {"1"}, "decoder": {"1"}}
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tune: not timed") and "encoder batch 8, encoder batch 64, decoder batch 8" in err[0]
    assert Plan("auto", "auto", profile).choose(model, "decoder", batch=64) == profile.choice["decoder"]["1"]


def test_runtime_follows_a_matching_profile_and_explicit_values_win(tmp_path, model_dir, tuned, monkeypatch):
    import dataclasses

    from edgevae.runtime import VAERuntime
    from edgevae.runtime.device.profile import Choice, cache_path, write

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model = contract.load(model_dir)
    forced = {g: {"1": Choice("fp32", 1), "8": Choice("fp32", None)} for g in ("encoder", "decoder")}
    write(cache_path(model), dataclasses.replace(tuned, choice=forced))  # a choice no fallback would make
    rt = VAERuntime.load(model_dir)
    assert rt.choice("decoder", 4) == Choice("fp32", 1) and rt.choice("decoder", 100) == Choice("fp32", None)
    assert "device profile" in rt.plan.why
    assert VAERuntime.load(model_dir, threads=1).choice("decoder", 100).threads == 1
    x = rt.sample(9, seed=0)  # batch 9 runs the profile's batch-8 choice
    assert np.array_equal(x, VAERuntime.load(model_dir, variant="fp32", threads=None).sample(9, seed=0))
    info = run_cli("info", "--model", model_dir, env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert "in force      device profile" in info.stdout and "fp32 x1" in info.stdout, info.stderr


def test_foreign_profile_is_ignored_with_one_warning_line(tmp_path, model_dir, tuned, monkeypatch, capfd):
    import dataclasses

    from edgevae.runtime import VAERuntime
    from edgevae.runtime.device import profile as device_profile

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(device_profile, "_warned", set())
    model = contract.load(model_dir)
    device_profile.write(device_profile.cache_path(model), dataclasses.replace(tuned, cpu_model="Another CPU"))
    rt = VAERuntime.load(model_dir)
    assert rt.plan.profile is None and rt.choice("decoder", 1).variant == "fp32"
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "ignored" in err and "Another CPU" in err
    (device_profile.cache_path(model)).write_text("{not json")
    monkeypatch.setattr(device_profile, "_warned", set())
    assert VAERuntime.load(model_dir).plan.profile is None
    assert "unreadable" in capfd.readouterr().err


@pytest.mark.heavy
def test_tune_cli_writes_into_the_model_dir_on_request(tmp_path, model_dir):
    model = tmp_path / "m"
    shutil.copytree(model_dir, model)
    result = run_cli("tune", "--model", model, "--budget-s", "0.5", "--in-model-dir")
    assert result.returncode == 0, result.stderr
    assert (model / "device-profile.json").is_file() and "speedup" in result.stdout
    assert run_cli("verify", "--model", model).returncode == 0  # the profile is not part of the hashed contract
    bad = run_cli("tune", "--model", model, "--budget-s", "-1")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.heavy
def test_verify_and_tune_load_neither_torch_nor_onnx(tmp_path, model_dir):
    import subprocess
    import sys

    code = ("import sys; from edgevae.cli import main; "
            f"codes = [main(['verify', '--model', {str(model_dir)!r}]), "
            f"main(['tune', '--model', {str(model_dir)!r}, '--budget-s', '0.2'])]; "
            "assert codes == [0, 0], codes; "
            "assert not {'torch', 'onnx'} & set(sys.modules), sorted({'torch', 'onnx'} & set(sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-500:]


def test_max_abs_diff_never_hides_nan_or_a_wrong_shape():
    from edgevae.runtime.device.golden import max_abs_diff

    ones = np.ones((2, 3), np.float32)
    assert max_abs_diff([ones, ones], [ones, ones + 0.5]) == 0.5
    assert np.isnan(max_abs_diff([ones, np.full_like(ones, np.nan)], [ones, ones]))  # NaN second, not first
    assert max_abs_diff([ones[:1]], [ones]) == float("inf")  # [1,3] would broadcast against [2,3]
