"""Decode latency of one model dir in four runtimes, side by side in one run: the Python runtime
(onnxruntime native), onnxruntime-node, and onnxruntime-web (wasm) in headless Chromium with 1 thread and
with threads; plus the page's time from navigation to the first grid of 64 samples.

    python benchmarks/web_latency.py [--model DIR] [--rounds R] [--out FILE.json]

Medians over repeats inside each round, then the median over rounds; the runtimes alternate within a round
so a busy machine slows them alike. Needs node, web/node_modules and /usr/bin/chromium (see README).
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
VARIANTS = ("fp32", "int8")
BATCHES = ((1, 31), (64, 9))  # (batch, repeats)


def python_ms(model_dir, threads) -> dict:
    from edgevae.runtime import VAERuntime

    out = {}
    for variant in VARIANTS:
        rt = VAERuntime.load(model_dir, variant=variant, threads=threads)
        out[variant] = {}
        for n, reps in BATCHES:
            z = np.random.default_rng(0).standard_normal((n, rt.latent_dim), dtype=np.float32)
            rt.decode(z)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                rt.decode(z)
                times.append((time.perf_counter() - t0) * 1e3)
            out[variant][str(n)] = statistics.median(times)
    return out


def _json(cmd) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model dir (default: the shipped model)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from edgevae.runtime.manifest import DEFAULT_MODEL_DIR
    from edgevae.runtime.site import make_server, write_site

    model = args.model or DEFAULT_MODEL_DIR
    site = write_site(Path(tempfile.mkdtemp(prefix="edgevae-bench-")) / "site", args.model)
    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    browse = ["node", str(WEB / "test" / "browser.mjs")]
    runs = {}

    def add(name, value):
        runs.setdefault(name, []).append(value)

    load_start = os.getloadavg()[0]
    for _ in range(args.rounds):
        add("python threads=1", python_ms(model, 1))
        add("python threads=default", python_ms(model, None))
        add("node threads=1", _json(["node", str(WEB / "test" / "bench-node.mjs"), str(model), "1"])["ms"])
        add("node threads=default", _json(["node", str(WEB / "test" / "bench-node.mjs"), str(model)])["ms"])
        for threads in (1, 2):
            report = _json([*browse, f"{url}?variant=fp32&threads={threads}", "--bench"])
            add(f"chromium wasm threads={threads}", report["bench"])
        # first visit: `auto` measures the variants before the first grid; fp32: no measurement
        for query in ("?fresh=1", "?variant=fp32"):
            report = _json([*browse, url + query])
            add(f"page first grid ms {query}", {"firstGridMs": report["firstGridMs"], **report["timings"],
                                                 "choice": report.get("choice")})
    server.shutdown()

    def med(values):
        first = values[0]
        if isinstance(first, dict):
            return {k: med([v[k] for v in values]) for k in first}
        if isinstance(first, (int, float)):
            return statistics.median(values)
        return first
    result = {name: med(values) for name, values in runs.items()}
    result["rounds"] = args.rounds
    result["loadavg_1min_start_end"] = [load_start, os.getloadavg()[0]]  # other jobs on the machine
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    return result


if __name__ == "__main__":
    main()
