"""The report of `quantize --search` (export/mixed.py), written beside the model dir's manifest: the JSON of every
candidate and the sensitivity rows, a markdown table, the Pareto plot (latency vs -ELBO cost) and the
sensitivity plot. Quality.settings of int8-mixed names these files."""

import json
import tempfile
from pathlib import Path

import numpy as np

GRAPHS = ("encoder", "decoder")
REPORT = "quant-search"
REPORT_FILES = {"json": ".json", "table": ".md", "pareto_plot": ".png", "sensitivity_plot": "-sensitivity.png"}


def _plain(value):
    """value with numpy scalars as Python numbers (for JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def write_report(model_dir: Path, report: dict) -> None:
    """The report files in model_dir, each written atomically (mode 0644, as every file of a model dir)."""
    from edgevae.atomic import write_bytes, write_json

    from . import sensitivity

    report.update(_plain(report))
    write_json(model_dir / f"{REPORT}.json", report, mode=0o644)
    write_bytes(model_dir / f"{REPORT}.md", format_report(report).encode(), mode=0o644)
    with tempfile.TemporaryDirectory(prefix="edgevae-plot-") as tmp:  # PNGs rendered aside, then written atomically
        plot_front(report, Path(tmp) / "front.png")
        write_bytes(model_dir / f"{REPORT}.png", (Path(tmp) / "front.png").read_bytes(), mode=0o644)
        if report["sensitivity"]:
            sensitivity.plot(report["sensitivity"], Path(tmp) / "sens.png")
            write_bytes(model_dir / f"{REPORT}-sensitivity.png", (Path(tmp) / "sens.png").read_bytes(), mode=0o644)


def format_report(report: dict) -> str:
    """The report as markdown: summary, sensitivity tables, candidates."""
    from .sensitivity import format_table

    summary = report["summary"]
    lines = ["# quantize --search", "", f"budget: {json.dumps(summary['budget'])}", "",
             f"met: {summary['met']}; chosen: {summary['chosen']}; {summary['why']}", "",
             f"search {summary['search_s']} s of {summary['budget_s']} s (timed out: {summary['timed_out']}); "
             f"timing: {summary['timing']}", ""]
    for graph in GRAPHS:
        if any(r["graph"] == graph for r in report["sensitivity"]):
            lines += [format_table(report["sensitivity"], graph), ""]
    lines += ["| candidate | PSNR dB | +nats | speedup b64 | MB | front | latency ms enc+dec b1/8/64/256 |", "|---|---:|---:|---:|---:|---|---|"]
    for c in report["candidates"]:
        lat = c.get("latency_ms")
        cells = "/".join(f"{lat['encoder'][b] + lat['decoder'][b]:.2f}" for b in lat["encoder"]) if lat else "-"
        psnr = "inf" if c["psnr_db"] is None else f"{c['psnr_db']:.2f}"
        lines.append(f"| {c['name']} | {psnr} | {c['nats']:+.3f} | {c['speedup']:.2f} | {c['bytes'] / 1e6:.2f} | "
                     f"{'yes' if c['on_front'] else ''} | {cells} |")
    return "\n".join(lines) + "\n"


def plot_front(report: dict, path: Path) -> Path:
    """Latency at batch 64 (encoder + decoder) vs -ELBO cost for every candidate; front, int8, choice marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands, summary = [c for c in report["candidates"] if not c.get("same_as")], report["summary"]
    rel = lambda c: c["ms"] / c["fp32_ms"]  # noqa: E731  (each candidate timed interleaved with fp32)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([rel(c) for c in cands], [c["nats"] for c in cands], c="lightgray", label="candidate")
    front = sorted((c for c in cands if c["on_front"]), key=rel)
    ax.plot([rel(c) for c in front], [c["nats"] for c in front], "o-", color="tab:blue", label="Pareto front")
    for name, marker, color in (("fp32", "s", "black"), ("int8", "D", "tab:orange"), (summary["chosen"], "*", "tab:red")):
        c = next((c for c in cands if c["name"] == name), None)
        if c is not None:
            ax.plot(rel(c), c["nats"], marker, color=color, markersize=12, label=f"{name} (chosen)" if name == summary["chosen"] else name)
    if summary["budget"].get("nats") is not None:
        ax.axhline(summary["budget"]["nats"], color="tab:red", linestyle=":", label="nats budget")
    ax.axvline(1 / summary["budget"]["min_speedup"], color="tab:green", linestyle=":", label="1 / min speedup")
    ax.set_yscale("symlog", linthresh=0.05)
    ax.set_ylim(bottom=min(0.0, *(c["nats"] for c in cands)) - 0.005)
    ax.set_xlabel("latency / fp32 latency, encoder + decoder at batch 64 (medians, interleaved with fp32)")
    ax.set_ylabel("-ELBO cost vs fp32, nats/image")
    ax.set_title(f"quantize --search: {len(cands)} candidates, {summary['search_s']} s")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
