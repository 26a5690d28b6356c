"""Where a graph's time goes inside onnxruntime: its built-in profiler over repeated runs, with the
session options the runtime uses, summed per node. "outside kernels" is the part of each run spent
between kernels (allocation, scheduling), i.e. what IO binding or fewer nodes could still save."""

import json
import os
import tempfile
from collections import defaultdict

import numpy as np
import onnxruntime as ort

from edgevae.runtime.sessions import SessionConfig, session_options

from .candidates import inputs

KERNEL_SUFFIX = "_kernel_time"


def profile_graph(model, variant: str, graph: str, batch: int, runs: int, threads: int = 1) -> dict:
    """{"batch", "run_us" (median per run), "outside_kernels", "nodes": [{"node", "op", "us", "share"}]}."""
    options = session_options(SessionConfig(threads=threads))
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="edgevae-profile-") as tmp:
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(model.graph_bytes(variant, graph), options, providers=["CPUExecutionProvider"])
        feed = {model.manifest.io[graph].inputs[0]: inputs(graph, batch, model.latent_dim, model.image_shape)}
        for _ in range(runs):
            session.run(None, feed)
        with open(session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    kernel_us, op_of, run_us = defaultdict(float), {}, []
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith(KERNEL_SUFFIX):
            node = e["name"][: -len(KERNEL_SUFFIX)]
            kernel_us[node] += e["dur"]
            op_of[node] = e.get("args", {}).get("op_name", "?")
        elif e.get("cat") == "Session" and e["name"] == "model_run":
            run_us.append(e["dur"])
    total = sum(run_us)
    nodes = [{"node": n, "op": op_of[n], "us": us / len(run_us), "share": us / total}
             for n, us in sorted(kernel_us.items(), key=lambda kv: -kv[1])]
    return {"variant": variant, "graph": graph, "batch": batch, "threads": threads, "runs": len(run_us),
            "run_us": float(np.median(run_us)), "outside_kernels": 1.0 - sum(kernel_us.values()) / total,
            "nodes": nodes}
