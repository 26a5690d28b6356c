"""Signed model dirs (runtime/contract/signing.py): `edgevae sign`, `verify --trust`, `--trust` and VAERuntime.load(trust=)
on copies of the shipped model, with keys made here. Needs the `sign` extra (model-signing), which `dev` installs."""

import json
import shutil
import subprocess
import sys

import pytest
from helpers import flip_byte, resign, run_cli

pytest.importorskip("model_signing")

from cryptography.hazmat.primitives import serialization  # noqa: E402  (model-signing's own dependency)
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

from edgevae.runtime import InputError, ModelDirError, VAERuntime  # noqa: E402
from edgevae.runtime.contract import manifest as contract  # noqa: E402
from edgevae.runtime.contract.signing import SIGNATURE, check_signature, sign, signed_files  # noqa: E402


def _pem(private, folder, name):
    """(private key path, public key path) of an EC or RSA private key, written as PEM."""
    key = folder / f"{name}.pem"
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    pub = folder / f"{name}.pub.pem"
    pub.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, pub


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    return {"a": _pem(ec.generate_private_key(ec.SECP256R1()), folder, "a"),
            "b": _pem(ec.generate_private_key(ec.SECP384R1()), folder, "b"),
            "rsa": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), folder, "rsa")}


@pytest.fixture()
def signed(tmp_path, keys):
    folder = shutil.copytree(contract.DEFAULT_MODEL_DIR, tmp_path / "m")
    result = run_cli("sign", folder, "--key", keys["a"][0])
    assert result.returncode == 0, result.stderr
    return folder


def _fails_in_one_line(result, *words):
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stdout + result.stderr
    assert all(w in result.stderr for w in words), result.stderr


def test_sign_covers_the_manifest_and_every_file_it_names(signed, keys):
    model = contract.load(signed)
    names = signed_files(model)
    assert names[0] == contract.MANIFEST and set(names[1:]) == {e.file for e in model.manifest.file_entries()}
    assert check_signature(model, keys["a"][1]) == len(names)
    assert (signed / SIGNATURE).stat().st_mode & 0o777 == 0o644


def test_verify_trust_passes_then_runs_the_goldens(signed, keys):
    result = run_cli("verify", "--model", signed, "--trust", keys["a"][1])
    assert result.returncode == 0, result.stderr
    first, *_, last = result.stdout.splitlines()
    assert first.startswith(f"signature {SIGNATURE} verified") and last.startswith("ok: all")


def test_one_changed_byte_of_one_graph_fails(signed, keys):
    flip_byte(signed / "decoder.int8.onnx")
    _fails_in_one_line(run_cli("verify", "--model", signed, "--trust", keys["a"][1]), "decoder.int8.onnx")
    resign(signed, "decoder.int8.onnx")  # the manifest made to match the new bytes: the signature still does not
    _fails_in_one_line(run_cli("verify", "--model", signed, "--trust", keys["a"][1]), "does not verify",
                      "decoder.int8.onnx, manifest.json")


def test_a_manifest_resigned_with_another_key_fails(signed, keys):
    flip_byte(signed / "decoder.onnx")
    resign(signed, "decoder.onnx")
    assert run_cli("sign", signed, "--key", keys["b"][0]).returncode == 0  # the attacker signs with their own key
    assert run_cli("verify", "--model", signed, "--trust", keys["b"][1]).returncode in (0, 1)  # their key: it verifies
    _fails_in_one_line(run_cli("verify", "--model", signed, "--trust", keys["a"][1]), "does not verify")


def test_a_signature_of_another_dir_fails(signed, keys, tmp_path):
    other = shutil.copytree(contract.DEFAULT_MODEL_DIR, tmp_path / "other")
    raw = json.loads((other / contract.MANIFEST).read_text())
    raw["edgevae_version"] = "another"
    (other / contract.MANIFEST).write_text(json.dumps(raw))
    shutil.copy(signed / SIGNATURE, other / SIGNATURE)
    _fails_in_one_line(run_cli("verify", "--model", other, "--trust", keys["a"][1]), "does not verify")


def test_a_missing_or_unreadable_signature_fails(signed, keys):
    (signed / SIGNATURE).unlink()
    _fails_in_one_line(run_cli("info", "--model", signed, "--trust", keys["a"][1]), "has no signature")
    (signed / SIGNATURE).symlink_to(signed / contract.MANIFEST)
    _fails_in_one_line(run_cli("info", "--model", signed, "--trust", keys["a"][1]), "symbolic link")
    (signed / SIGNATURE).unlink()
    (signed / SIGNATURE).write_bytes(b"not a bundle")
    _fails_in_one_line(run_cli("info", "--model", signed, "--trust", keys["a"][1]), "does not verify")


@pytest.mark.parametrize("which", ["public", "rsa", "junk", "missing"])
def test_a_key_that_is_not_an_ec_private_key_is_refused_and_nothing_is_written(tmp_path, keys, which):
    folder = shutil.copytree(contract.DEFAULT_MODEL_DIR, tmp_path / "m")
    (tmp_path / "junk.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    key = {"public": keys["a"][1], "rsa": keys["rsa"][0], "junk": tmp_path / "junk.pem", "missing": tmp_path / "none.pem"}[which]
    _fails_in_one_line(run_cli("sign", folder, "--key", key), "--key")
    assert not (folder / SIGNATURE).exists() and sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in contract.DEFAULT_MODEL_DIR.iterdir())


@pytest.mark.parametrize("which", ["private", "rsa"])
def test_a_trust_key_that_is_not_an_ec_public_key_is_refused(signed, keys, which):
    key = {"private": keys["a"][0], "rsa": keys["rsa"][1]}[which]
    _fails_in_one_line(run_cli("verify", "--model", signed, "--trust", key), "--trust")


def test_the_runtime_refuses_an_unsigned_or_wrongly_signed_dir(signed, keys, tmp_path):
    rt = VAERuntime.load(signed, trust=keys["a"][1])
    assert rt.sample(2, seed=0).shape == (2, *rt.image_shape)
    with pytest.raises(ModelDirError, match="does not verify"):
        VAERuntime.load(signed, trust=keys["b"][1])
    with pytest.raises(ModelDirError, match="has no signature"):
        VAERuntime.load(contract.DEFAULT_MODEL_DIR, trust=keys["a"][1])
    with pytest.raises(InputError, match="must be a path"):
        VAERuntime.load(signed, trust=42)
    _fails_in_one_line(run_cli("sample", "--model", signed, "--trust", keys["b"][1], "--n", 2, "--out", tmp_path / "s.png"),
                       "does not verify")
    assert not (tmp_path / "s.png").exists()


def test_without_trust_the_runtime_never_imports_model_signing(signed):
    code = (f"import sys; from edgevae.runtime import VAERuntime; VAERuntime.load({str(signed)!r}).sample(2, seed=0); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('model_signing', 'sigstore', 'torch', 'onnx')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_sign_api_names_what_it_wrote(tmp_path, keys):
    folder = shutil.copytree(contract.DEFAULT_MODEL_DIR, tmp_path / "m")
    assert sign(contract.load(folder), keys["a"][0]) == folder / SIGNATURE
