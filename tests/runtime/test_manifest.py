"""The model-dir contract (runtime/contract/manifest.py): schema drift, round trips, documentation, field checks,
file modes, and one default variant for the CLI and the API."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_model_dir, need_torch, run_cli

from edgevae.runtime import VAERuntime
from edgevae.runtime.contract import manifest as contract
from edgevae.runtime.contract.schema import schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "model-dir.schema.json"
DOC_FILE = ROOT / "docs" / "model-dir.md"


def test_committed_schema_is_the_one_the_classes_generate():
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "docs/model-dir.schema.json drifted from runtime/contract/manifest.py: "
        "python -m edgevae.runtime.contract.schema > docs/model-dir.schema.json")


def _classes(cls, seen=None):
    """cls and every manifest dataclass reachable from its fields."""
    seen = seen if seen is not None else {}
    seen[cls.__name__] = cls
    for f in dataclasses.fields(cls):
        for part in (f.type if isinstance(f.type, str) else str(f.type)).replace("|", " ").replace("[", " ").replace("]", " ").replace(",", " ").split():
            found = getattr(contract, part, None)
            if dataclasses.is_dataclass(found) and part not in seen:
                _classes(found, seen)
    return seen


def test_every_field_is_described_in_the_schema_and_the_doc():
    doc = DOC_FILE.read_text()
    for name, cls in _classes(contract.Manifest).items():
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f"{name}.{f.name} has no description"
            assert f"`{f.name}`" in doc, f"docs/model-dir.md does not explain {name}.{f.name}"


def _jsonschema():
    return pytest.importorskip("jsonschema", reason="checks against the JSON schema with jsonschema, which the runtime's own install lacks")


def test_shipped_and_fresh_manifests_validate_against_the_schema_and_round_trip(tmp_path, model_dir):
    jsonschema = _jsonschema()
    need_torch("export a fresh model dir")
    for folder in (contract.DEFAULT_MODEL_DIR, model_dir, make_model_dir(tmp_path / "fresh")):
        raw = json.loads((folder / contract.MANIFEST).read_text())
        jsonschema.validate(raw, schema())
        assert contract.load(folder).manifest.to_json() == raw


def test_schema_catches_what_another_language_would_trip_on():
    jsonschema = _jsonschema()
    raw = json.loads((contract.DEFAULT_MODEL_DIR / contract.MANIFEST).read_text())
    for broken in ({**raw, "latent_dim": "64"}, {**raw, "format": "edgevae-model/9"},
                   {k: v for k, v in raw.items() if k != "variants"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema())


@pytest.mark.parametrize("change, message", [
    (lambda m: m["variants"]["fp32"]["encoder"].update(sha256="ABC"), "not 64 lower-case hex digits"),
    (lambda m: m["variants"]["fp32"]["encoder"].update(bytes=-1), "outside 1.."),
    (lambda m: m["variants"]["fp32"]["encoder"].update(file="/etc/passwd"), "not a plain file name"),
    (lambda m: m["variants"]["fp32"].pop("decoder"), "exactly the graphs encoder, decoder"),
    (lambda m: m.update(image_shape=[1, 28]), "image_shape must be a list of 3 values"),
    (lambda m: m.update(latent_dim=True), "latent_dim must be an integer"),
    (lambda m: m.update(selection={"decoder": {"²": "fp32"}}), "key '²' is not a positive batch size"),
    (lambda m: m.update(selection={"decoder": {"8": ["fp32"]}}), "selection.decoder.8 must be a string"),
    (lambda m: m.update(selection={"decoder": []}), "selection.decoder must be an object"),
    (lambda m: m["variants"].update(auto=m["variants"]["fp32"]), "reserved"),
    (lambda m: m["parity"].update(tolerance=float("nan")), "parity.tolerance must be a finite number"),
])
def test_field_checks_name_the_field(change, message):
    raw = json.loads((contract.DEFAULT_MODEL_DIR / contract.MANIFEST).read_text())
    change(raw)
    with pytest.raises(ValueError, match=message):
        contract.parse_manifest(raw)


def test_nan_and_inf_are_never_written(tmp_path, model_dir):
    model = contract.load(model_dir)
    bad = dataclasses.replace(model.manifest, training=contract.Training(1, {"test_neg_elbo": float("inf")}, {}))
    with pytest.raises(ValueError):
        contract.write(tmp_path, bad)
    assert list(tmp_path.iterdir()) == []


def test_fresh_model_dir_files_are_0644_in_a_0755_folder(tmp_path):
    need_torch("export a fresh model dir")
    old = os.umask(0o077)  # a private umask must not leak into a model dir meant for sharing
    try:
        out = make_model_dir(tmp_path / "m")
        from edgevae.runtime.contract.manifest import write

        write(out, contract.load(out).manifest)  # rewriting the manifest keeps 0644
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in out.iterdir()}
    listed = {e.file for e in contract.load(out).manifest.file_entries()} | {"manifest.json"}  # graphs and goldens
    assert {"encoder.onnx", "decoder.onnx"} < listed and modes == {name: "0o644" for name in listed}


def test_export_writes_0644_whatever_the_umask(tmp_path):
    need_torch("export a model")
    from edgevae.export.exporter import export_model_dir
    from helpers import make_model

    old = os.umask(0o077)
    try:
        out = export_model_dir(make_model(seed=0, latent_dim=4), tmp_path / "m")
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == "0o755"
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {"0o644"}


def test_cli_and_api_default_to_the_same_variant_and_images(tmp_path):
    """No --variant and no variant=: the same seed gives bit-identical images (the shipped model has an
    int8 selection, so a different default would show)."""
    out = tmp_path / "s.npy"
    result = run_cli("sample", "--n", 16, "--seed", 3, "--out", out)
    assert result.returncode == 0, result.stderr
    api = VAERuntime.load().sample(16, seed=3)
    assert VAERuntime.load().variant == "auto"
    assert np.array_equal(np.load(out), api)
    assert not np.array_equal(api, VAERuntime.load(variant="fp32").sample(16, seed=3))


def test_old_format_is_refused_with_how_to_reexport(tmp_path, model_dir):
    raw = json.loads((model_dir / contract.MANIFEST).read_text())
    for name in ("encoder.onnx", "decoder.onnx"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    (tmp_path / contract.MANIFEST).write_text(json.dumps({**raw, "format": "edgevae-model/0"}))
    result = run_cli("info", "--model", tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "re-export it" in result.stderr and "edgevae export" in result.stderr


def test_runtime_modules_use_only_the_contract_module_for_the_model_dir():
    """One owner: no other module of the runtime or export parses manifest.json itself."""
    offenders = []
    for folder in ("runtime", "export", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "manifest.py":
                continue
            for line in path.read_text().splitlines():
                if "json.load" in line and "manifest" in line.lower():
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []


def test_schema_module_runs_as_a_script():
    result = subprocess.run([sys.executable, "-m", "edgevae.runtime.contract.schema"], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == schema()
