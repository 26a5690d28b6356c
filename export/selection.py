"""`quantize --select`: time every variant here, with the runtime's own session options, and record per
batch size the fastest variant inside the accuracy budget (the runtime's variant="auto" follows it)."""

import time

import numpy as np

from edgevae.runtime.contract.manifest import GRAPH_NAMES

TIMING_BATCH_SIZES = (1, 8, 64, 256)
# Interleaved rounds: every variant is timed once per round, so load drift hits all alike. fp16 runs fp32
# kernels after a cast, so it times as fp32 does: on a shared machine a few long rounds let load drift make
# it look faster than fp32, while more, shorter rounds in the same wall time kept it level with fp32
# (docs/results.md, Quantization).
ROUNDS = 15
MIN_GAIN = 0.10  # a variant must beat fp32 by this much to be selected: a margin over that noise


def measure_latency(model_dir, manifest, variants: list[str], threads: int | None = None,
                    batch_sizes=TIMING_BATCH_SIZES, budget_s: float = 0.02) -> dict:
    """{variant: {"encoder": {batch: median ms}, "decoder": {...}}}, each figure the median over ROUNDS
    interleaved rounds of the mean of repeated calls lasting about budget_s."""
    from edgevae.runtime.contract.manifest import ModelDir
    from edgevae.runtime.inference.graph_pair import GraphPair
    from edgevae.runtime.inference.sessions import SessionConfig

    model = ModelDir(model_dir, manifest)  # quantize's manifest, its new files in place but not yet written
    sessions = {v: GraphPair.of_variant(model, v, SessionConfig(threads=threads)) for v in variants}
    latent = manifest.latent_shape or (manifest.latent_dim,)
    return time_sessions(sessions, manifest.image_shape, latent, batch_sizes, budget_s)


def time_sessions(sessions: dict, image_shape, latent_dim: int, batch_sizes=TIMING_BATCH_SIZES,
                  budget_s: float = 0.02, rounds: int = ROUNDS, clock=time.perf_counter) -> dict:
    """measure_latency's timing of graph pairs {name: GraphPair}:
    {name: {graph: {batch: median ms}}}, every name timed once per round, rounds interleaved. clock: wall time;
    time.thread_time (this thread's CPU time) ignores waits for a core, valid for sessions of 1 intra-op thread."""
    rng = np.random.default_rng(0)
    result = {v: {g: {} for g in GRAPH_NAMES} for v in sessions}
    for batch in batch_sizes:
        feeds = {"encoder": rng.random((batch, *image_shape), dtype=np.float32),
                 "decoder": rng.standard_normal((batch, *np.atleast_1d(latent_dim))).astype(np.float32)}
        for graph, feed in feeds.items():
            variants = list(sessions)
            calls = {v: sessions[v].call(graph, feed) for v in variants}
            reps = {}
            for v in variants:  # warm up, and size the repeat count to about budget_s per timing
                start = clock()
                calls[v]()
                reps[v] = max(1, int(budget_s / max(clock() - start, 1e-6)))
            times = {v: [] for v in variants}
            for _ in range(rounds):
                for v in variants:
                    start = clock()
                    for _ in range(reps[v]):
                        calls[v]()
                    times[v].append((clock() - start) / reps[v])
            for v in variants:
                result[v][graph][str(batch)] = round(float(np.median(times[v])) * 1e3, 4)
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
