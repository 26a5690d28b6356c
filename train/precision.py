"""Precision and memory layout of the training step: `--precision auto|fp32|bf16`, settled by measurement.

bf16 runs the network's convolutions and matmuls under torch.autocast (oneDNN on CPU, cuDNN/cuBLAS on
CUDA); the weights, the optimizer state and the loss stay fp32 (train/loss.py casts the network's
outputs back to fp32 before the BCE and KL sums, which add up 784 terms per image).

A CPU flag says what the hardware offers, not what is faster: on an AMD Zen 4 (avx512_bf16, no AMX) bf16
autocast trained slower end to end than fp32, and channels_last pays on some CPUs and not others
(docs/results.md, Training). So the flags only decide which settings are worth trying (`candidates`), and
`probe` times the real training step of each -- the run's own model, batch size and images, interleaved
rounds, medians, a few seconds at most -- before the first epoch. `decide` keeps fp32 with channels_last unless
another setting is more than MARGIN faster: bf16 must earn its lower precision. The verdict is cached per CPU,
torch version, threads and step shape ($XDG_CACHE_HOME/edgevae/train-probe), so later runs on this machine
make the same choice without probing; the checkpoint stores it, so `--resume` replays it bit for bit; the run
folder's probe.json records the timings behind it.
"""

import contextlib
import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass

import torch

PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
MARGIN = 0.10  # another setting must be this much faster than the default to replace it (timing noise is ~5%)
PROBE_BUDGET_S = 4.0
MIN_ROUNDS, MAX_ROUNDS = 3, 12
PRUNE = 1.5


@dataclass(frozen=True)
class StepSetting:
    """How the training step runs: "fp32" or "bf16" autocast, and the activations' memory layout."""

    precision: str = "fp32"
    channels_last: bool = True

    @property
    def name(self) -> str:
        return self.precision + ("" if self.channels_last else "-nchw")

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


DEFAULT = StepSetting()


def native_bf16(device: str, flags=None) -> bool:
    """Whether `device` ("cpu" or "cuda") offers bf16 convolutions and matmuls in hardware."""
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    from edgevae.cpu import cpu_flags

    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def candidates(precision: str, device: str, *, flags=None) -> list[StepSetting]:
    """The settings worth timing, the default first: for auto, fp32 and (with native bf16 only: oneDNN emulates
    it otherwise, far slower: docs/results.md, Training) bf16, each with and without channels_last. An explicit
    precision is taken as it is, with channels_last: nothing to probe."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return [StepSetting(precision, True)]
    precisions = ["fp32"] + (["bf16"] if native_bf16(device, flags) else [])
    return [StepSetting(p, layout) for p in precisions for layout in (True, False)]


def decide(timings: dict) -> StepSetting:
    """The setting to train with, from {StepSetting: [seconds per step]}: the first candidate (fp32 with
    channels_last for auto) unless another's median is more than MARGIN below its median."""
    medians = {setting: statistics.median(times) for setting, times in timings.items()}
    keep = next(iter(medians))
    best = min(medians, key=medians.get)
    return best if medians[best] < (1 - MARGIN) * medians[keep] else keep


def probe(steps: dict, budget_s: float = PROBE_BUDGET_S) -> dict:
    """{setting: [seconds of each timed call]} for {setting: a function running one training step}: one untimed
    warm-up call each (oneDNN builds its kernels then), then one call each per round, in a fresh order each round
    so that load from other processes falls on all alike, until budget_s has passed and MIN_ROUNDS are done, or
    MAX_ROUNDS (edgevae.timing). After the first round a setting more than PRUNE x slower than the fastest is
    timed no more: it cannot win, and on a loaded machine each of its steps costs seconds."""
    from edgevae.timing import Schedule, interleave

    schedule = Schedule(min_rounds=MIN_ROUNDS, max_rounds=MAX_ROUNDS, budget_s=budget_s, segment_s=0.0, warmup_calls=0,
                        prune=PRUNE)
    return interleave(steps, schedule)


def cache_key(settings: list, device: str, *, shape: dict) -> str:
    """What a verdict depends on: the CPU, torch and its threads, the device, the settings tried and the step's
    shape (image shape, latent size, batch size)."""
    from edgevae.cpu import cpu_flags, cpu_model

    facts = {"cpu": cpu_model(), "flags": sorted(cpu_flags()), "torch": torch.__version__,
             "threads": torch.get_num_threads(), "device": device, "settings": [s.name for s in settings], **shape}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def read_cached(key: str, settings: list) -> dict | None:
    """The cached record for key, or None when there is none or it is unreadable or not one of ours."""
    from edgevae.cpu import cache_dir

    try:
        record = json.loads((cache_dir("train-probe") / f"{key}.json").read_text())
        names = {s.name: s for s in settings}
        if record["choice"] in names and set(record["median_ms"]) == set(names):
            return record | {"setting": names[record["choice"]]}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def choose(settings: list, steps_for, *, device: str, shape: dict) -> tuple[StepSetting, dict]:
    """(the setting to train with, the record of how it was chosen). One candidate needs no probe; a cached
    verdict for this key is reused; otherwise steps_for() gives {setting: step function} and probe times them."""
    from edgevae.atomic import write_json
    from edgevae.cpu import cache_dir

    if len(settings) == 1:
        return settings[0], {"choice": settings[0].name, "probed": False, "why": "only candidate"}
    key = cache_key(settings, device, shape=shape)
    cached = read_cached(key, settings)
    if cached is not None:
        setting = cached.pop("setting")
        return setting, cached | {"probed": False, "why": f"cached verdict {key}"}
    start = time.perf_counter()
    timings = probe(steps_for())
    setting = decide(timings)
    record = {"choice": setting.name, "median_ms": {s.name: 1e3 * statistics.median(t) for s, t in timings.items()},
              "steps": {s.name: len(t) for s, t in timings.items()}, "probe_s": time.perf_counter() - start,
              "settings": {s.name: asdict(s) for s in settings}}
    with contextlib.suppress(OSError):  # a read-only home only costs the next run its probe
        path = cache_dir("train-probe") / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, record)
    return setting, record | {"probed": True, "why": f"probed, cached as {key}"}


def autocast(precision: str, device: str):
    """The context to run the network's forward pass in, for a resolved precision ("fp32" or "bf16")."""
    if precision == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()
