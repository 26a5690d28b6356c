"""train/precision.py: which training-step settings are tried, how the probe's timings decide, and the cache.
Timings are injected: no verdict here depends on this machine's speed."""

import pytest
import torch


def test_cpu_flags_only_list_the_candidates(tmp_path):
    from edgevae.cpu import _fields, cpu_flags, cpu_model
    from edgevae.train.precision import StepSetting, autocast, candidates

    names = lambda flags, precision="auto": [s.name for s in candidates(precision, "cpu", flags=flags)]  # noqa: E731
    assert names({"avx2", "amx_bf16"}) == names({"avx512_bf16"}) == ["fp32", "fp32-nchw", "bf16", "bf16-nchw"]
    assert names({"avx2", "avx512f"}) == ["fp32", "fp32-nchw"]  # emulated bf16 is never worth timing
    assert names({"amx_bf16"}, "fp32") == ["fp32"] and names(set(), "bf16") == ["bf16"]  # explicit: as asked
    assert candidates("auto", "cpu", flags=set())[0] == StepSetting("fp32", True)
    with pytest.raises(ValueError, match="precision must be one of"):
        candidates("fp16", "cpu")
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx2 amx_bf16\n\nprocessor\t: 1\n")
    assert {"avx2", "amx_bf16"} <= cpu_flags(info) and cpu_flags(tmp_path / "none") == frozenset()
    assert cpu_model(info) == "Test CPU"
    _fields.cache_clear()
    with autocast("bf16", "cpu"):
        assert torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.float32


@pytest.mark.parametrize("ms, chosen", [
    ({"fp32": [100, 101, 99], "fp32-nchw": [120, 119, 121], "bf16": [95, 96, 94], "bf16-nchw": [130] * 3}, "fp32"),  # 5%: noise
    ({"fp32": [100, 101, 99], "fp32-nchw": [120] * 3, "bf16": [60, 61, 300], "bf16-nchw": [130] * 3}, "bf16"),  # median, not mean
    ({"fp32": [100, 500, 99], "fp32-nchw": [80, 81, 82], "bf16": [101] * 3, "bf16-nchw": [130] * 3}, "fp32-nchw"),
    ({"fp32": [100] * 3, "fp32-nchw": [91] * 3}, "fp32"),  # 9% faster is not 10%
])
def test_the_probe_keeps_the_default_unless_another_is_clearly_faster(ms, chosen):
    from edgevae.train.precision import StepSetting, decide

    settings = {s.name: s for s in (StepSetting(p, c) for p in ("fp32", "bf16") for c in (True, False))}
    assert decide({settings[name]: [t / 1e3 for t in times] for name, times in ms.items()}).name == chosen


def test_the_probe_interleaves_and_its_verdict_is_cached(tmp_path, monkeypatch):
    """probe runs every setting in turn within its rounds; choose probes once per key, then reads the cache
    (the fake steps' `cost` injects timings: no verdict here depends on this machine's speed)."""
    from edgevae.train import precision
    from edgevae.train.precision import StepSetting, choose

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fast, slow = StepSetting("bf16", True), StepSetting("fp32", True)
    calls, clock = [], [0.0]
    monkeypatch.setattr(precision.time, "perf_counter", lambda: clock[0])

    def step(setting, cost):
        def run():
            calls.append(setting.name)
            clock[0] += cost
        return run

    steps_for = lambda: {slow: step(slow, 0.2), fast: step(fast, 0.1)}  # noqa: E731
    setting, record = choose([slow, fast], steps_for, device="cpu", shape={"batch_size": 8})
    assert setting == fast and record["probed"] and record["median_ms"] == pytest.approx({"fp32": 200.0, "bf16": 100.0})
    assert calls[:4] == ["fp32", "bf16", "fp32", "bf16"]  # warm-up, then the first round
    assert calls.count("fp32") == 2  # 2x slower than bf16 in the first round: pruned after it
    assert precision.MIN_ROUNDS + 1 <= calls.count("bf16") <= precision.MAX_ROUNDS + 1
    close = {slow: step(slow, 0.1), fast: step(fast, 0.105)}  # within PRUNE: both timed in every round, in turn
    calls.clear()
    timings = precision.probe(close, budget_s=0.0)
    assert calls.count("fp32") == calls.count("bf16") == precision.MIN_ROUNDS + 1
    assert precision.decide(timings) == slow  # bf16 is not faster: fp32 kept
    calls.clear()
    again, record = choose([slow, fast], steps_for, device="cpu", shape={"batch_size": 8})
    assert again == fast and not record["probed"] and calls == []  # cached: no probe
    other, record = choose([slow, fast], steps_for, device="cpu", shape={"batch_size": 16})
    assert record["probed"]  # another step shape is another verdict
    (next((tmp_path / "edgevae" / "train-probe").iterdir())).write_text("{not json")
    assert choose([slow], steps_for, device="cpu", shape={})[0] == slow  # one candidate: nothing to probe
