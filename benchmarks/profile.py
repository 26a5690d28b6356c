"""Where a graph's time goes inside onnxruntime: its built-in profiler over repeated runs, with the
session options the runtime uses, summed per node. "outside kernels" is the part of each run spent
between kernels (allocation, scheduling), i.e. what IO binding or fewer nodes could still save."""

from collections import defaultdict

import numpy as np

from edgevae.runtime.inference.random_input import random_input
from edgevae.runtime.inference.sessions import SessionConfig, profile


def profile_graph(model, variant: str, *, graph: str, batch: int, runs: int, threads: int = 1) -> dict:
    """{"batch", "run_us" (median per run), "outside_kernels", "nodes": [{"node", "op", "us", "share"}]}."""
    feed = {model.manifest.io[graph].inputs[0]: random_input(model, graph, batch)}
    kernels, run_us = profile(model.graph_bytes(variant, graph), feed, runs=runs, config=SessionConfig(threads=threads))
    kernel_us, op_of = defaultdict(float), {}
    for node, op, us in kernels:
        kernel_us[node] += us
        op_of[node] = op
    total = sum(run_us)
    nodes = [{"node": n, "op": op_of[n], "us": us / len(run_us), "share": us / total}
             for n, us in sorted(kernel_us.items(), key=lambda kv: -kv[1])]
    return {"variant": variant, "graph": graph, "batch": batch, "threads": threads, "runs": len(run_us),
            "run_us": float(np.median(run_us)), "outside_kernels": 1.0 - sum(kernel_us.values()) / total,
            "nodes": nodes}
