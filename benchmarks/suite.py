"""`edgevae bench`: the whole benchmark, from a model dir to results.json, results.md and plots.

For each graph (encoder, decoder), intra-op thread count and batch size, one interleaved group times
every variant through the runtime, PyTorch eager, torch.compile and a large sgemm (the roofline) side
by side; then the runtime's per-call overhead, onnxruntime's per-node profile, the cold start of a runtime and a torch process, and the
goals, each a ratio measured within this one run.
"""

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edgevae.runtime.contract.errors import InputError
from edgevae.runtime.contract.manifest import GRAPH_NAMES

from edgevae.timing import Schedule, ratio, summarize

QUICK_SCHEDULE = Schedule(min_rounds=3, max_rounds=50, budget_s=0.6, segment_s=0.01, warmup_calls=2)
GOALS = {"decoder_batch1_vs_torch_eager": 0.20, "decoder_roofline_fraction": 0.60,  # issue 12
         "cold_start_s": 0.15, "cold_start_mib": 80.0}


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. threads: intra-op thread counts (empty: 1 and all usable cores). The PyTorch side: an
    edgevae checkpoint, or torch_factory "MODULE:FACTORY" naming the user's own decoder (benchmarks/torch_decoder.py),
    or neither (edgevae's own decoder rebuilt from the fp32 graphs' weights where it can be)."""

    model_dir: Path | None
    out: Path
    checkpoint: Path | None = None
    torch_factory: str | None = None
    batch_sizes: tuple = (1, 8, 64, 256)
    threads: tuple = ()
    schedule: Schedule = field(default_factory=Schedule)
    coldstart_runs: int = 5
    sgemm_n: int = 2048
    torch_compile: bool = True
    compile_budget_s: float = 300.0
    quick: bool = False
    command: str = ""

    def quickened(self) -> "BenchConfig":
        """The --quick version: batch 1 and 64, short groups, no torch.compile; under a minute."""
        return replace(self, batch_sizes=(1, 64), schedule=QUICK_SCHEDULE, coldstart_runs=2, sgemm_n=1024,
                       torch_compile=False, quick=True)


def _thread_counts(config: BenchConfig) -> tuple:
    from .machine import usable_cores

    return tuple(sorted(set(config.threads or (1, usable_cores()))))


def _model_summary(model) -> dict:
    from .flops import graph_flops

    sizes = {v: {g: entry[g].bytes for g in GRAPH_NAMES} for v, entry in model.manifest.variants.items()}
    for entry in sizes.values():
        entry["total"] = entry["encoder"] + entry["decoder"]
    item = {"encoder": model.image_shape, "decoder": model.latent_shape}
    flops = {g: graph_flops(model.path / model.manifest.variants["fp32"][g].file, item[g]) for g in GRAPH_NAMES}
    return {"dir": str(model.path.resolve()), "latent_dim": model.latent_dim, "variants": _variants(model),
            "size_bytes": sizes, "flops_per_image": flops}


def _variants(model) -> list:
    """The variants timed, fp32 first: those with a dynamic batch (a fixed-shape sibling runs in its base's place
    at its own batch size, as in the runtime)."""
    dynamic = [v for v in model.manifest.variants if v not in model.manifest.static]
    return sorted(dynamic, key=lambda v: (v != "fp32", v))


def _time_groups(config, model, runtimes, modules, compiler, flops) -> tuple[list, list]:
    """Every (graph, threads, batch) group, interleaved; (rows, sgemm rows)."""
    import torch

    from edgevae.runtime.inference.random_input import random_input
    from edgevae.timing import interleave

    from .candidates import runtime_call, torch_call
    from .machine import sgemm_call

    sgemm, sgemm_flops = sgemm_call(config.sgemm_n)
    rows, sgemm_rows = [], []
    seed = 0
    for graph in GRAPH_NAMES:
        for threads in _thread_counts(config):
            torch.set_num_threads(threads)
            for batch in config.batch_sizes:
                array = random_input(model, graph, batch, for_api=True)  # runtime_call times the API
                calls = {("runtime", v): runtime_call(runtimes[v, threads], graph, array=array) for v in _variants(model)}
                if modules is not None and graph in modules:  # a --torch module is a decoder only
                    calls["torch", "eager"] = torch_call(modules[graph], array)
                    compiled = compiler.call(graph, array)
                    if compiled is not None:
                        calls["torch", "compile"] = compiled
                calls["sgemm", f"n={config.sgemm_n}"] = sgemm
                seed += 1
                times = interleave(calls, config.schedule, seed=seed)
                sgemm_stats = summarize(times.pop(("sgemm", f"n={config.sgemm_n}")))
                sgemm_gflops = sgemm_flops / (sgemm_stats["p50_ms"] / 1e3) / 1e9
                sgemm_rows.append({"graph": graph, "threads": threads, "batch": batch, "n": config.sgemm_n,
                                   "p50_ms": sgemm_stats["p50_ms"], "gflops": sgemm_gflops})
                group = []
                for (engine, variant), seconds in times.items():
                    stats = summarize(seconds, batch)
                    gflops = flops[graph] * batch / (stats["p50_ms"] / 1e3) / 1e9
                    group.append({"graph": graph, "threads": threads, "batch": batch, "engine": engine,
                                  "variant": variant, "name": f"{engine} {variant}", **stats, "gflops": gflops,
                                  "roofline_fraction": gflops / sgemm_gflops})
                eager = next((r["p50_ms"] for r in group if r["name"] == "torch eager"), None)
                for row in group:
                    row["vs_torch_eager"] = ratio(row["p50_ms"], eager)
                rows += group
                print(f"  {graph} threads={threads} batch={batch}: " + ", ".join(
                    f"{r['name']} {r['p50_ms']:.3g} ms" for r in group), file=sys.stderr, flush=True)
    return rows, sgemm_rows


def _goals(rows: list, cold: dict) -> dict:
    """Each goal of the benchmark issue, with the figure measured in this run and whether it is met."""
    dec1 = {r["variant"]: r["vs_torch_eager"] for r in rows
            if r["graph"] == "decoder" and r["batch"] == 1 and r["threads"] == 1 and r["engine"] == "runtime"}
    dec1 = {v: x for v, x in dec1.items() if x is not None}
    best = min(dec1, key=dec1.get) if dec1 else None
    largest = max(r["batch"] for r in rows)
    roof = {r["threads"]: r["roofline_fraction"] for r in rows
            if r["graph"] == "decoder" and r["batch"] == largest and r["name"] == "runtime fp32"}
    runtime_cold, imports = cold["runtime"], cold["imports only"]
    return {
        "decoder_batch1_vs_torch_eager": {
            "target_at_most": GOALS["decoder_batch1_vs_torch_eager"], "threads": 1, "by_variant": dec1,
            # None: no PyTorch side was timed (no weights to build it from), so the goal is not measured, not missed
            "best_variant": best, "met": dec1[best] <= GOALS["decoder_batch1_vs_torch_eager"] if best else None},
        "decoder_roofline_fraction": {
            "target_at_least": GOALS["decoder_roofline_fraction"], "variant": "fp32", "batch": largest,
            "by_threads": roof, "threads": 1,  # the goal is one thread against one-thread sgemm
            "met": roof.get(1) is not None and roof[1] >= GOALS["decoder_roofline_fraction"]},
        "cold_start": {
            "target_s": GOALS["cold_start_s"], "target_mib": GOALS["cold_start_mib"],
            "seconds": runtime_cold["seconds_median"], "max_rss_mib": runtime_cold["max_rss_mib_median"],
            "imports_floor_s": imports["seconds_median"], "imports_floor_mib": imports["max_rss_mib_median"],
            "met": runtime_cold["seconds_median"] <= GOALS["cold_start_s"]
            and runtime_cold["max_rss_mib_median"] <= GOALS["cold_start_mib"]},
    }


def _torch_side(config: BenchConfig, model, runtime, torch_decoder) -> tuple:
    """({graph: PyTorch module} or None, where they came from or why there are none), from at most one of
    config.checkpoint, config.torch_factory and torch_decoder; the user's decoder checked against the manifest."""
    from .candidates import torch_modules

    given = [name for name, value in (("--checkpoint", config.checkpoint), ("--torch", config.torch_factory),
                                      ("torch_decoder", torch_decoder)) if value is not None]
    if len(given) > 1:
        raise InputError(f"{' and '.join(given)} are two PyTorch references: pass one")
    if config.torch_factory is None and torch_decoder is None:
        return torch_modules(model, config.checkpoint)
    from .torch_decoder import load_factory, torch_decoder_for

    if torch_decoder is None:
        torch_decoder, label = load_factory(config.torch_factory)
    else:
        label = f"torch_decoder ({type(torch_decoder).__name__})"
    return {"decoder": torch_decoder_for(runtime, torch_decoder, label=label)}, label


def run_bench(config: BenchConfig, *, torch_decoder=None) -> dict:
    """Measure everything config asks for; the results dict (see results.json). Writes nothing.

    torch_decoder: the user's own PyTorch decoder as the reference (an nn.Module, or a VAE with a `decode`; what
    it takes and returns: benchmarks/torch_decoder.py), instead of config.checkpoint / config.torch_factory.
    Raises InputError for two references, or for a decoder that fails the shape or parity check, before timing.
    """
    import torch

    from edgevae.runtime import VAERuntime
    from edgevae.runtime.contract.manifest import load

    from .candidates import Compiler, check_parity
    from .coldstart import cold_start
    from .machine import describe
    from .overhead import measure_overhead
    from .profile import profile_graph

    started = time.time()
    model = load(config.model_dir)
    summary = _model_summary(model)
    threads = _thread_counts(config)
    runtimes = {(v, t): VAERuntime.load(model.path, variant=v, threads=t) for v in _variants(model) for t in threads}

    modules, source = _torch_side(config, model, runtimes["fp32", 1], torch_decoder)
    torch_info = {"weights": source if modules else None, "skipped": None if modules else source,
                  "graphs": sorted(modules or ())}
    if modules is not None:
        torch_info["parity"] = check_parity(runtimes["fp32", 1], modules, source=source)
        print(f"edgevae bench: PyTorch {source}: max abs diff vs the runtime's fp32 " + ", ".join(
            f"{g} {d:.3g}" for g, d in torch_info["parity"]["max_abs_diff"].items()) + " (decoder: images in [0, 1])",
            file=sys.stderr, flush=True)
    compiler = Compiler(modules, enabled=config.torch_compile, budget_s=config.compile_budget_s,
                        reason="skipped (--quick)" if config.quick else "skipped (no PyTorch weights)")

    print(f"edgevae bench: {len(runtimes)} runtimes, threads {threads}, batches {config.batch_sizes}",
          file=sys.stderr, flush=True)
    torch_threads = torch.get_num_threads()
    try:
        with torch.inference_mode():  # PyTorch's fastest inference path, so the baseline is a fair one
            rows, sgemm_rows = _time_groups(config, model, runtimes, modules, compiler, summary["flops_per_image"])
            torch.set_num_threads(1)
            overhead = measure_overhead(runtimes["fp32", 1], model.path, variant="fp32", schedule=config.schedule,
                                        torch_decoder=modules["decoder"] if modules else None)
    finally:
        torch.set_num_threads(torch_threads)  # the caller's setting (tests run this in-process)
    torch_info["compile"] = {"skipped": compiler.skipped, "compile_s": compiler.compile_s}
    profile_runs = {1: 50, max(config.batch_sizes): 2} if config.quick else {1: 300, max(config.batch_sizes): 10}
    profiles = [profile_graph(model, "fp32", graph=g, batch=b, runs=runs) for g in GRAPH_NAMES for b, runs in profile_runs.items()]
    own = modules is not None and "encoder" in modules  # edgevae's own decoder: torch_sample can rebuild it
    cold = cold_start(model, modules["decoder"] if own else None, runs=config.coldstart_runs,
                      torch_skipped="no PyTorch weights" if modules is None else "edgevae's own decoder only, not a --torch module")

    sgemm = {t: float(np.median([r["gflops"] for r in sgemm_rows if r["threads"] == t])) for t in threads}
    settings = asdict(config) | {"threads": list(threads)}
    for key in ("model_dir", "out", "checkpoint"):
        settings[key] = None if settings[key] is None else str(settings[key])
    return {
        "command": config.command, "quick": config.quick, "started_unix": started,
        "elapsed_s": time.time() - started, "config": settings, "machine": describe(), "model": summary,
        "torch": torch_info, "latency": rows, "sgemm": {"gflops_by_threads": sgemm, "groups": sgemm_rows},
        "overhead": overhead, "profile": profiles, "cold_start": cold, "goals": _goals(rows, cold),
    }


def _command_line(args) -> str:
    """The command that reproduces this run (from the parsed arguments, so it holds in-process too)."""
    words = ["edgevae", "bench"]
    for flag, value in (("--model", args.model), ("--out", args.out), ("--checkpoint", args.checkpoint),
                        ("--torch", args.torch)):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words + (["--quick"] if args.quick else []))


def main(args) -> None:
    """CLI entry: parse-level checks, run the benchmark, write results.json, results.md and plots."""
    from .report import write_results

    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise FileNotFoundError(f"--checkpoint {args.checkpoint} does not exist or is not a file")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a folder")
    config = BenchConfig(model_dir=args.model, out=args.out, checkpoint=args.checkpoint, torch_factory=args.torch,
                         command=_command_line(args))
    if args.quick:
        config = config.quickened()
    results = run_bench(config)
    json.dumps(results, allow_nan=False)  # fail here, before writing, if a figure is not finite
    for path in write_results(results, args.out):
        print(path)
