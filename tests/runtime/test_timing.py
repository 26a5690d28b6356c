"""The one interleaved timer (edgevae/timing.py) on fake clocks and fake callables: every verdict here follows
from the costs the fakes declare, none from this machine's speed."""

import time

import numpy as np
import pytest

from edgevae import timing
from edgevae.timing import Schedule, interleave, median, percentiles, summarize, thread_clock

ONCE_A_ROUND = dict(budget_s=0.0, segment_s=0.0, warmup_calls=0)  # one timed call per candidate and round


class Fake:
    """A wall clock (installed as time.perf_counter) and a CPU clock that the fake calls advance by their cost."""

    def __init__(self, monkeypatch):
        self.wall = self.cpu = 0.0
        self.log = []
        monkeypatch.setattr(timing.time, "perf_counter", lambda: self.wall)

    def call(self, name, *costs, cpu_share=1.0):
        """A callable logging `name` that costs costs[i] seconds on its i-th call (the last cost thereafter)."""
        def run():
            cost = costs[min(sum(n == name for n in self.log), len(costs) - 1)]
            self.log.append(name)
            self.wall += cost
            self.cpu += cpu_share * cost
        return run

    def rounds(self, names, setup_calls):
        """The log after the set-up calls, cut into rounds of len(names) calls."""
        body = self.log[setup_calls:]
        return [body[i:i + len(names)] for i in range(0, len(body), len(names))]


def test_rounds_interleave_every_candidate_once_in_a_varying_order(monkeypatch):
    fake = Fake(monkeypatch)
    calls = {name: fake.call(name, 0.125) for name in "abcd"}
    samples = interleave(calls, Schedule(min_rounds=8, max_rounds=8, **ONCE_A_ROUND), seed=3)
    assert fake.log[:4] == list("abcd")  # the set-up calls, in order
    rounds = fake.rounds("abcd", 4)
    assert len(rounds) == 8 and all(sorted(r) == list("abcd") for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # a fresh order, not one fixed or rotated sequence
    assert samples == {name: [0.125] * 8 for name in "abcd"}
    first = fake.log
    again = Fake(monkeypatch)
    interleave({name: again.call(name, 0.125) for name in "abcd"}, Schedule(min_rounds=8, max_rounds=8, **ONCE_A_ROUND),
               seed=np.random.default_rng(3))  # a Generator seeds it as its int does
    assert again.log == first


def test_warmup_calls_are_not_samples_and_size_the_segment(monkeypatch):
    fake = Fake(monkeypatch)
    # set-up call 1 s (lazy set-up), 3 warm-up calls of 0.25 s, then 0.25 s calls: segment 1 s -> 4 timed calls a round
    calls = {"a": fake.call("a", 1.0, 0.25, 0.25, 0.25, 0.25)}
    samples = interleave(calls, Schedule(min_rounds=2, max_rounds=2, budget_s=0.0, segment_s=1.0, warmup_calls=3))
    assert samples == {"a": [0.25] * 8}  # neither the set-up call nor the warm-ups are samples
    assert len(fake.log) == 1 + 3 + 2 * (1 + 4)  # set-up, warm-ups, then per round one settling call and 4 timed


def test_without_warmup_calls_the_setup_call_sizes_the_segment_up_to_max_reps(monkeypatch):
    fake = Fake(monkeypatch)
    calls = {"slow": fake.call("slow", 0.5), "fast": fake.call("fast", 0.0625)}
    schedule = Schedule(min_rounds=1, max_rounds=1, budget_s=0.0, segment_s=0.5, warmup_calls=0, max_reps=4)
    samples = interleave(calls, schedule)
    assert {k: len(v) for k, v in samples.items()} == {"slow": 1, "fast": 4}  # 0.5 s / 0.0625 s = 8, capped at 4
    assert fake.log.count("slow") == 1 + 1 and fake.log.count("fast") == 1 + 1 + 4  # one call a round: no settling call


def test_rounds_go_on_past_min_rounds_until_the_budget_or_max_rounds(monkeypatch):
    fake = Fake(monkeypatch)
    calls = {name: fake.call(name, 0.125) for name in "ab"}  # 0.25 s a round
    samples = interleave(calls, Schedule(min_rounds=2, max_rounds=None, budget_s=1.0, segment_s=0.0, warmup_calls=0))
    assert len(samples["a"]) == len(samples["b"]) == 4  # the budget counts from the first round, not the set-up calls
    fake = Fake(monkeypatch)
    capped = interleave({name: fake.call(name, 0.125) for name in "ab"},
                        Schedule(min_rounds=2, max_rounds=3, budget_s=1.0, segment_s=0.0, warmup_calls=0))
    assert len(capped["a"]) == 3
    fake = Fake(monkeypatch)
    floor = interleave({name: fake.call(name, 1.0) for name in "ab"}, Schedule(min_rounds=5, max_rounds=None, **ONCE_A_ROUND))
    assert len(floor["a"]) == 5  # min_rounds although the budget was spent after the first


def test_no_round_begins_after_the_deadline_even_short_of_min_rounds(monkeypatch):
    fake = Fake(monkeypatch)
    calls = {name: fake.call(name, 0.125) for name in "ab"}  # set-up ends at 0.25 s, then a round each 0.25 s
    samples = interleave(calls, Schedule(min_rounds=10, max_rounds=None, **ONCE_A_ROUND), deadline=0.6)
    assert len(samples["a"]) == len(samples["b"]) == 2  # rounds begun at 0.25 and 0.5; none at 0.75
    fake = Fake(monkeypatch)
    late = interleave({name: fake.call(name, 0.125) for name in "ab"}, Schedule(min_rounds=10, **ONCE_A_ROUND), deadline=0.0)
    assert late == {"a": [], "b": []} and fake.log == ["a", "b"]  # set-up calls only


def test_pruning_after_the_first_round_drops_the_clearly_slower(monkeypatch):
    fake = Fake(monkeypatch)
    calls = {"fast": fake.call("fast", 1.0), "close": fake.call("close", 1.5), "slow": fake.call("slow", 1.625)}
    samples = interleave(calls, Schedule(min_rounds=4, max_rounds=4, prune=1.5, **ONCE_A_ROUND))
    assert {k: len(v) for k, v in samples.items()} == {"fast": 4, "close": 4, "slow": 1}  # 1.625 > 1.5 x 1.0
    assert all(sorted(r) == ["close", "fast"] for r in fake.rounds(["fast", "close"], 3 + 3)[:3])
    fake = Fake(monkeypatch)
    unpruned = interleave({k: fake.call(k, c) for k, c in (("fast", 1.0), ("slow", 4.0))}, Schedule(min_rounds=3, max_rounds=3, **ONCE_A_ROUND))
    assert len(unpruned["slow"]) == 3  # prune=None: every candidate in every round


def test_samples_come_from_the_clock_given_and_the_budget_from_wall_time(monkeypatch):
    fake = Fake(monkeypatch)
    calls = {name: fake.call(name, 0.25, cpu_share=0.5) for name in "ab"}  # CPU time: half the wall time
    samples = interleave(calls, Schedule(min_rounds=1, max_rounds=None, budget_s=1.0, segment_s=0.0, warmup_calls=0),
                         clock=lambda: fake.cpu)
    assert samples == {"a": [0.125] * 2, "b": [0.125] * 2}  # 2 rounds of 0.5 s wall fill the 1 s budget


def test_thread_clock_is_cpu_time_for_one_thread_only():
    assert thread_clock(1)[0] is time.thread_time
    assert thread_clock(2)[0] is time.perf_counter and thread_clock(None)[1] == "wall time"


@pytest.mark.parametrize("bad", [dict(min_rounds=0), dict(min_rounds=5, max_rounds=4), dict(budget_s=-1.0),
                                 dict(segment_s=float("nan")), dict(warmup_calls=-1), dict(max_reps=0), dict(prune=0.5)])
def test_a_schedule_refuses_values_that_cannot_time(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Schedule(**bad)


def test_median_and_percentiles():
    assert median([3.0, 1.0, 2.0, 10.0]) == 2.5
    assert percentiles([1.0, 2.0, 3.0, 4.0, 5.0], (25, 50, 75)) == (2.0, 3.0, 4.0)
    with pytest.raises(ValueError):
        median([])


def test_summarize_percentiles_and_throughput():
    seconds = list(np.arange(1, 101) / 1e3)  # 1..100 ms
    s = summarize(seconds, batch=8)
    assert s["p50_ms"] == pytest.approx(50.5) and s["p90_ms"] == pytest.approx(90.1) and s["p99_ms"] == pytest.approx(99.01)
    assert s["calls"] == 100 and s["throughput_per_s"] == pytest.approx(8 / 0.0505)
    with pytest.raises(ValueError):
        summarize([])


def test_interleave_runs_every_candidate_once_per_round_in_shuffled_order():
    log = []
    calls = {name: (lambda name=name: log.append(name)) for name in "abc"}
    times = interleave(calls, Schedule(min_rounds=5, max_rounds=5, budget_s=0.0, segment_s=0.0, warmup_calls=1))
    assert {k: len(v) for k, v in times.items()} == {"a": 5, "b": 5, "c": 5}
    rounds = [log[i:i + 3] for i in range(6, len(log), 3)]  # after 2 warm-up calls each
    assert len(rounds) == 5 and all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # not always the same order
