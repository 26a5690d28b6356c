"""Signed model dirs: `edgevae sign DIR --key KEY.pem` and `--trust PUB.pem` (verify, the runtime commands,
`VAERuntime.load(trust=...)`), with the OpenSSF model-signing library's private-key method (offline: an
elliptic-curve key, no Sigstore servers). An optional extra, imported only here: `pip install 'edgevae[sign]'`.

What is signed: manifest.json and every file the manifest names (graphs, goldens, .ort copies), each read with
the model dir's safe reader (regular files directly inside the dir, sizes bounded, sha256 checked against the
manifest) and copied into a private snapshot folder that model-signing then hashes; so model-signing never
opens a path inside the untrusted dir, and the signature covers exactly those bytes. The signature is
MODEL_DIR/model.sig (a Sigstore bundle), not listed in the manifest (the manifest is what it signs), read
with the same safe reader. A file added to the dir later that the manifest does not name (a device profile)
is outside the signature, as it is outside the model.
"""

import contextlib
import io
import re
import tempfile
from pathlib import Path

from .errors import InputError
from .manifest import MANIFEST, MAX_GRAPH_BYTES, MAX_MANIFEST_BYTES, FileEntry, ModelDir, parse_bytes
from .safe_files import escape, read_regular_file

SIGNATURE = "model.sig"
MAX_SIGNATURE_BYTES = 1 << 20  # a bundle of one signature over a few dozen digests is ~10 KB
MAX_KEY_BYTES = 64 << 10  # PEM keys are a few hundred bytes


def _entries(model: ModelDir) -> dict[str, FileEntry]:
    """{name: FileEntry} of every file the manifest names besides itself: graphs, goldens, .ort copies."""
    m = model.manifest
    entries = {e.file: e for e in m.file_entries()}
    if m.ort is not None:
        raw = m.ort.required_operators
        try:
            ort = [FileEntry(g.file, g.sha256, g.bytes) for g in m.ort.graphs.values()]
            if "file" in raw:  # a file entry inside a free-form dict
                ort.append(FileEntry(raw["file"], raw["sha256"], raw["bytes"]))
        except (KeyError, TypeError, ValueError) as err:
            raise model.fail(f"{MANIFEST}: ort names a file badly: {escape(err)}") from None
        entries |= {e.file: e for e in ort}
    return entries


def signed_files(model: ModelDir) -> list[str]:
    """The names the signature covers: manifest.json and every file the manifest names."""
    return [MANIFEST, *sorted(set(_entries(model)) - {MANIFEST})]


def _read(model: ModelDir, name: str, max_bytes: int, exact: int | None = None) -> bytes:
    try:
        return read_regular_file(model.path, name, max_bytes=max_bytes, exact=exact)
    except FileNotFoundError:
        raise model.fail(f"{escape(name)} is missing") from None
    except (OSError, ValueError) as err:  # not a regular file, a link, or of the wrong size: the message names it
        raise model.fail(f"cannot read {escape(name)}: {getattr(err, 'strerror', None) or err}") from None


def _snapshot(model: ModelDir, folder: Path, hashed: bool) -> int:
    """Write the bytes of manifest.json and every file it names, each read with the safe reader (its size as the
    manifest says; hashed: its sha256 too, before signing), into folder (created); returns how many. When
    verifying, the digests are model-signing's to compare, so that a changed file is named as unsigned bytes."""
    folder.mkdir()
    data = _read(model, MANIFEST, MAX_MANIFEST_BYTES)
    if parse_bytes(data, f"model dir {escape(model.path)}") != model.manifest:
        raise model.fail(f"{MANIFEST} changed while it was being checked")
    (folder / MANIFEST).write_bytes(data)
    entries = _entries(model)
    for name, entry in entries.items():
        (folder / name).write_bytes(model.read(entry) if hashed else _read(model, name, MAX_GRAPH_BYTES, exact=entry.bytes))
    return 1 + len(entries)


def _key_path(key, what: str) -> Path:
    """key as a Path to a readable regular file of at most MAX_KEY_BYTES; InputError otherwise."""
    import os

    if not isinstance(key, (str, os.PathLike)):
        raise InputError(f"{what} must be a path to a PEM file, got {type(key).__name__}")
    path = Path(key)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise InputError(f"{what} {escape(path)}: {err.strerror or err}") from None
    if not path.is_file() or size > MAX_KEY_BYTES:
        raise InputError(f"{what} {escape(path)} is not a PEM key file (a regular file of at most {MAX_KEY_BYTES} bytes)")
    return path


def _first_line(err: Exception) -> str:
    return escape((str(err).strip().splitlines() or [type(err).__name__])[0])[:200]


def _mismatch(err: Exception) -> str:
    """model-signing's verdict in one line: which files differ from what was signed (its message lists every
    digest), else its first line."""
    text = str(err)  # a Python list's repr: a quote inside an item may come escaped (\')
    parts = [(label, re.findall(pattern, text)) for label, pattern in (
        ("changed since signing", r"Hash mismatch for \\?'([^'\\]+)"),
        ("not signed", r"Extra files found in model \\?'[^']*\\?': ([^'\"\\\]\n]+)"),
        ("signed but absent", r"Missing files in model \\?'[^']*\\?': ([^'\"\\\]\n]+)"))]
    found = [f"{label}: {escape(', '.join(names))[:120]}" for label, names in parts if names]
    return "; ".join(found) if found else _first_line(err)


def sign(model: ModelDir, key) -> Path:
    """Sign model's manifest and every file it names with the EC private key at `key` (PEM; P-256, P-384 or
    P-521); writes MODEL_DIR/model.sig atomically and returns its path. Every file is hashed against the
    manifest first (ModelDirError when one does not match), InputError for a key that is not such a key."""
    from model_signing import hashing, signing

    from edgevae.atomic import write_bytes

    key = _key_path(key, "--key")
    try:
        config = signing.Config().use_elliptic_key_signer(private_key=key)
    except Exception as err:  # cryptography's and model-signing's own types, for every way a file is not an EC key
        raise InputError(f"--key {escape(key)} is not an elliptic-curve private key in PEM (P-256, P-384 or P-521): "
                         f"{_first_line(err)}") from None
    with tempfile.TemporaryDirectory(prefix="edgevae-sign-") as tmp:
        _snapshot(model, Path(tmp) / "model", hashed=True)  # only a dir whose files match its manifest is signed
        config.set_hashing_config(hashing.Config().use_file_serialization(hashing_algorithm="sha256"))
        config.sign(Path(tmp) / "model", Path(tmp) / SIGNATURE)
        data = (Path(tmp) / SIGNATURE).read_bytes()
    path = model.path / SIGNATURE
    write_bytes(path, data, mode=0o644)
    return path


def check_signature(model: ModelDir, trust) -> int:
    """ModelDirError unless model.sig is a signature, by the private key of the PEM public key `trust`, over
    exactly model's manifest.json and the files it names, as they are now; returns how many files it covers.
    InputError for a trust key that is not an EC public key."""
    from model_signing import hashing, verifying

    trust = _key_path(trust, "--trust")
    try:
        config = verifying.Config().use_elliptic_key_verifier(public_key=trust)
    except Exception as err:  # as in sign: every way a file is not an EC public key
        raise InputError(f"--trust {escape(trust)} is not an elliptic-curve public key in PEM (P-256, P-384 or "
                         f"P-521): {_first_line(err)}") from None
    try:
        signature = read_regular_file(model.path, SIGNATURE, max_bytes=MAX_SIGNATURE_BYTES)
    except FileNotFoundError:
        raise model.fail(f"has no signature {SIGNATURE} (sign it: edgevae sign DIR --key KEY.pem)") from None
    except (OSError, ValueError) as err:
        raise model.fail(f"cannot read {SIGNATURE}: {getattr(err, 'strerror', None) or err}") from None
    with tempfile.TemporaryDirectory(prefix="edgevae-trust-") as tmp:
        count = _snapshot(model, Path(tmp) / "model", hashed=False)
        (Path(tmp) / SIGNATURE).write_bytes(signature)
        config.set_hashing_config(hashing.Config().use_file_serialization(hashing_algorithm="sha256"))
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # model-signing prints warnings about old bundles
                config.verify(Path(tmp) / "model", Path(tmp) / SIGNATURE)
        except Exception as err:  # a bad bundle, another key, another dir, a changed file: model-signing's own types
            raise model.fail(f"{SIGNATURE} does not verify with {escape(trust)}: {_mismatch(err)}") from None
    return count
