"""Serve a site written by `edgevae web` with this interpreter's edgevae (`edgevae serve`), render it twice in
headless Chromium (web/test/browser.mjs; run from the repository root) and check what a visitor gets: 64 samples,
goldens passing, and a second visit that reads every file from the browser's cache. CI runs it with the clean
venv that holds only the wheel.

    python web/test/render_site.py SITE
"""

import json
import subprocess
import sys
from pathlib import Path

BROWSER = Path(__file__).resolve().parent / "browser.mjs"


def main(site: str) -> None:
    # the `edgevae` script beside this interpreter, started outside the checkout (whose edgevae/ would shadow it)
    edgevae = Path(sys.executable).with_name("edgevae")
    server = subprocess.Popen([str(edgevae), "serve", "--site", str(Path(site).resolve()), "--port", "0"],
                              stdout=subprocess.PIPE, text=True, cwd=Path(site).resolve().parent)
    try:
        url = server.stdout.readline().split(" at ", 1)[1].split()[0]
        out = subprocess.run(["node", str(BROWSER), url, "--visits", "2"], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            sys.exit(out.stderr[-2000:])
        first, second = json.loads(out.stdout.splitlines()[-1])["visits"]
        assert first["state"] == "ready" and first["tiles"] == 64 and all(c["passed"] for c in first["checks"]), first
        assert second["state"] == "ready" and all(f["from"] == "cache" for f in second["files"]), second
        print(f"{site} in Chromium: first grid {first['firstGridMs']:.0f} ms, second visit {second['firstGridMs']:.0f} ms "
              f"with {second['network']['bytes']} bytes over the wire; {first['verifiedText']}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1])
