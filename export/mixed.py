"""`quantize --search`: the int8-mixed variant, int8 with the layers that cost most quality per millisecond
saved kept fp32, under a budget in the user's terms; every candidate measured, the Pareto front reported.

The search, bounded by SearchConfig.budget_s (checked before each candidate is built):
1. Baseline: the int8 variant's settings on both graphs (export/variants.py).
2. Settings sweep, one graph at a time (the other keeps the baseline's): calibration method (MinMax, Entropy,
   Percentile) x per-channel weights x symmetric activations. Per graph the candidate with the least
   `badness` among those at least min_speedup x fp32 wins; the two winners are combined and measured.
3. Sensitivity (export/sensitivity.py) of every group under those settings, and its kernel time fp32 vs int8.
4. Greedy: while the budget is unmet, keep fp32 the next group in order of badness added per microsecond
   saved by int8 (a group int8 makes no faster comes first); a step is kept only when it lowers the measured
   badness and keeps min_speedup. Groups interact, so each step is measured, never summed from step 3.
5. Groups whose int8 kernels profiled no faster than fp32 are tried in fp32 too (kept if measured no slower
   and no worse).
A group kept fp32 runs as the source's ConvTranspose where that profiled faster than its rewritten Conv form.
The Pareto front (with fp32 and int8) is then re-timed together at every batch size; the chosen point is the
fastest front point inside the budget at >= min_speedup by that timing, if any. Report: export/search_report.py.

badness(c) = sum over the budgets of cost / allowance: -ELBO cost in nats / budget_nats, and the decoder's
error power relative to the budget's, 10^((budget_psnr - psnr) / 10). Inside the budget iff every term <= 1.
Speed is fp32 / candidate latency of encoder + decoder at batch 64, timed interleaved with fp32 (medians).
"""

import dataclasses
import hashlib
import itertools
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevae.runtime.contract.manifest import GRAPH_NAMES
from edgevae.runtime.inference.random_input import random_input
from edgevae.timing import thread_clock

from .attention import ATTENTION_FP32
from .search_report import REPORT, REPORT_FILES, write_report
from .silu import HEAD_SIGMOID, SILU_INT8
from .variants import CALIBRATION_METHODS, DEFAULT_CALIBRATION, Int8Settings



@dataclass(frozen=True)
class SearchConfig:
    """Budget and bounds of `quantize --search`. With neither budget given, --select's defaults apply."""

    budget_psnr: float | None = None  # decoder PSNR vs fp32 (z ~ N(0, I) samples), dB, at least
    budget_nats: float | None = None  # -ELBO cost vs fp32, nats per image, at most
    min_speedup: float = 2.0  # fp32 / candidate latency at speed_batch, encoder + decoder
    budget_s: float = 600.0  # wall time for steps 1-4 (the final timing of the front comes after)
    methods: tuple[str, ...] = CALIBRATION_METHODS
    per_channel: tuple[bool, ...] = (False, True)
    symmetric: tuple[bool, ...] = (False, True)
    speed_batch: int = 64
    quick_rounds: int = 7  # interleaved rounds of each candidate's timing vs fp32 during the search
    timing_batches: tuple[int, ...] = (1, 8, 64, 256)  # the front re-timed at these (--select's TIMING_BATCH_SIZES)
    retime_rounds: int = 15  # interleaved rounds of that re-timing (selection.ROUNDS)

    def __post_init__(self):
        if self.budget_nats is not None and not self.budget_nats > 0:
            raise ValueError(f"--budget-nats {self.budget_nats} must be > 0")
        if self.min_speedup <= 0 or self.budget_s <= 0:
            raise ValueError(f"--min-speedup {self.min_speedup} and --search-budget-s {self.budget_s} must be > 0")
        unknown = [m for m in self.methods if m not in CALIBRATION_METHODS]
        if unknown:
            raise ValueError(f"calibration method {unknown[0]!r} is not one of {', '.join(CALIBRATION_METHODS)}")


@dataclass
class SearchResult:
    """What the search found: paths {graph: int8-mixed file} (empty when no candidate met the budget), the
    settings record for the manifest, and the report."""

    paths: dict
    settings: dict
    report: dict


def badness(c: dict, budget: dict) -> float:
    """Sum of cost / allowance over the budgets (see module docstring); <= 1 per term inside the budget."""
    terms = []
    if budget.get("nats") is not None:
        terms.append(max(c["nats"], 0.0) / budget["nats"])
    if budget.get("psnr_db") is not None:
        terms.append(0.0 if c["psnr_db"] is None else 10 ** ((budget["psnr_db"] - c["psnr_db"]) / 10))
    return float(sum(terms))


def meets(c: dict, budget: dict) -> bool:
    nats_ok = budget.get("nats") is None or c["nats"] <= budget["nats"]
    psnr_ok = budget.get("psnr_db") is None or c["psnr_db"] is None or c["psnr_db"] >= budget["psnr_db"]
    return nats_ok and psnr_ok


def meets_quality(quality, config: SearchConfig) -> bool:
    """A manifest Quality inside the budgets given explicitly in config (--select's own apply besides)."""
    nats = 0.0 if quality.test_neg_elbo is None else quality.test_neg_elbo - quality.test_neg_elbo_fp32
    figures = {"nats": nats, "psnr_db": quality.decoder_psnr_db}
    return meets(figures, {"nats": config.budget_nats, "psnr_db": config.budget_psnr})


def pareto_front(candidates: list[dict]) -> list[str]:
    """Names of the candidates no other beats or ties on all of latency relative to fp32 (at the speed batch,
    interleaved with it), nats cost and PSNR."""
    def key(c):
        return (c["ms"] / c["fp32_ms"], c["nats"], -(c["psnr_db"] if c["psnr_db"] is not None else 1e9))

    front = []
    for c in candidates:
        k = key(c)
        dominated = any(all(a <= b for a, b in zip(key(o), k)) and key(o) != k for o in candidates if o is not c)
        if not dominated:
            front.append(c["name"])
    return front


class Search:
    """State of one search: prepared graphs, the fp32 reference, timing sessions, and every candidate."""

    def __init__(self, model, calibration: dict, *, test_images, reference: dict, config: SearchConfig, work: Path,
                 seed: int = 0, threads: int | None = None):
        from edgevae.runtime.inference.graph_pair import GraphPair
        from edgevae.runtime.inference.sessions import SessionConfig

        from .quality import mean_neg_elbo
        from .sensitivity import prepare

        self.model, self.test, self.reference, self.config, self.work = model, test_images, reference, config, Path(work)
        self.seed, self.threads = seed, threads
        self.start = time.monotonic()
        self.deadline = self.start + config.budget_s
        self.fp32 = {g: model.path / model.manifest.variants["fp32"][g].file for g in GRAPH_NAMES}
        self.prepared = {g: prepare(g, self.fp32[g], calibration=calibration[g], work=self.work) for g in GRAPH_NAMES}
        self.fp32_timed = GraphPair.of_variant(model, "fp32", config=SessionConfig(threads=threads))
        elbo = mean_neg_elbo(reference, test_images)
        defaults = config.budget_psnr is None and config.budget_nats is None  # --select's budget (quality.within_budget)
        self.budget = {"psnr_db": 35.0 if defaults else config.budget_psnr,
                       "nats": (round(0.01 * abs(elbo), 4) if elbo is not None else None) if defaults else config.budget_nats,
                       "min_speedup": config.min_speedup, "fp32_neg_elbo": round(elbo, 4) if elbo is not None else None,
                       "source": "--select's defaults (35 dB, 1% of fp32 -ELBO)" if defaults else "--budget-psnr/--budget-nats"}
        self.candidates, self.timed_out = [], False
        self.clock, self.clock_name = thread_clock(threads)  # 1 thread: its CPU time, without waits for a core

    def time_left(self) -> bool:
        self.timed_out = self.timed_out or time.monotonic() > self.deadline
        return not self.timed_out

    def evaluate(self, name: str, settings: dict, *, why: str) -> dict:
        """Build, measure (quality, size, latency vs fp32) and record a candidate; settings {graph: Int8Settings
        or None for fp32}."""
        from edgevae.runtime.inference.graph_pair import GraphPair
        from edgevae.runtime.inference.sessions import SessionConfig

        from .selection import time_sessions
        from .sensitivity import quality_of

        paths = {}
        for g in GRAPH_NAMES:
            paths[g] = self.fp32[g] if settings[g] is None else \
                self.prepared[g].build(self.work / f"c{len(self.candidates)}.{g}.onnx", settings[g])
        digest = tuple(hashlib.sha256(Path(paths[g]).read_bytes()).hexdigest() for g in GRAPH_NAMES)
        twin = next((c for c in self.candidates if c["digest"] == digest), None)
        if twin is not None:  # e.g. Entropy calibration can find MinMax's ranges: same graphs, measured once
            c = {**twin, "name": name, "why": f"{why}; the same graphs as {twin['name']}", "same_as": twin["name"], "raw": settings}
            self.candidates.append(c)
            print(f"search {len(self.candidates):>2} {name:<40} = {twin['name']}", flush=True)
            return c
        sessions = {"fp32": self.fp32_timed, name: GraphPair.of_files(self.model, paths, config=SessionConfig(threads=self.threads))}
        ms = time_sessions(sessions, self.model, batch_sizes=(self.config.speed_batch,), rounds=self.config.quick_rounds, clock=self.clock)
        batch = str(self.config.speed_batch)
        fp32_ms, cand_ms = (sum(ms[v][g][batch] for g in GRAPH_NAMES) for v in ("fp32", name))
        c = {"name": name, "why": why, "settings": {g: _record(g, s, self.prepared[g]) for g, s in settings.items()},
             **quality_of(self.reference, GraphPair.of_files(self.model, paths), test_images=self.test, seed=self.seed),
             "bytes": sum(Path(p).stat().st_size for p in paths.values()), "ms": round(cand_ms, 4),
             "fp32_ms": round(fp32_ms, 4), "speedup": round(fp32_ms / cand_ms, 3), "paths": paths, "raw": settings,
             "digest": digest, "same_as": None}
        c["badness"] = round(badness(c, self.budget), 4)
        c["meets_budget"] = meets(c, self.budget)
        self.candidates.append(c)
        print(f"search {len(self.candidates):>2} {name:<40} PSNR {c['psnr_db'] if c['psnr_db'] is not None else 'inf':>7} dB  "
              + (f"{c['nats']:+.3f} nats" if self.budget["fp32_neg_elbo"] is not None else "(no likelihood: no nats)")
              + f"  {c['speedup']:.2f}x fp32", flush=True)
        return c

    def ok(self, c: dict) -> bool:
        return c["speedup"] >= self.config.min_speedup

    def sweep(self, base: dict) -> dict:
        """Step 2: per graph, the settings with the least badness at >= min_speedup (base's when none beats it)."""
        best = {}
        for g in ("decoder", "encoder"):
            winner = base
            for method, per_channel, symmetric in itertools.product(self.config.methods, self.config.per_channel, self.config.symmetric):
                s = Int8Settings(calibration=method, per_channel=per_channel, activation_symmetric=symmetric)
                if _same(s, base["raw"][g], g) or not self.time_left():
                    continue
                name = f"{g}:{method}{'+per-channel' if per_channel else ''}{'+symmetric' if symmetric else ''}"
                c = self.evaluate(name, {**base["raw"], g: s}, why=f"settings sweep of the {g}")
                if self.ok(c) and c["badness"] < winner["badness"]:
                    winner = c
            best[g] = winner["raw"][g]
        return best

    def greedy(self, current: dict, rows: list[dict]) -> dict:
        """Step 4: keep groups fp32 in order of badness per microsecond saved until the budget is met."""
        def score(r):
            cost = badness({"nats": r["nats"], "psnr_db": r["psnr_db"]}, self.budget)
            saved = _fp32_us(r) - r["int8_us"]
            return float("inf") if saved <= 0 else cost / saved

        order = sorted(rows, key=lambda r: (-score(r), -r["nats"]))
        kept = {g: [] for g in GRAPH_NAMES}  # the sweep's winners keep no group fp32
        for r in order:
            if current["meets_budget"] and self.ok(current) or not self.time_left():
                break
            g = r["graph"]
            trial = {**current["raw"], g: self.keeping(current["raw"][g], g, groups=[*kept[g], r["group"]], rows=rows)}
            c = self.evaluate(f"greedy {sum(map(len, kept.values())) + 1}: +fp32 {g}:{r['group'].removeprefix('node_')}", trial,
                              why=f"greedy: {r['group']} ({g}) alone in int8 cost {r['nats']:+.3f} nats, "
                              f"{r['psnr_db']} dB; int8 saves {_fp32_us(r) - r['int8_us']:.0f} us of {_fp32_us(r):.0f}")
            if self.ok(c) and c["badness"] < current["badness"]:
                kept[g].append(r["group"])
                current = c
        return current

    def free_fp32(self, current: dict, rows: list[dict]) -> dict:
        """Step 5: a group whose int8 kernels profiled no faster than its fp32 ones is tried in fp32 (kept when the
        candidate measures faster and no worse): quality for free, or speed."""
        for r in rows:
            g, record = r["graph"], current["settings"][r["graph"]]
            if r["int8_us"] < _fp32_us(r) or not isinstance(record, dict) or r["group"] in record["fp32_groups"] \
                    or not self.time_left():
                continue
            trial = {**current["raw"], g: self.keeping(current["raw"][g], g, groups=[*record["fp32_groups"], r["group"]], rows=rows)}
            c = self.evaluate(f"{current['name']} +fp32 {g}:{r['group'].removeprefix('node_')}", trial,
                              why=f"int8 profiled no faster for {r['group']} ({g}): {r['int8_us']:.0f} us vs fp32 {_fp32_us(r):.0f} us")
            if c["ms"] <= current["ms"] and c["badness"] <= current["badness"]:
                current = c
        return current

    def keeping(self, settings: Int8Settings, graph: str, *, groups: list[str], rows: list[dict]) -> Int8Settings:
        """settings with `groups` kept fp32; each as the source's ConvTranspose where that profiled faster."""
        prepared = self.prepared[graph]
        faster = {r["group"] for r in rows if r["graph"] == graph and r.get("fp32_conv_transpose_us") is not None
                  and r["fp32_conv_transpose_us"] < r["fp32_us"]}
        return dataclasses.replace(settings, fp32_nodes=_nodes(prepared, groups),
                                   keep_conv_transpose=tuple(prepared.origins[g] for g in groups if g in faster))


def _fp32_us(row: dict) -> float:
    """A group's fastest profiled fp32 form: its rewritten Conv or the source's ConvTranspose."""
    return min(row["fp32_us"], row.get("fp32_conv_transpose_us") or float("inf"))


def _nodes(prepared, names):
    from .sensitivity import fp32_nodes_of

    return fp32_nodes_of(list(prepared.groups), names)


def _same(a: Int8Settings, b: Int8Settings, graph: str) -> bool:
    norm = lambda s: dataclasses.replace(s, calibration=s.calibration or DEFAULT_CALIBRATION[graph])  # noqa: E731
    return norm(a) == norm(b)


def _record(graph: str, settings, prepared) -> dict | str:
    """How a graph of a candidate was built, for the report and the manifest."""
    if settings is None:
        return "fp32"
    kept = [g.name for g in prepared.groups if set(g.nodes) <= set(settings.fp32_nodes)] if settings.fp32_nodes else []
    return {"format": "QDQ U8S8", "calibration": settings.calibration or DEFAULT_CALIBRATION[graph],
            "percentile": settings.percentile, "per_channel": settings.per_channel,
            "activation_symmetric": settings.activation_symmetric, "fp32_groups": kept,
            "conv_transpose_kept": list(settings.keep_conv_transpose),
            "conv_transpose_groups": [g for g, o in prepared.origins.items() if o in settings.keep_conv_transpose],
            "fp32_nodes": [HEAD_SIGMOID, ATTENTION_FP32, *settings.fp32_nodes], "silu": SILU_INT8}


def search(model, calibration: dict, *, test_images, reference: dict, config: SearchConfig, seed: int = 0,
           threads: int | None = None) -> SearchResult:
    """Run the search on model (a checked contract.ModelDir) and write its report beside the manifest.

    calibration {graph: input array}, test_images and reference (quality.graph_outputs of fp32) as quantize
    builds them. The chosen candidate's graphs are copied to temporary names in the model dir (paths)."""
    from edgevae.atomic import temp_name

    from .sensitivity import group_sensitivity
    from .variants import variant_file

    with tempfile.TemporaryDirectory(prefix="edgevae-search-") as work:
        s = Search(model, calibration, test_images=test_images, reference=reference, config=config, work=Path(work), seed=seed, threads=threads)
        fp32 = s.evaluate("fp32", {g: None for g in GRAPH_NAMES}, why="reference")
        base = s.evaluate("int8", {g: Int8Settings() for g in GRAPH_NAMES}, why="whole-graph int8 (the int8 variant's settings)")
        best = s.sweep(base)
        combined = next((c for c in s.candidates if c["raw"] == best), None)
        if combined is None and s.time_left():
            combined = s.evaluate("best settings", best, why="the sweep's best settings of both graphs")
        combined = combined or base
        rows = []
        if s.time_left():
            rng = np.random.default_rng(seed)
            feeds = {g: {model.manifest.io[g].inputs[0]: random_input(model, g, config.speed_batch, rng)} for g in GRAPH_NAMES}
            rows = group_sensitivity(s.prepared, combined["raw"], reference=reference, test_images=test_images, model=model, feeds=feeds, seed=seed,
                                     deadline=s.deadline)
            current = combined if combined["meets_budget"] and s.ok(combined) else s.greedy(combined, rows)
            s.free_fp32(current, rows)
        search_s = time.monotonic() - s.start
        report, chosen = _report(s, rows, base, fp32, search_s)
        write_report(model.path, report)
        paths = {}
        if chosen is not None:
            for g in GRAPH_NAMES:
                paths[g] = temp_name(model.path / variant_file(g, "int8-mixed"))
                shutil.copyfile(chosen["paths"][g], paths[g])
    settings = {"format": "QDQ U8S8, chosen layers fp32", "search": report["summary"],
                "graphs": chosen["settings"] if chosen else None, "fp32_groups_why": _why_fp32(chosen, rows),
                "report": {k: f"{REPORT}{v}" for k, v in REPORT_FILES.items()}}
    return SearchResult(paths, settings, report)


def _why_fp32(chosen, rows: list[dict]) -> dict:
    """{graph/group: what it cost alone in int8 and what int8 saved} for every group the choice keeps fp32."""
    why = {}
    for graph, record in (chosen["settings"].items() if chosen else ()):
        for name in record["fp32_groups"] if isinstance(record, dict) else ():
            row = next((r for r in rows if r["graph"] == graph and r["group"] == name), {})
            why[f"{graph}/{name}"] = (f"alone in int8: {row.get('psnr_db')} dB, {row.get('nats', float('nan')):+.3f} nats; "
                                      f"kernel time fp32 {_fp32_us(row) if row else float('nan'):.0f} us"
                                      f"{' (as ConvTranspose)' if name in record.get('conv_transpose_groups', ()) else ''} vs int8 "
                                      f"{row.get('int8_us', float('nan')):.0f} us; kept by the greedy step because the "
                                      "measured candidate was closer to the budget")
    return why


def _report(s: Search, rows: list[dict], base: dict, fp32: dict, search_s: float) -> tuple[dict, dict | None]:
    """The report (budget, every candidate, sensitivity, why) and the chosen candidate. The front, fp32 and int8
    are re-timed together at config.timing_batches (more rounds than the search's quick timing), and the
    choice is the fastest front point inside the budget at >= min_speedup by those figures."""
    from edgevae.runtime.inference.graph_pair import GraphPair
    from edgevae.runtime.inference.sessions import SessionConfig

    from .selection import time_sessions

    points = [c for c in s.candidates if c["same_as"] is None]
    front = pareto_front(points)
    timed = [c for c in points if c["name"] in front or c is base or c is fp32]
    start = time.monotonic()
    sessions = {c["name"]: GraphPair.of_files(s.model, c["paths"], config=SessionConfig(threads=s.threads)) for c in timed}
    sizes = sorted({*s.config.timing_batches, s.config.speed_batch})
    latency = time_sessions(sessions, s.model, batch_sizes=sizes, rounds=s.config.retime_rounds, clock=s.clock)
    timing_s = time.monotonic() - start
    batch = str(s.config.speed_batch)
    total = {name: sum(lat[g][batch] for g in GRAPH_NAMES) for name, lat in latency.items()}
    for c in timed:
        c["speedup_retimed"] = round(total["fp32"] / total[c["name"]], 3)
    inside = [c for c in timed if c["meets_budget"] and c["speedup_retimed"] >= s.config.min_speedup and c is not fp32]
    chosen = min(inside, key=lambda c: total[c["name"]]) if inside else None
    candidates = [{k: v for k, v in c.items() if k not in ("paths", "raw", "digest")} | {
        "on_front": c["name"] in front, "latency_ms": latency.get(c["name"])} for c in s.candidates]
    if chosen is not None:
        why = (f"fastest of {len(inside)} Pareto-front candidate(s) inside the budget at >= {s.config.min_speedup}x fp32 "
               f"(batch {batch}, re-timed: {chosen['speedup_retimed']}x)")
    else:
        fast = [c for c in timed if c["speedup_retimed"] >= s.config.min_speedup and c is not fp32]
        closest = min(fast, key=lambda c: c["badness"]) if fast else None
        why = ("no candidate met the budget at >= {:.2f}x fp32; ".format(s.config.min_speedup)
               + (f"closest: {closest['name']} (PSNR {closest['psnr_db']} dB, {closest['nats']:+.3f} nats, "
                  f"{closest['speedup_retimed']:.2f}x re-timed)" if closest else "no front point was that fast when re-timed")
               + ("; the search ran out of time" if s.timed_out else ""))
    summary = {"budget": s.budget, "met": chosen is not None, "chosen": chosen["name"] if chosen else None, "why": why,
               "search_s": round(search_s, 1), "budget_s": s.config.budget_s, "timed_out": s.timed_out,
               "front_timing_s": round(timing_s, 1), "candidates": len(points),
               "int8": {k: base[k] for k in ("psnr_db", "nats", "speedup_retimed")},
               "chosen_figures": {k: chosen[k] for k in ("psnr_db", "nats", "speedup_retimed", "bytes")} if chosen else None,
               "timing": f"medians of {s.config.quick_rounds} rounds interleaved with fp32 at batch {s.config.speed_batch} "
                         f"during the search; the front, fp32, int8 and the choice re-timed together at "
                         f"{sizes}, {s.config.retime_rounds} rounds ({len(timed)} candidates interleaved per round)",
               "threads": s.threads, "clock": s.clock_name}
    return {"summary": summary, "sensitivity": rows, "candidates": candidates, "front": front}, chosen
