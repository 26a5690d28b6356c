"""A corrupt or foreign device profile (issue 21, item 4) is ignored with one warning line: every field is
checked when the profile is read, so nothing in it can fail later, in the API (VAERuntime.load and its methods)
or on the CLI (sample, info). Uses a copy of the shipped model (no export needed)."""

import json
import os
import shutil

import pytest
from helpers import run_cli

from edgevae.runtime import VAERuntime
from edgevae.runtime.device import profile as device_profile
from edgevae.runtime.contract.manifest import DEFAULT_MODEL_DIR, GRAPH_NAMES, load


@pytest.fixture(scope="module")
def shipped_copy(tmp_path_factory):
    return shutil.copytree(DEFAULT_MODEL_DIR, tmp_path_factory.mktemp("m") / "model")


@pytest.fixture
def model(tmp_path, shipped_copy):
    folder = shutil.copytree(shipped_copy, tmp_path / "model")
    return folder


def valid_profile(model_dir) -> dict:
    """A profile that applies to model_dir on this device: fp32 at one thread for every batch size, timed
    against onnxruntime's default threads (what tune writes, by hand)."""
    timing = lambda threads, ms: {"variant": "fp32", "threads": threads, "median_ms": ms,  # noqa: E731
                                  "p25_ms": ms * 0.9, "p75_ms": ms * 1.1, "calls": 5}
    table = lambda value: {g: {"1": value} for g in GRAPH_NAMES}  # noqa: E731
    return {"format": device_profile.FORMAT, "model_key": device_profile.model_key(load(model_dir)),
            **device_profile.device_identity(),
            "choice": table({"variant": "fp32", "threads": 1}),
            "timings": table([timing(1, 1.0), timing(None, 2.0)]),
            "default": table({"variant": "fp32", "threads": None}),
            "budget_s": 1.0, "edgevae_version": "test"}


def _set(path: tuple, value):
    def change(profile):
        target = profile
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _rename_batch(new_key, tables=("choice", "timings", "default")):
    def change(profile):
        for table in tables:
            profile[table]["decoder"][new_key] = profile[table]["decoder"].pop("1")
    return change


FIRST_TIMING = ("timings", "decoder", "1", 0)
# (case id, change to a valid profile as a dict, or the file's text/bytes outright)
CORRUPT = [
    ("timings key abc", _rename_batch("abc", ["timings"])),  # the example: choice itself is fine
    ("timings key 01", _rename_batch("01", ["timings"])),
    ("timings key arabic-indic 3", _rename_batch("\u0663", ["timings"])),
    ("batch key abc", _rename_batch("abc")),
    ("batch key 01", _rename_batch("01")),
    ("batch key arabic-indic 3", _rename_batch("\u0663")),  # int() takes it, the table's key would not match
    ("batch key superscript 2", _rename_batch("\u00b2")),  # '²'.isdigit() is True, int('²') fails
    ("batch key 0", _rename_batch("0")),
    ("batch key -1", _rename_batch("-1")),
    ("negative median", _set(FIRST_TIMING + ("median_ms",), -1.0)),
    ("p25 above median", _set(FIRST_TIMING + ("p25_ms",), 5.0)),
    ("zero calls", _set(FIRST_TIMING + ("calls",), 0)),
    ("median as string", _set(FIRST_TIMING + ("median_ms",), "1.0")),
    ("threads 0", _set(("choice", "encoder", "1", "threads"), 0)),
    ("threads -3", _set(FIRST_TIMING + ("threads",), -3)),
    ("threads 10**12", _set(("choice", "encoder", "1", "threads"), 10**12)),
    ("threads true", _set(("choice", "encoder", "1", "threads"), True)),
    ("threads 1.5", _set(("choice", "encoder", "1", "threads"), 1.5)),
    ("threads '2'", _set(("choice", "encoder", "1", "threads"), "2")),
    ("unknown variant", _set(("choice", "decoder", "1", "variant"), "int9")),
    ("variant auto", _set(("choice", "decoder", "1", "variant"), "auto")),
    ("variant empty", _set(("choice", "decoder", "1", "variant"), "")),
    ("variant not a string", _set(("choice", "decoder", "1", "variant"), 8)),
    ("choice not timed", _set(("choice", "decoder", "1", "threads"), 2)),
    ("empty timings row", _set(("timings", "decoder", "1"), [])),
    ("unknown graph", _set(("choice", "middle"), {"1": {"variant": "fp32", "threads": 1}})),
    ("cores 0", _set(("cores",), 0)),
    ("cores as string", _set(("cores",), "2")),
    ("more threads than cores", _set(("choice", "encoder", "1", "threads"), 4097)),
    ("model_key not hex", _set(("model_key",), "x" * 64)),
    ("another model", _set(("model_key",), "0" * 64)),
    ("another onnxruntime", _set(("onnxruntime",), "0.0.1")),
    ("cpu_model 10k characters", _set(("cpu_model",), "x" * 10000)),
    ("budget NaN", _set(("budget_s",), float("nan"))),
    ("budget negative", _set(("budget_s",), -5.0)),
    ("choice a list", _set(("choice",), [])),
    ("missing field", lambda p: p.pop("timings")),
    ("other format", _set(("format",), "edgevae-device-profile/2")),
    ("top level a list", "[]"),
    ("top level a string", '"profile"'),
    ("top level null", "null"),
    ("top level a number", "1"),
    ("NaN literal", None),  # filled in below: a valid profile with a NaN median written by json.dumps
    ("duplicated key", None),
    ("nested 100000 deep", "[" * 100000 + "]" * 100000),
    ("2 MiB", None),
    ("not UTF-8", b"\xff\xfe{\x00"),
    ("not JSON", "{choice: 1"),
    ("empty file", ""),
]


def _write_case(model_dir, case: str, change) -> None:
    path = model_dir / device_profile.IN_MODEL_DIR
    profile = valid_profile(model_dir)
    if case == "NaN literal":
        profile["timings"]["decoder"]["1"][0]["median_ms"] = float("nan")
        path.write_text(json.dumps(profile))  # json.dumps writes NaN, json.loads reads it back
    elif case == "duplicated key":
        text = json.dumps(profile)
        path.write_text(text[:-1] + ', "cores": ' + json.dumps(profile["cores"]) + "}")  # cores twice, same value
    elif case == "2 MiB":
        path.write_text(json.dumps(profile) + " " * (2 << 20))
    elif isinstance(change, bytes):
        path.write_bytes(change)
    elif isinstance(change, str):
        path.write_text(change)
    else:
        change(profile)
        path.write_text(json.dumps(profile))


def test_a_valid_profile_is_followed(model):
    """The baseline of every case below: the hand-written profile is read and applies."""
    (model / device_profile.IN_MODEL_DIR).write_text(json.dumps(valid_profile(model)))
    for variant, threads in (("auto", "auto"), ("fp32", "auto"), ("auto", 1)):
        rt = VAERuntime.load(model, variant=variant, threads=threads)
        assert rt.plan.profile is not None, (variant, threads)
        assert rt.choice("decoder", 1) == device_profile.Choice("fp32", 1)


@pytest.mark.parametrize("case, change", CORRUPT, ids=[c for c, _ in CORRUPT])
def test_corrupt_profile_is_ignored_with_one_warning(model, case, change, monkeypatch, capfd):
    monkeypatch.setattr(device_profile, "_warned", set())
    _write_case(model, case, change)
    capfd.readouterr()
    for variant, threads in (("auto", "auto"), ("fp32", "auto"), ("auto", 1)):  # every path through a profile
        rt = VAERuntime.load(model, variant=variant, threads=threads)
        assert rt.plan.profile is None, (case, variant, threads)
        for batch in (1, 3, 300):
            assert rt.choice("decoder", batch).variant in rt.model.manifest.variants
    assert rt.sample(2, seed=0).shape == (2, 1, 28, 28)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device profile" in err[0] and "ignored" in err[0], err
    assert len(err[0]) < 400  # the reason is cut short: a 10k-character field is not echoed


@pytest.mark.parametrize("case", ["timings key abc", "timings key 01", "timings key arabic-indic 3", "threads 10**12"])
def test_cli_runs_with_a_corrupt_profile_and_warns_once(tmp_path, model, case):
    _write_case(model, case, dict(CORRUPT)[case])
    runs = [("sample", "--variant", "fp32"), ("sample", "--threads", "1"), ("info", "--variant", "fp32")]
    for command, *flags in runs:
        out = [] if command == "info" else ["--n", "2", "--out", tmp_path / "s.png"]
        result = run_cli(command, "--model", model, *flags, *out)
        assert result.returncode == 0, (case, command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "ignored" in lines[0], (case, command, lines)


def test_profile_that_is_a_link_or_fifo_is_ignored(tmp_path, model, monkeypatch, capfd):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(valid_profile(model)))
    path = model / device_profile.IN_MODEL_DIR
    for make in (lambda: path.symlink_to(elsewhere), lambda: os.mkfifo(path)):
        monkeypatch.setattr(device_profile, "_warned", set())
        make()
        assert VAERuntime.load(model, variant="fp32").plan.profile is None  # returns at once: no FIFO hang
        assert "ignored" in capfd.readouterr().err
        path.unlink()


def test_write_refuses_a_profile_it_would_not_read(tmp_path, model):
    """tune's own output passes the same checks (write parses what it writes), and a bad one is not written."""
    from edgevae.runtime.contract.typed_json import parse

    profile = parse(device_profile.DeviceProfile, valid_profile(model))
    device_profile.write(tmp_path / "ok.json", profile)
    bad = valid_profile(model)
    bad["timings"]["decoder"]["1"][0]["median_ms"] = -1.0
    with pytest.raises(ValueError, match="0 <= p25 <= median"):
        parse(device_profile.DeviceProfile, bad)
