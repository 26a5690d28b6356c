"""`edgevae tune`: time, on this device, every variant inside the manifest's quality budget x intra-op threads x
execution provider x batch sizes, and write a device profile that `variant="auto"` / `threads="auto"` then follow
(device_profile.py). The providers are those onnxruntime offers here that take nodes of the model's graphs
(runtime/inference/providers.py); a fixed-shape variant is timed at its own batch size, beside its base.

For each (graph, batch size) group, every candidate (variant, threads) takes turns in interleaved rounds, in
a fresh random order each round (edgevae/timing.py), so load from other processes falls on all of them alike; within a round a
candidate runs back-to-back calls for about SEGMENT_S, each timed on its own. Medians with the 25th-75th
percentile spread are recorded; the choice is the fastest candidate, unless what the runtime ran before tuning
(timed in the same rounds) is within KEEP_MARGIN of it. The run is bounded by budget_s: each group gets a share
of what is left (session creation included) in proportion to its batch size plus 8, since a round's cost grows
with the batch, and at least MIN_ROUNDS rounds, so a heavily loaded machine or a tiny budget can overrun it --
but never past HARD_LIMIT x budget_s + HARD_SLACK_S: every call is stopped there (runtime/inference/run_guard.py), so a
hostile or hopelessly slow graph ends tune with one line instead of running for ever.
A batch size whose group could not end before that hard end (predicted from the graph's cost per input at
the smaller batches) is left out with one line, and `auto` follows the largest timed batch there.
Torch-free: the base install runs it.
"""

import dataclasses
import sys
import time

import numpy as np

from edgevae.timing import Schedule, interleave, percentiles

from .profile import FORMAT, Choice, DeviceProfile, Plan, Timing, device_identity, model_key
from ..inference.random_input import random_input
from ..contract.manifest import AUTO, FP32, GRAPH_NAMES, ModelDir
from ..contract.safe_files import escape
from ..inference.selection import static_sibling
from ..inference.graph_pair import GraphPair
from ..inference.sessions import SessionConfig
from ..contract.typed_json import short_repr

BATCH_SIZES = (1, 8, 64, 256)
DEFAULT_BUDGET_S = 20.0
MIN_ROUNDS = 3
SEGMENT_S = 0.01
MAX_REPS = 50
MIN_PSNR_DB, MAX_ELBO_REL = 35.0, 0.01  # quantize --select's default accuracy budget
# The profile keeps what the runtime ran before unless the fastest candidate beats it by more than this: the
# goal is every graph x batch within 5% of the fastest, and switching on a smaller gap chases timing noise
# (threads=2 and onnxruntime's default, the same setting on a 2-core machine, differed by up to 20% under load).
KEEP_MARGIN = 0.05
HARD_LIMIT, HARD_SLACK_S = 2.0, 10.0
MAX_BUDGET_S = 3600.0
MAX_BATCH = 4096  # a batch a device would run at once; larger ones only spend the budget on memory


def eligible_variants(model: ModelDir) -> list:
    """fp32, plus the variants --select found inside its accuracy budget, or (no --select) those whose
    measured quality is inside quantize's default budget (decoder PSNR >= 35 dB, -ELBO within 1%)."""
    m = model.manifest
    if m.latency_ms is not None:
        others = [v for v in m.latency_ms.eligible if v in m.variants]
    else:
        others = [v for v, q in m.quality.items() if v in m.variants
                  and (q.decoder_psnr_db is None or q.decoder_psnr_db >= MIN_PSNR_DB)
                  and (q.neg_elbo_rel_change is None or abs(q.neg_elbo_rel_change) <= MAX_ELBO_REL)]  # None: no likelihood
    return [FP32] + sorted(set(others) - {FP32})


def thread_counts(cores: int) -> list:
    """1 .. cores when there are at most 4; beyond that 1, 2, 4, 8, ... and cores (a sweep of every count on a
    64-core board would spend the budget on near-identical neighbours)."""
    if cores <= 4:
        return list(range(1, cores + 1))
    counts, t = {cores}, 1
    while t < cores:
        counts.add(t)
        t *= 2
    return sorted(counts)


def candidates(variants: list, threads: list, *, providers: list, was: Choice) -> list[Choice]:
    """Every (variant, threads, provider) to time for one graph and batch size, and what the runtime ran before
    tuning (e.g. onnxruntime's default threads), so that before and after are compared in one run."""
    found = [Choice(v, t, p) for p in providers for v in variants for t in threads]
    return found if was in found else [*found, was]


def pick(rows, was: Choice) -> Choice:
    """The fastest timed candidate, unless `was` (what the runtime ran before) is within KEEP_MARGIN of it."""
    best = min(rows, key=lambda r: r.median_ms)
    kept = next(r for r in rows if Choice(r.variant, r.threads, r.provider) == was)
    if kept.median_ms <= (1 + KEEP_MARGIN) * best.median_ms:
        best = kept
    return Choice(best.variant, best.threads, best.provider)


def tune(model: ModelDir, budget_s: float = DEFAULT_BUDGET_S, *, batch_sizes=BATCH_SIZES, progress: bool = True,
         providers: list | None = None) -> DeviceProfile:
    """Time every candidate on this device and return the profile (not written: see device_profile.write).
    model: a ModelDir; budget_s: seconds in (0, MAX_BUDGET_S]; batch_sizes: batch sizes to time (1..MAX_BATCH);
    progress: show a progress bar; providers: the execution providers to time (default: usable_providers of
    the fp32 graphs). InputError for a wrong argument, before anything is timed."""
    from edgevae import __version__

    from ..inference.providers import CPU, usable_providers

    budget_s, batch_sizes = _check_arguments(model, budget_s, batch_sizes, progress)
    identity = device_identity()
    started = time.perf_counter()
    hard_end = started + HARD_LIMIT * budget_s + HARD_SLACK_S
    variants, threads = eligible_variants(model), thread_counts(identity["cores"])
    if providers is None:
        providers = sorted({p for g in GRAPH_NAMES for p in usable_providers(model.graph_bytes(FP32, g))},
                           key=lambda p: p == CPU)  # the CPU's last, as in onnxruntime's order of preference
    before = Plan(AUTO, AUTO)  # what the runtime runs with no profile
    batch_sizes = sorted(set(batch_sizes) | {s.batch for s in model.manifest.static.values()})
    groups = [(g, b) for g in GRAPH_NAMES for b in batch_sizes]
    pairs, rng = {}, np.random.default_rng(0)
    choice, timings, default = {g: {} for g in GRAPH_NAMES}, {g: {} for g in GRAPH_NAMES}, {g: {} for g in GRAPH_NAMES}
    bar = _progress(len(groups), progress)
    per_item, untimed = {}, []  # graph -> fastest seconds per input so far; (graph, batch) left out
    for done, (graph, batch) in enumerate(groups):
        was = dataclasses.replace(before.choose(model, graph, batch=batch), provider=CPU)
        here = [*variants, *(s for v in variants if (s := static_sibling(model.manifest, v, batch=batch)))]  # fixed shapes: own batch
        timed = candidates(here, threads, providers=providers, was=was)
        if graph in per_item and not fits(per_item[graph] * batch, calls=len(timed), left_s=hard_end - time.perf_counter()):
            untimed.append((graph, batch))  # would be stopped at the hard end: `auto` follows the largest timed batch
            if bar is not None:
                bar.update(1)
            continue
        feed = random_input(model, graph, batch)
        calls = {}
        for c in timed:
            key = (c.variant, c.threads, c.provider)
            if key not in pairs:
                config = SessionConfig(threads=c.threads, providers=tuple(dict.fromkeys((c.provider, CPU))))
                pairs[key] = GraphPair.of_variant(model, c.variant, config=config)
            pairs[key].session(graph)  # opened now, so that building it is not timed
            calls[c] = (lambda pair=pairs[key]: pair.run_once(
                graph, feed, timeout_s=max(hard_end - time.perf_counter(), 1e-3),
                limit=f"tune stops at {HARD_LIMIT:g} x --budget-s + {HARD_SLACK_S:g} s: raise --budget-s"))
        left = max(0.0, budget_s - (time.perf_counter() - started))
        share = left * _weight(batch) / sum(_weight(b) for _, b in groups[done:])  # big batches need longer rounds
        schedule = Schedule(min_rounds=MIN_ROUNDS, max_rounds=None, budget_s=share, segment_s=SEGMENT_S, warmup_calls=0,
                            max_reps=MAX_REPS)
        samples = interleave(calls, schedule, seed=rng, deadline=hard_end)
        rows = tuple(_timing(c, s) for c, s in samples.items())
        timings[graph][str(batch)] = rows
        best = choice[graph][str(batch)] = pick(rows, was)
        per_item[graph] = min(r.median_ms for r in rows) / 1e3 / batch
        default[graph][str(batch)] = was
        if bar is not None:
            bar.set_postfix_str(f"{graph} batch {batch}: {escape(best.variant)} x{best.threads or 'default'}")
            bar.update(1)
    if bar is not None:
        bar.close()
    if untimed:
        print(f"tune: not timed, as they would not end within {HARD_LIMIT:g} x --budget-s + {HARD_SLACK_S:g} s here: "
              + ", ".join(f"{g} batch {b}" for g, b in untimed) + " (auto follows the largest timed batch size; raise "
              "--budget-s to time them)", file=sys.stderr)
    return DeviceProfile(format=FORMAT, model_key=model_key(model), **identity, choice=choice, timings=timings,
                         default=default, budget_s=float(budget_s), edgevae_version=__version__)


def fits(seconds_per_call: float, *, calls: int, left_s: float) -> bool:
    """Whether a group of `calls` candidates, each expected to take seconds_per_call (the graph's fastest cost per
    input so far x the batch), can do its MIN_ROUNDS rounds in left_s: a group that cannot would only be stopped
    at the hard end, ending the whole tune in an error (a 64x64 RGB ResNet VAE's batch 256 did so at the default
    budget on a 2-core Xeon), so it is left out instead."""
    return seconds_per_call * calls * MIN_ROUNDS <= left_s


def _check_arguments(model, budget_s, batch_sizes, progress) -> tuple:
    """(budget_s as a float, batch_sizes as a tuple of ints), or InputError naming the bad argument."""
    import math

    from ..inference.checks import check_count, check_model
    from ..contract.errors import InputError

    check_model(model)
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(budget_s) and 0 < budget_s <= MAX_BUDGET_S):
        raise InputError(f"budget_s must be a number of seconds in (0, {MAX_BUDGET_S:g}], got {short_repr(budget_s)}")
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, (list, tuple)) or not batch_sizes:
        raise InputError(f"batch_sizes must be a non-empty list of batch sizes, got {short_repr(batch_sizes)}")
    sizes = tuple(check_count(f"batch_sizes[{i}]", b) for i, b in enumerate(batch_sizes))
    if max(sizes) > MAX_BATCH:
        raise InputError(f"batch_sizes holds {max(sizes)}; at most {MAX_BATCH} is timed")
    if not isinstance(progress, (bool, np.bool_)):
        raise InputError(f"progress must be True or False, got {short_repr(progress)}")
    return float(budget_s), sizes


def _weight(batch: int) -> float:
    """A group's share of the budget: a round's cost grows with the batch; 8 stands for the per-call overhead."""
    return batch + 8.0


def _timing(c: Choice, seconds: list) -> Timing:
    p25, p50, p75 = (round(1e3 * v, 4) for v in percentiles(seconds, (25, 50, 75)))
    return Timing(variant=c.variant, threads=c.threads, median_ms=p50, p25_ms=p25, p75_ms=p75, calls=len(seconds),
                  provider=c.provider)


def _progress(total: int, enabled: bool):
    """A tqdm bar on stderr when tqdm is installed (it is optional: the base install has no tqdm)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="tuning", unit="group", file=sys.stderr, leave=False, disable=None)  # off when not a tty


def _cell(profile: DeviceProfile, graph: str, batch: str, c: Choice) -> tuple:
    row = next(r for r in profile.timings[graph][batch] if (r.variant, r.threads, r.provider) == (c.variant, c.threads, c.provider))
    threads = "default" if c.threads is None else str(c.threads)
    on = "" if c.provider in (None, "CPUExecutionProvider") else f" on {escape(c.provider.removesuffix('ExecutionProvider'))}"
    return f"{escape(c.variant)} x{threads}{on}", row


def format_table(profile: DeviceProfile) -> str:
    """Before (the runtime with no profile) and after (the profile's choice), per graph and batch size."""
    lines = [f"{'graph':<9}{'batch':>6}  {'before (no profile)':<22}{'ms':>9}  {'after (tuned)':<18}{'ms [p25-p75]':>22}{'speedup':>9}"]
    for graph, sizes in profile.choice.items():
        for batch, c in sizes.items():
            was, was_row = _cell(profile, graph, batch, profile.default[graph][batch])
            now, now_row = _cell(profile, graph, batch, c)
            spread = f"{now_row.median_ms:.3f} [{now_row.p25_ms:.3f}-{now_row.p75_ms:.3f}]"
            lines.append(f"{graph:<9}{batch:>6}  {was:<22}{was_row.median_ms:>9.3f}  {now:<18}{spread:>22}"
                         f"{was_row.median_ms / now_row.median_ms:>8.2f}x")
    return "\n".join(lines)


def main(args) -> None:
    """CLI entry: tune, write the profile (user cache, or the model dir with --in-model-dir), print the table."""
    import math
    import os

    from .profile import IN_MODEL_DIR, cache_path, write
    from ..contract.manifest import load

    if not (isinstance(args.budget_s, float) and math.isfinite(args.budget_s) and 0 < args.budget_s <= MAX_BUDGET_S):
        raise ValueError(f"--budget-s {args.budget_s} must be a number of seconds in (0, {MAX_BUDGET_S:g}]")
    model = load(args.model)
    model.verify()
    t0 = time.perf_counter()
    profile = tune(model, args.budget_s)
    path = write(model.path / IN_MODEL_DIR if args.in_model_dir else cache_path(model), profile)
    print(format_table(profile))
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""  # timings are only as quiet as the machine
    timed = sorted({r.provider for sizes in profile.timings.values() for rows in sizes.values() for r in rows})
    print(f"device profile {escape(path)} ({escape(profile.cpu_model)}, {profile.cores} cores, onnxruntime "
          f"{escape(profile.onnxruntime)}, providers timed: {escape(', '.join(timed))}; {time.perf_counter() - t0:.1f} s{load})")
