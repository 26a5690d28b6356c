"""Subcommands `web` (write the static sampling page) and `serve` (serve it on loopback). Argument parsing
only; the work is in runtime/site/page.py (stdlib only)."""

from pathlib import Path

ORT_WEB_HELP = ("onnxruntime-web from this folder (a node_modules, or the onnxruntime-web package in one) instead of "
                "the npm cache")


def register(sub) -> None:
    p = sub.add_parser("web", help="write a static site that samples from the model in the visitor's browser")
    p.add_argument("--model", type=Path, help="model dir (default: the model shipped in the package)")
    p.add_argument("--out", type=Path, required=True, help="SITE folder to write (replaced if `edgevae web` wrote it)")
    p.add_argument("--ort-web", type=Path, metavar="DIR", help=ORT_WEB_HELP)
    p.set_defaults(run=_web, extra=None)

    p = sub.add_parser("serve", help="serve the sampling page on 127.0.0.1 with cross-origin isolation headers")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, help="model dir to build the site from (default: the shipped model)")
    source.add_argument("--site", type=Path, help="serve a SITE already written by `edgevae web` instead")
    p.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1 (default 8000; 0: any free port)")
    p.add_argument("--ort-web", type=Path, metavar="DIR", help=ORT_WEB_HELP + " (when the site is built here)")
    p.set_defaults(run=_serve, extra=None)


def _web(args) -> None:
    from .page import write_site

    out = write_site(args.out, args.model, ort_web_dir=args.ort_web)
    print(f"wrote {out}/index.html with onnxruntime-web from {args.ort_web or 'the npm cache'} (serve it with "
          f"`edgevae serve --site {out}` or any static host; wasm threads need COOP/COEP headers)")


def _serve(args) -> None:
    import shutil
    import tempfile

    from .page import SiteError, make_server, write_site

    if not 0 <= args.port <= 65535:
        raise SiteError(f"--port must be in 0..65535, got {args.port}")
    tmp = None
    try:
        if args.site is None:
            tmp = Path(tempfile.mkdtemp(prefix="edgevae-site-"))
            site = write_site(tmp / "site", args.model, ort_web_dir=args.ort_web)
        else:
            site = args.site
        with make_server(site, args.port) as server:
            print(f"serving {site} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
            server.serve_forever()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
