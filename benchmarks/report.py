"""results.json, results.md (Markdown tables) and the plots of a benchmark run, each written atomically."""

import json
import time
from pathlib import Path

from edgevae.atomic import write_bytes
from edgevae.runtime.contract.manifest import GRAPH_NAMES


def _f(value, digits: int = 3) -> str:
    """A figure for a table: 3 significant digits, '-' when missing."""
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _table(header: list, rows: list) -> list:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]


def _goal_rows(goals: dict) -> list:
    dec1, roof, cold = goals["decoder_batch1_vs_torch_eager"], goals["decoder_roofline_fraction"], goals["cold_start"]
    best = dec1["best_variant"]
    return [
        ["decoder batch 1, 1 thread: runtime / torch eager p50", f"<= {dec1['target_at_most']}",
         f"{_f(dec1['by_variant'].get(best))} ({best})" if best else "- (no torch)",
         ", ".join(f"{v} {_f(x)}" for v, x in dec1["by_variant"].items()),
         "not measured" if dec1["met"] is None else "yes" if dec1["met"] else "no"],
        [f"decoder batch {roof['batch']} fp32, 1 thread: GFLOP/s / sgemm GFLOP/s", f">= {roof['target_at_least']}",
         _f(roof["by_threads"].get(1)),
         ", ".join(f"{t} thr {_f(x)}" for t, x in roof["by_threads"].items()), "yes" if roof["met"] else "no"],
        ["cold start: 64 images decoded to a PNG (s, MiB)", f"<= {cold['target_s']} s, {cold['target_mib']:g} MiB",
         f"{_f(cold['seconds'])} s, {_f(cold['max_rss_mib'])} MiB",
         f"median; importing numpy + onnxruntime alone: {_f(cold['imports_floor_s'])} s, {_f(cold['imports_floor_mib'])} MiB",
         "yes" if cold["met"] else "no"],
    ]


def _parity(torch_info: dict) -> str:
    """' (max abs diff vs the runtime's fp32: decoder 1e-06, ...)', or '' when no PyTorch side ran."""
    parity = torch_info.get("parity")
    if not parity:
        return ""
    diffs = ", ".join(f"{g} {_f(d)}" for g, d in parity["max_abs_diff"].items())
    return f" (max abs diff vs the runtime's fp32, decoder as images in [0, 1]: {diffs})"


def _by_op(nodes: list) -> str:
    """'ConvTranspose 71%, Gemm 8%, ...': the profile's shares summed per op type."""
    shares = {}
    for n in nodes:
        shares[n["op"]] = shares.get(n["op"], 0.0) + n["share"]
    return ", ".join(f"{op} {share:.0%}" for op, share in sorted(shares.items(), key=lambda kv: -kv[1]))


def markdown(results: dict) -> str:
    """The run as Markdown: machine, goals, latency tables, overhead, cold start, sizes."""
    m, model, torch_info = results["machine"], results["model"], results["torch"]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results["started_unix"]))
    lines = [f"# edgevae bench{' (--quick)' if results['quick'] else ''}", "",
             f"`{results['command']}` - {when}, {results['elapsed_s']:.0f} s", "",
             f"- CPU: {m['cpu_model']}, {m['usable_cores']} usable cores of {m['cpu_count']}; "
             f"load average at the end {', '.join(f'{x:.2f}' for x in m['load_average'] or [])}",
             "- " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + f", Python {m['python']}",
             f"- model: {model['dir']} (latent {model['latent_dim']}; {model['flops_per_image']['encoder'] / 1e6:.1f} / "
             f"{model['flops_per_image']['decoder'] / 1e6:.1f} MFLOP per image, encoder / decoder)",
             f"- PyTorch weights: {torch_info['weights'] or 'none: ' + str(torch_info['skipped'])}{_parity(torch_info)}; torch.compile: "
             f"{torch_info['compile']['skipped'] or 'ok, %.0f s compiling' % torch_info['compile']['compile_s']}",
             "- latencies are per call (one batch); every group's candidates ran interleaved, so compare "
             "within a group; GFLOP/s counts the fp32 graph's multiply-adds for every variant, and roofline is that over "
             "the fp32 sgemm GFLOP/s measured in the same group (so int8 can exceed 1)", "",
             "## Goals", ""]
    lines += _table(["goal", "target", "measured", "detail", "met"], _goal_rows(results["goals"]))
    for graph in GRAPH_NAMES:
        lines += ["", f"## {graph.capitalize()} latency and throughput", ""]
        rows = [[r["threads"], r["batch"], r["name"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["throughput_per_s"],
                 r["gflops"], r["roofline_fraction"], r["vs_torch_eager"]]
                for r in results["latency"] if r["graph"] == graph]
        lines += _table(["threads", "batch", "engine", "p50 ms", "p90 ms", "p99 ms", "images/s", "GFLOP/s",
                         "roofline", "p50 / torch eager"], rows)
    sg = results["sgemm"]
    lines += ["", f"sgemm (torch.mm, n={results['config']['sgemm_n']}), median over groups: " +
              ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in sg["gflops_by_threads"].items())]
    oh = results["overhead"]
    lines += ["", f"## Per-call overhead (decoder, batch {oh['batch']}, {oh['threads']} thread, {oh['variant']})", ""]
    lines += _table(["call", "p50 ms", "p90 ms", "p99 ms"],
                    [[name, s["p50_ms"], s["p90_ms"], s["p99_ms"]] for name, s in oh["stats"].items()])
    lines += ["", f"Python in the runtime around session.run: {_f(oh['python_overhead_ms'])} ms; onnxruntime "
              f"allocating the output (run vs run_with_iobinding): {_f(oh['output_alloc_ms'])} ms."]
    lines += ["", "## Where the time goes (onnxruntime profiler, fp32, 1 thread)", ""]
    lines += _table(["graph", "batch", "run us (profiled)", "outside kernels", "kernel time by op type"],
                    [[p["graph"], p["batch"], p["run_us"], f"{p['outside_kernels']:.1%}", _by_op(p["nodes"])]
                     for p in results["profile"]])
    cold = results["cold_start"]
    lines += ["", "## Cold start (process start to 64 samples in a PNG), medians", ""]
    cold_rows = [[name, c.get("seconds_median"), c.get("max_rss_mib_median"), len(c.get("runs", [])),
                  c.get("command") or c.get("skipped")] for name, c in cold.items() if isinstance(c, dict)]
    lines += _table(["process", "seconds", "peak RSS MiB", "runs", "command"], cold_rows)
    lines += ["", f"Peak RSS is read by a small launcher process; figures below its own {_f(cold['rss_floor_mib'])} "
              "MiB would not show."]
    lines += ["", "## Model size", ""]
    lines += _table(["variant", "encoder bytes", "decoder bytes", "total MB"],
                    [[v, s["encoder"], s["decoder"], s["total"] / 1e6] for v, s in model["size_bytes"].items()])
    return "\n".join(lines) + "\n"


def write_results(results: dict, out) -> list:
    """Write results.json, results.md and the PNG plots into out (created if needed); their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("results.json", json.dumps(results, indent=2, allow_nan=False) + "\n"),
                       ("results.md", markdown(results))):
        write_bytes(out / name, text.encode())
        written.append(out / name)
    from .plots import plot_all

    for name, data in plot_all(results).items():
        write_bytes(out / name, data)
        written.append(out / name)
    return written
