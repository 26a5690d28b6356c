"""`edgevae web` and `edgevae serve`: a static page that samples from a model dir in the visitor's browser.

The site is the JavaScript runtime and the page (web/, shipped in the wheel as edgevae/web), onnxruntime-web's
wasm and WebGPU bundles (runtime/site/ort_web.py says where they come from), site.json (those files' sha256, which
the page checks them against) and a copy of the model dir. Nothing is inferred on the server: any static host
can serve it, and `serve` adds the cross-origin isolation headers (COOP/COEP) that let onnxruntime-web run wasm
threads.

Stdlib only (base install). The site is written to a temporary folder beside SITE and renamed into place.
"""

import hashlib
import http.server
import json
import shutil
from pathlib import Path

from edgevae.atomic import atomic_folder

from . import ort_web
from ..contract.errors import InputError
from ..contract.manifest import MANIFEST, load
from ..contract.safe_files import escape
from .server import SiteServer, make_handler

# web/ beside runtime/: the checkout's in an editable install, edgevae/web (pyproject's package-data) in a wheel
WEB_DIR = Path(__file__).resolve().parents[2] / "web"
PAGE_FILES = ("index.html", "page.js", "edgevae.js", "vae.js", "auto.js", "backends.js", "manifest.js", "checks.js",
              "conventions.js", "tiles.js", "random.js", "source.js", "sha256.js", "cache.js", "verify.js")
LOCK_FILE = "package-lock.json"  # pins onnxruntime-web's version and tarball integrity
ORT_SUBDIR = "ort"
SITE_JSON = "site.json"
SITE_FORMAT = "edgevae-site/1"
MODEL_SUBDIR = "model"
MARKER = ".edgevae-site"  # marks a folder this module wrote, so that writing again may replace it


class SiteError(ValueError):
    """The site cannot be written or served (the page's files missing, SITE not ours)."""


def web_dir() -> Path:
    """The JavaScript runtime and page that this edgevae installed (WEB_DIR)."""
    missing = [name for name in (*PAGE_FILES, LOCK_FILE) if not (WEB_DIR / name).is_file()]
    if missing:
        raise SiteError(f"{escape(WEB_DIR)} lacks {escape(missing[0])}: this edgevae install is incomplete "
                        "(reinstall it: pip install --force-reinstall edgevae)")
    return WEB_DIR


def site_json(ort_files: dict[str, bytes], version: str) -> dict:
    """What the page checks onnxruntime-web against: each file's sha256 and size, and the bundles (ort_web.BUNDLES)."""
    return {"format": SITE_FORMAT, "onnxruntime_web": {
        "version": version, "bundles": ort_web.BUNDLES,
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in ort_files.items()}}}


def write_site(out, model_dir=None, *, ort_web_dir=None) -> Path:
    """Write the static site for model_dir (None: the shipped default model) to out; returns out.

    ort_web_dir: a folder holding onnxruntime-web (a node_modules); None: the npm cache (runtime/site/ort_web.py).
    The model dir is verified (every file's sha256) before it is copied, so a tampered model is refused here
    rather than published. out is replaced only if an earlier write_site made it.
    """
    from ..inference.checks import check_path

    out = check_path("out", out)
    ort_web_dir = None if ort_web_dir is None else check_path("ort_web_dir", ort_web_dir)
    model = load(model_dir)
    web = web_dir()
    lock = ort_web.locked(web)
    ort_files = ort_web.find_files(ort_web_dir, lock)
    if out.exists() and not (out / MARKER).is_file():
        raise SiteError(f"{escape(out)} exists and is not a site written by `edgevae web`; choose another --out")
    with atomic_folder(out) as tmp:
        (tmp / ORT_SUBDIR).mkdir(parents=True)
        (tmp / MODEL_SUBDIR).mkdir()
        for name in PAGE_FILES:
            shutil.copyfile(web / name, tmp / name)
        for name, data in ort_files.items():
            (tmp / ORT_SUBDIR / name).write_bytes(data)
        (tmp / SITE_JSON).write_text(json.dumps(site_json(ort_files, lock.version), indent=1))
        # The graphs are copied from the bytes whose sha256 was just checked (ModelDir.read), never re-read.
        for entry in model.manifest.file_entries():
            (tmp / MODEL_SUBDIR / entry.file).write_bytes(model.read(entry))
        shutil.copyfile(model.path / MANIFEST, tmp / MODEL_SUBDIR / MANIFEST)
        load(tmp / MODEL_SUBDIR).verify()  # the copy is what the page will check
        (tmp / MARKER).write_text("written by edgevae web\n")
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    return out


def make_server(site, port: int = 8000, *, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """An HTTP server for the site folder on host:port (port 0: any free port); call serve_forever().
    It serves the regular files inside site and nothing else (runtime/site/server.py)."""
    from ..inference.checks import check_count, check_path

    site = check_path("site", site)
    port = check_count("port", port, minimum=0)
    if port > 65535:
        raise InputError(f"port must be in 0..65535, got {port}")
    if not isinstance(host, str):
        raise InputError(f"host must be a string, got {type(host).__name__}")
    if not (site / "index.html").is_file() or not (site / MODEL_SUBDIR / MANIFEST).is_file():
        raise SiteError(f"{escape(site)} is not a site written by `edgevae web` (no index.html or {MODEL_SUBDIR}/{MANIFEST})")
    return SiteServer((host, port), make_handler(site))
