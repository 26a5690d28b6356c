"""Interleaved timing, the one timer of every package: `edgevae tune`, quantize --select and --search, train's
precision probe and the benchmarks all call `interleave`, and keep only their own decisions about its samples.

The candidates take turns, round after round, in a fresh random order each round, so that load from other
processes (and one candidate's idle-spinning threads) falls on all of them alike and their ratios hold on a
noisy machine even when their absolute latencies do not. numpy and the standard library only: the torch-free
runtime imports it.
"""

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """How long to time one group of candidates.

    Each candidate first makes one untimed set-up call (lazy session or kernel set-up), then warmup_calls more
    whose median (or, with none, the set-up call's time) sizes its segment: in each round it runs back-to-back
    calls for about segment_s (at least one, at most max_reps), each timed on its own, so fast candidates give
    many samples and slow ones are not over-weighted. A segment of several calls starts with one untimed
    settling call: with several intra-op threads, onnxruntime's and OpenMP's idle workers spin for a while
    after a call, and slowed the next engine's first small call by up to 30x on a loaded 2-core machine.

    Rounds: at least min_rounds; then more until budget_s (wall time since the first round began) has passed
    or max_rounds (None: no cap) are done. prune: after the first round, a candidate whose median there is
    more than prune x the fastest's is timed no more (it cannot win, and each of its calls costs time).
    """

    min_rounds: int = 10
    max_rounds: int | None = 200
    budget_s: float = 8.0
    segment_s: float = 0.02
    warmup_calls: int = 3
    max_reps: int = 1000
    prune: float | None = None

    def __post_init__(self):
        if self.min_rounds < 1 or (self.max_rounds is not None and self.max_rounds < self.min_rounds):
            raise ValueError(f"rounds must satisfy 1 <= min_rounds <= max_rounds, got {self.min_rounds} and {self.max_rounds}")
        if not (self.budget_s >= 0 and self.segment_s >= 0):  # also refuses NaN
            raise ValueError(f"budget_s and segment_s must be seconds >= 0, got {self.budget_s} and {self.segment_s}")
        if self.warmup_calls < 0 or self.max_reps < 1:
            raise ValueError(f"warmup_calls must be >= 0 and max_reps >= 1, got {self.warmup_calls} and {self.max_reps}")
        if self.prune is not None and not self.prune >= 1:
            raise ValueError(f"prune must be a factor >= 1 or None, got {self.prune}")


def interleave(calls: dict[Hashable, Callable[[], object]], schedule: Schedule = Schedule(), *, seed=0,
               clock: Callable[[], float] | None = None, deadline: float | None = None) -> dict[Hashable, list[float]]:
    """Time each of calls (key -> zero-argument callable) in interleaved rounds: {key: [seconds per call]}.

    seed: an int or a numpy Generator for the rounds' order. clock: what a sample measures (default
    time.perf_counter, wall time; thread_clock gives the CPU time of one-thread sessions). deadline: a
    time.perf_counter value after which no round begins, even short of min_rounds (the calls themselves are
    the caller's to bound). The budget and the deadline are wall time whatever the clock."""
    clock = clock or time.perf_counter  # looked up at each call, so a test's fake perf_counter applies
    reps = {key: _segment_reps(fn, schedule, clock) for key, fn in calls.items()}
    samples = {key: [] for key in calls}
    running, order = list(calls), np.random.default_rng(seed)
    start, rounds = time.perf_counter(), 0
    while running and rounds != schedule.max_rounds:
        now = time.perf_counter()
        if (deadline is not None and now >= deadline) or (rounds >= schedule.min_rounds and now - start >= schedule.budget_s):
            break
        for i in order.permutation(len(running)):
            key = running[i]
            fn, out = calls[key], samples[key]
            if reps[key] > 1:  # settling call, untimed: it absorbs waking this candidate's threads
                fn()
            for _ in range(reps[key]):
                t0 = clock()
                fn()
                out.append(clock() - t0)
        rounds += 1
        if rounds == 1 and schedule.prune is not None:
            fastest = min(median(samples[key]) for key in running)
            running = [key for key in running if median(samples[key]) <= schedule.prune * fastest]
    return samples


def _segment_reps(fn: Callable[[], object], schedule: Schedule, clock: Callable[[], float]) -> int:
    """The set-up call and the warm-up calls of one candidate (no samples): how many calls fill its segment."""
    t0 = clock()
    fn()
    times = [clock() - t0]
    if schedule.warmup_calls:
        times = []
        for _ in range(schedule.warmup_calls):
            t0 = clock()
            fn()
            times.append(clock() - t0)
    return max(1, min(schedule.max_reps, int(schedule.segment_s / max(median(times), 1e-9))))


def thread_clock(threads: int | None) -> tuple[Callable[[], float], str]:
    """(clock, what it measures) for sessions of `threads` intra-op threads. One thread runs on the calling
    thread, so its CPU time is the kernels' time, without the waits for a core that a shared machine adds to
    wall time (wall-clock speedups of one graph varied from round to round there: docs/results.md); other
    thread counts are timed by the wall clock."""
    if threads == 1:
        return time.thread_time, "CPU time of the calling thread (1 intra-op thread)"
    return time.perf_counter, "wall time"


def median(seconds) -> float:
    """The median of timings; ValueError for none."""
    return percentiles(seconds, (50,))[0]


def percentiles(seconds, qs) -> tuple[float, ...]:
    """The qs-th percentiles (numpy's linear interpolation) of timings, in their unit; ValueError for none."""
    if len(seconds) == 0:
        raise ValueError("percentiles of no timings: time at least one call")
    return tuple(float(v) for v in np.percentile(np.asarray(seconds, dtype=np.float64), qs))


def summarize(seconds: list[float], batch: int = 1) -> dict:
    """Latency percentiles (ms) and throughput (items/s, from the mean latency) of per-call timings."""
    if not seconds:
        raise ValueError("summarize needs at least one timing")
    ms = np.asarray(seconds) * 1e3
    p50, p90, p99 = percentiles(ms, (50, 90, 99))
    mean = float(ms.mean())
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": mean, "calls": len(seconds),
            "throughput_per_s": batch / (mean / 1e3)}


def ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is missing or zero (JSON has no inf)."""
    if a is None or not b or not math.isfinite(b):
        return None
    return a / b
