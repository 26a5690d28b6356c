"""Where `edgevae web` gets onnxruntime-web's files, in this order:

1. a folder the user names (`--ort-web DIR`): a node_modules, or the onnxruntime-web package folder in one;
2. the npm cache, through `npm pack onnxruntime-web@VERSION --offline`: the tarball is checked against the
   sha512 integrity that web/package-lock.json records for that version, and only the files the page loads are
   taken out of it;
3. else one line saying what to install.

Nothing is downloaded here (npm runs offline, and never a CDN): the version is the one the lock file pins, the
one the JavaScript runtime is tested with, and its bytes are the ones the user's npm already holds (`npm ci` in
a checkout's web/, or `npm cache add onnxruntime-web@VERSION`). Stdlib only (base install).
"""

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..contract.safe_files import escape

PACKAGE = "onnxruntime-web"
# The bundles the page may load (web/page.js reads this from site.json): the wasm-only build, and the one with
# onnxruntime's WebGPU provider (its asyncify build, 26.8 MB of wasm against 14.2 MB), which a visitor fetches only
# when the browser gives a WebGPU adapter. Each ES module imports its emscripten loader (".mjs" beside the wasm).
BUNDLES = {
    "wasm": {"module": "ort.wasm.min.mjs", "wasm": "ort-wasm-simd-threaded.wasm"},
    "webgpu": {"module": "ort.webgpu.min.mjs", "wasm": "ort-wasm-simd-threaded.asyncify.wasm"},
}
FILES = tuple(name for b in BUNDLES.values() for name in (b["module"], b["wasm"], b["wasm"].removesuffix(".wasm") + ".mjs"))
MAX_FILE_BYTES = 64 << 20  # the largest file above is 26.8 MB
MAX_TARBALL_BYTES = 256 << 20  # onnxruntime-web 1.30.0's tarball is 33.1 MB
NPM_TIMEOUT_S = 300


class OrtWebError(ValueError):
    """onnxruntime-web's files cannot be found or do not match the lock file."""


@dataclass(frozen=True)
class Locked:
    """onnxruntime-web as web/package-lock.json pins it."""

    version: str
    integrity: str  # Subresource Integrity of the npm tarball: "sha512-<base64>" (several, space-separated, allowed)

    @property
    def install_hint(self) -> str:
        return (f"run `npm cache add {PACKAGE}@{self.version}` (npm: Debian's npm package) or pass --ort-web DIR "
                f"(a node_modules holding {PACKAGE} {self.version})")


def locked(web: Path) -> Locked:
    """The onnxruntime-web version and tarball integrity that web/package-lock.json records."""
    lock = json.loads((web / "package-lock.json").read_text())
    entry = lock.get("packages", {}).get(f"node_modules/{PACKAGE}", {})
    if not isinstance(entry.get("version"), str) or not isinstance(entry.get("integrity"), str):
        raise OrtWebError(f"{escape(web / 'package-lock.json')} pins no {PACKAGE} version and integrity")
    return Locked(entry["version"], entry["integrity"])


def find_files(ort_web: Path | None, lock: Locked) -> dict[str, bytes]:
    """{file name: bytes} for FILES, from the folder ort_web when given, else the npm cache."""
    return from_npm_cache(lock) if ort_web is None else from_folder(Path(ort_web), lock)


def from_folder(folder: Path, lock: Locked) -> dict[str, bytes]:
    """FILES from the onnxruntime-web package in folder (a node_modules) or at folder, of the locked version."""
    package = next((p for p in (folder / PACKAGE, folder) if _package_name(p) == PACKAGE), None)
    if package is None:
        raise OrtWebError(f"--ort-web {escape(folder)}: no {PACKAGE} package there (give a node_modules folder, or "
                          f"the {PACKAGE} folder in one)")
    version = json.loads((package / "package.json").read_text()).get("version")
    if version != lock.version:
        raise OrtWebError(f"--ort-web {escape(folder)} holds {PACKAGE} {escape(version)}; this page is built and tested "
                          f"with {lock.version} (npm install {PACKAGE}@{lock.version})")
    files = {}
    for name in FILES:
        path = package / "dist" / name
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            raise OrtWebError(f"--ort-web {escape(folder)}: {escape(path)} is missing or larger than {MAX_FILE_BYTES} bytes")
        files[name] = path.read_bytes()
    return files


def _package_name(folder: Path):
    try:
        return json.loads((folder / "package.json").read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def from_npm_cache(lock: Locked) -> dict[str, bytes]:
    """FILES from the npm cache's tarball of the locked version, its integrity checked first."""
    npm = shutil.which("npm")
    if npm is None:
        raise OrtWebError(f"{PACKAGE} {lock.version} is needed and npm is not installed: {lock.install_hint}")
    with tempfile.TemporaryDirectory(prefix="edgevae-npm-pack-") as scratch:
        try:  # --offline: the npm cache or nothing; --ignore-scripts: packing runs no package code
            out = subprocess.run([npm, "pack", f"{PACKAGE}@{lock.version}", "--offline", "--ignore-scripts", "--json",
                                  "--pack-destination", scratch], cwd=scratch, capture_output=True, text=True,
                                 timeout=NPM_TIMEOUT_S)
            filename = json.loads(out.stdout)[0]["filename"] if out.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError, LookupError, TypeError):
            filename = None
        tarball = Path(scratch) / filename if isinstance(filename, str) and "/" not in filename else None
        if tarball is None or not tarball.is_file():
            raise OrtWebError(f"{PACKAGE} {lock.version} is not in the npm cache: {lock.install_hint}")
        if tarball.stat().st_size > MAX_TARBALL_BYTES or not integrity_matches(tarball, lock.integrity):
            raise OrtWebError(f"the npm cache's {PACKAGE} {lock.version} does not match the lock file's integrity "
                              f"{lock.integrity[:24]}...: clear it (npm cache clean --force), then {lock.install_hint}")
        return extract(tarball, lock)


def integrity_matches(path: Path, integrity: str) -> bool:
    """True when path's sha512 is one of the sha512 hashes of an SRI string ("sha512-<base64> ...")."""
    wanted = {part.split("-", 1)[1] for part in integrity.split() if part.startswith("sha512-")}
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode() in wanted


def extract(tarball: Path, lock: Locked) -> dict[str, bytes]:
    """FILES from package/dist/ of an npm tarball: regular files only, sizes bounded before reading."""
    wanted = {f"package/dist/{name}": name for name in FILES}
    files = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            name = wanted.get(member.name)
            if name is None:
                continue
            if not member.isreg() or member.size > MAX_FILE_BYTES:
                raise OrtWebError(f"{PACKAGE} {lock.version}'s {escape(member.name)} is not a regular file of at most {MAX_FILE_BYTES} bytes")
            files[name] = tar.extractfile(member).read()
            if len(files) == len(FILES):
                break  # the rest of the 144 MB need not be inflated
    missing = [name for name in FILES if name not in files]
    if missing:
        raise OrtWebError(f"{PACKAGE} {lock.version}'s tarball lacks dist/{missing[0]}")
    return files
