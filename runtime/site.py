"""`edgevae web` and `edgevae serve`: a static page that samples from a model dir in the visitor's browser.

The site is the JavaScript runtime (web/*.js, which reads the model dir the way runtime/manifest.py does),
the page, onnxruntime-web's wasm build (copied from web/node_modules: `npm ci` in web/ installs it) and a
copy of the model dir. Nothing is inferred on the server: any static host can serve it, and `serve` adds the
cross-origin isolation headers (COOP/COEP) that let onnxruntime-web run wasm threads.

Stdlib only (base install). The site is written to a temporary folder beside SITE and renamed into place.
"""

import http.server
import os
import shutil
from pathlib import Path

from edgevae.atomic import sweep_stale, temp_name

from .errors import InputError
from .manifest import MANIFEST, load
from .safe_files import escape
from .site_server import SiteServer, make_handler

WEB_DIR = Path(__file__).resolve().parents[1] / "web"  # the checkout's web/ (edgevae is installed editable there)
PAGE_FILES = ("index.html", "page.js", "edgevae.js", "manifest.js", "checks.js", "random.js", "source.js")
# onnxruntime-web's wasm-only build: the module, its loader, and the SIMD+threads binary (the one it fetches).
ORT_DIST = Path("node_modules") / "onnxruntime-web" / "dist"
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
MODEL_SUBDIR = "model"
MARKER = ".edgevae-site"  # marks a folder this module wrote, so that writing again may replace it


class SiteError(ValueError):
    """The site cannot be written or served (web/ or onnxruntime-web missing, SITE not ours)."""


def web_dir() -> Path:
    """web/ of the checkout, or $EDGEVAE_WEB_DIR."""
    path = Path(os.environ.get("EDGEVAE_WEB_DIR") or WEB_DIR)
    if not (path / "edgevae.js").is_file():
        raise SiteError(f"{escape(path)} has no edgevae.js: `edgevae web` needs the web/ folder of an edgevae checkout "
                        "(or set EDGEVAE_WEB_DIR)")
    return path


def _ort_dir(web: Path) -> Path:
    ort = web / ORT_DIST
    missing = [name for name in ORT_FILES if not (ort / name).is_file()]
    if missing:
        raise SiteError(f"onnxruntime-web is not installed ({missing[0]} missing): run "
                        f"`ONNXRUNTIME_NODE_INSTALL=skip npm ci` in {escape(web)}")
    return ort


def write_site(out, model_dir=None) -> Path:
    """Write the static site for model_dir (None: the shipped default model) to out; returns out.

    The model dir is verified (every file's sha256) before it is copied, so a tampered model is refused here
    rather than published. out is replaced only if an earlier write_site made it.
    """
    from .checks import check_path

    out = check_path("out", out)
    model = load(model_dir)
    web = web_dir()
    ort = _ort_dir(web)
    if out.exists() and not (out / MARKER).is_file():
        raise SiteError(f"{escape(out)} exists and is not a site written by `edgevae web`; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(out)
    tmp = temp_name(out)
    try:
        (tmp / "ort").mkdir(parents=True)
        (tmp / MODEL_SUBDIR).mkdir()
        for name in PAGE_FILES:
            shutil.copyfile(web / name, tmp / name)
        for name in ORT_FILES:
            shutil.copyfile(ort / name, tmp / "ort" / name)
        # The graphs are copied from the bytes whose sha256 was just checked (ModelDir.read), never re-read.
        for entry in model.manifest.file_entries():
            (tmp / MODEL_SUBDIR / entry.file).write_bytes(model.read(entry))
        shutil.copyfile(model.path / MANIFEST, tmp / MODEL_SUBDIR / MANIFEST)
        load(tmp / MODEL_SUBDIR).verify()  # the copy is what the page will check
        (tmp / MARKER).write_text("written by edgevae web\n")
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out.exists():
            old = temp_name(out)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def make_server(site, port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """An HTTP server for the site folder on host:port (port 0: any free port); call serve_forever().
    It serves the regular files inside site and nothing else (runtime/site_server.py)."""
    from .checks import check_count, check_path

    site = check_path("site", site)
    port = check_count("port", port, minimum=0)
    if port > 65535:
        raise InputError(f"port must be in 0..65535, got {port}")
    if not isinstance(host, str):
        raise InputError(f"host must be a string, got {type(host).__name__}")
    if not (site / "index.html").is_file() or not (site / MODEL_SUBDIR / MANIFEST).is_file():
        raise SiteError(f"{escape(site)} is not a site written by `edgevae web` (no index.html or {MODEL_SUBDIR}/{MANIFEST})")
    return SiteServer((host, port), make_handler(site))
