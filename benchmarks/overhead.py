"""Where the time of one small decoder call goes: the runtime's Python around the call, onnxruntime's
own session.run (which allocates its outputs), and session.run_with_iobinding into a preallocated output,
timed interleaved with PyTorch eager on the same input. At batch 1 the model itself takes only ~30
MFLOP, so per-call overhead decides the ratio to PyTorch there."""

import numpy as np
import onnxruntime as ort

from edgevae.runtime.contract.manifest import load
from edgevae.runtime.inference.graph_pair import GraphPair
from edgevae.runtime.inference.random_input import random_input
from edgevae.runtime.inference.sessions import SessionConfig

from edgevae.timing import Schedule, interleave, summarize


def overhead_calls(runtime, model_dir, *, variant: str, batch: int, threads: int) -> dict:
    """{name: callable} decoding the same z through three layers of the runtime's stack."""
    model = load(model_dir)
    session = GraphPair.of_variant(model, variant, config=SessionConfig(threads=threads)).session("decoder")
    name_in, name_out = model.manifest.io["decoder"].inputs[0], model.manifest.io["decoder"].outputs[0]
    z = random_input(model, "decoder", batch)
    out = np.empty((batch, *model.image_shape), np.float32)
    binding = session.io_binding()
    binding.bind_cpu_input(name_in, z)
    binding.bind_ortvalue_output(name_out, ort.OrtValue.ortvalue_from_numpy(out))
    return {
        "runtime.decode": lambda: runtime.decode(z),
        "session.run": lambda: session.run([name_out], {name_in: z}),
        "run_with_iobinding": lambda: session.run_with_iobinding(binding),
    }, z


def measure_overhead(runtime, model_dir, *, variant: str, schedule: Schedule, torch_decoder=None,
                     batch: int = 1, threads: int = 1) -> dict:
    """p50 of each layer (ms) and the differences: python = decode - run, output_alloc = run - iobinding."""
    calls, z = overhead_calls(runtime, model_dir, variant=variant, batch=batch, threads=threads)
    if torch_decoder is not None:
        from .candidates import torch_call

        calls["torch eager"] = torch_call(torch_decoder, z)
    stats = {name: summarize(s, batch) for name, s in interleave(calls, schedule, seed=1).items()}
    p50 = {name: s["p50_ms"] for name, s in stats.items()}
    return {
        "variant": variant, "batch": batch, "threads": threads, "stats": stats,
        "python_overhead_ms": p50["runtime.decode"] - p50["session.run"],
        "output_alloc_ms": p50["session.run"] - p50["run_with_iobinding"],
    }
