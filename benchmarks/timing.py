"""Interleaved timing: the candidates take turns, round after round, in a fresh random order each round,
so that load from other processes (and one candidate's idle-spinning threads) falls on all of them
alike and their ratios hold on a noisy machine even when their absolute latencies do not."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """How long to time one group of candidates.

    At least min_rounds rounds; then more until budget_s has passed or max_rounds are done. In each
    round every candidate runs back-to-back calls for about segment_s (at least one), each timed on its
    own, so fast candidates give many samples and slow ones are not over-weighted. Candidates faster
    than segment_s first make one untimed settling call: with several intra-op threads, onnxruntime's
    and OpenMP's idle workers spin for a while after a call, and slowed the next engine's first small
    call by up to 30x on a loaded 2-core machine.
    """

    min_rounds: int = 10
    max_rounds: int = 200
    budget_s: float = 8.0
    segment_s: float = 0.02
    warmup_calls: int = 3


def interleave(calls: dict[str, Callable[[], object]], schedule: Schedule, seed: int = 0) -> dict[str, list[float]]:
    """Time each of calls (name -> zero-argument callable) in interleaved rounds; {name: [seconds per call]}."""
    if not calls:
        return {}
    reps = {}
    for name, fn in calls.items():
        fn()  # first call outside the clock: lazy session / kernel set-up
        warm = []
        for _ in range(schedule.warmup_calls):
            t0 = time.perf_counter()
            fn()
            warm.append(time.perf_counter() - t0)
        reps[name] = max(1, min(1000, int(schedule.segment_s / max(float(np.median(warm)), 1e-9))))
    samples = {name: [] for name in calls}
    names = list(calls)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for done in range(1, schedule.max_rounds + 1):
        for i in rng.permutation(len(names)):
            name, fn, out = names[i], calls[names[i]], samples[names[i]]
            if reps[name] > 1:  # settling call, untimed: it absorbs waking this engine's threads
                fn()
            for _ in range(reps[name]):
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
        if done >= schedule.min_rounds and time.perf_counter() - start >= schedule.budget_s:
            break
    return samples


def summarize(seconds: list[float], batch: int = 1) -> dict:
    """Latency percentiles (ms) and throughput (items/s, from the mean latency) of per-call timings."""
    if not seconds:
        raise ValueError("summarize needs at least one timing")
    ms = np.asarray(seconds) * 1e3
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    mean = float(ms.mean())
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": mean, "calls": len(seconds),
            "throughput_per_s": batch / (mean / 1e3)}


def ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is missing or zero (JSON has no inf)."""
    if a is None or not b or not math.isfinite(b):
        return None
    return a / b
