"""Decode latency of one model dir in four runtimes, side by side in one run: the Python runtime
(onnxruntime native), onnxruntime-node, and onnxruntime-web (wasm) in headless Chromium with 1 thread and
with threads; plus the page's time from navigation to the first grid of 64 samples on a first visit (fresh
browser profile) and on a second one (the same profile: the runtime and model from the browser's cache), with
its breakdown and the bytes that crossed the network; and the issue's goals against what was measured.

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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
VARIANTS = ("fp32", "int8")
BATCHES = ((1, 31), (64, 9))  # (batch, repeats)


def python_ms(model_dir, threads, *, variants=VARIANTS, batches=BATCHES) -> dict:
    """{variant: {batch: median ms of `repeats` decodes}} in the Python runtime, the variants interleaved
    (edgevae/timing.py: one untimed warm-up decode each, then one timed decode per round)."""
    from edgevae.runtime import VAERuntime
    from edgevae.runtime.inference.random_input import random_input
    from edgevae.timing import Schedule, interleave, median

    runtimes = {v: VAERuntime.load(model_dir, variant=v, threads=threads) for v in variants}
    out = {v: {} for v in variants}
    for n, reps in batches:
        z = random_input(next(iter(runtimes.values())).model, "decoder", n)
        schedule = Schedule(min_rounds=reps, max_rounds=reps, budget_s=0.0, segment_s=0.0, warmup_calls=0)
        for v, seconds in interleave({v: (lambda rt=rt: rt.decode(z)) for v, rt in runtimes.items()}, schedule).items():
            out[v][str(n)] = median(seconds) * 1e3
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

    from edgevae.runtime.contract.manifest import DEFAULT_MODEL_DIR
    from edgevae.runtime.site.page import make_server, write_site

    model = args.model or DEFAULT_MODEL_DIR
    site = write_site(Path(tempfile.mkdtemp(prefix="edgevae-bench-")) / "site", args.model, ort_web_dir=WEB / "node_modules")
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
        # a first visit (fresh profile: everything from the network) and a second one (its caches)
        report = _json([*browse, url, "--visits", "2"])
        for name, visit in zip(("first visit", "second visit"), report["visits"]):
            add(f"page {name}", _visit_summary(visit))
    server.shutdown()

    def med(values):
        first = values[0]
        if isinstance(first, dict):
            return {k: med([v[k] for v in values]) for k in first}
        if isinstance(first, (int, float)):
            return statistics.median(values)
        return first
    result = {name: med(values) for name, values in runs.items()}
    result["goals"] = goals(result)
    result["rounds"] = args.rounds
    result["loadavg_1min_start_end"] = [load_start, os.getloadavg()[0]]  # other jobs on the machine
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    return result


def _visit_summary(visit: dict) -> dict:
    """A page visit's first grid, its breakdown (ms), where its files came from, and its bytes on the network."""
    files = {f["file"]: f["from"] for f in visit["files"]}
    wasm = next((f for f in visit["files"] if f["file"].endswith(".wasm")), {})
    return {"firstGridMs": visit["firstGridMs"], **{k: v for k, v in visit["timings"].items() if isinstance(v, (int, float))},
            "wasm read ms": wasm.get("ms"), "network bytes": visit["network"]["bytes"],
            "files from the cache": sum(v == "cache" for v in files.values()), "files from the network": sum(v == "network" for v in files.values()),
            "choice": visit.get("choice", {}) and {n: f"{c['variant']}@{c['backend']}" for n, c in visit["choice"]["choice"].items()}}


def goals(result: dict) -> dict:
    """The issue's goals next to what this run measured."""
    first, second = result["page first visit"], result["page second visit"]
    py, wasm = result["python threads=1"], result["chromium wasm threads=1"]
    return {
        "first visit: first grid <= 1000 ms": round(first["firstGridMs"]),
        "second visit: first grid <= 300 ms": round(second["firstGridMs"]),
        "wasm decode batch 1 <= 2x Python's (fp32, 1 thread)": round(wasm["fp32"]["1"] / py["fp32"]["1"], 2),
        "the same, each runtime's fastest variant": round(min(v["1"] for v in wasm.values()) / min(v["1"] for v in py.values()), 2),
        "second visit: bytes over the network (the page and manifests, no wasm or model file)": second["network bytes"],
    }


if __name__ == "__main__":
    main()
