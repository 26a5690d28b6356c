"""`quantize --select`: time every variant here, with the runtime's own session options, and record per
batch size the fastest variant inside the accuracy budget (the runtime's variant="auto" follows it)."""

from pathlib import Path

import numpy as np

from edgevae.runtime.contract.manifest import GRAPH_NAMES, ModelDir
from edgevae.runtime.inference.random_input import random_input
from edgevae.timing import Schedule, interleave, median

TIMING_BATCH_SIZES = (1, 8, 64, 256)
# Interleaved rounds: every variant is timed once per round, so load drift hits all alike. fp16 runs fp32
# kernels after a cast, so it times as fp32 does: on a shared machine a few long rounds let load drift make
# it look faster than fp32, while more, shorter rounds in the same wall time kept it level with fp32
# (docs/results.md, Quantization).
ROUNDS = 15
MIN_GAIN = 0.10  # a variant must beat fp32 by this much to be selected: a margin over that noise


def measure_latency(model_dir, manifest, *, variants: list[str], threads: int | None = None,
                    batch_sizes=TIMING_BATCH_SIZES, budget_s: float = 0.02) -> dict:
    """{variant: {"encoder": {batch: median ms}, "decoder": {...}}}, each figure the median of every call timed
    in ROUNDS interleaved rounds, each round a segment of calls lasting about budget_s per variant."""
    from edgevae.runtime.inference.graph_pair import GraphPair
    from edgevae.runtime.inference.sessions import SessionConfig

    model = ModelDir(Path(model_dir), manifest)  # quantize's manifest, its new files in place but not yet written
    sessions = {v: GraphPair.of_variant(model, v, config=SessionConfig(threads=threads)) for v in variants}
    return time_sessions(sessions, model, batch_sizes=batch_sizes, budget_s=budget_s)


def time_sessions(sessions: dict, model: ModelDir, *, batch_sizes=TIMING_BATCH_SIZES, budget_s: float = 0.02, rounds: int = ROUNDS,
                  clock=None) -> dict:
    """measure_latency's timing of graph pairs {name: GraphPair} of model (a contract.ModelDir: the inputs'
    shapes): {name: {graph: {batch: median ms}}}, the names interleaved in every round (edgevae.timing). clock:
    wall time by default; edgevae.timing.thread_clock(1) gives the CPU time of sessions of 1 intra-op thread,
    which ignores waits for a core."""
    schedule = Schedule(min_rounds=rounds, max_rounds=rounds, budget_s=0.0, segment_s=budget_s, warmup_calls=0)
    rng = np.random.default_rng(0)
    result = {v: {g: {} for g in GRAPH_NAMES} for v in sessions}
    for batch in batch_sizes:
        for graph in GRAPH_NAMES:
            feed = random_input(model, graph, batch, rng)
            calls = {v: pair.call(graph, feed) for v, pair in sessions.items()}
            for v, seconds in interleave(calls, schedule, seed=rng, clock=clock).items():
                result[v][graph][str(batch)] = round(median(seconds) * 1e3, 4)
    return result


def select(latency: dict, eligible: list[str]) -> dict:
    """{graph: {batch: variant}}: per graph and batch size, the fastest eligible variant among those at
    least MIN_GAIN faster than fp32; fp32 where none is. Per graph, because `sample` runs the decoder
    alone, and at batch 1 the int8 decoder can lose while the int8 encoder wins."""
    candidates = [v for v in eligible if v != "fp32" and v in latency]
    selection = {}
    for graph, fp32 in latency["fp32"].items():
        selection[graph] = {}
        for batch, fp32_ms in fp32.items():
            ms = {v: latency[v][graph][batch] for v in candidates}
            faster = [v for v in candidates if ms[v] <= (1 - MIN_GAIN) * fp32_ms]
            selection[graph][batch] = min(faster, key=ms.get) if faster else "fp32"
    return selection
