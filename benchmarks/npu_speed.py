"""The NPU-friendly fp32 decoder on the CPU: the model dir's fp32 decoder (ConvTranspose) against its rewrites as
stride-phase Conv (export/rewrite.py) with either interleave, timed side by side in onnxruntime with the runtime's
session options (interleaved rounds, medians), and each one's largest difference from onnx's reference evaluator
running the ConvTranspose graph (the exactness the rewrite promises: float32 summation order only).

    python -m edgevae.benchmarks.npu_speed [--model MODEL_DIR] [--threads 1] [--batches 1,64] [--budget-s 8]

Which graph is faster decides what fp32 ships for the CPU (export/variants.py: the ConvTranspose graph stays the
fp32 default; the rewrite is the fp32-npu / fp16-npu variants).
"""

import argparse

import numpy as np
import onnx

from edgevae.export.rewrite import DEPTH_TO_SPACE, TRANSPOSE, conv_transpose_as_conv
from edgevae.runtime.contract.manifest import load
from edgevae.runtime.inference.random_input import random_input
from edgevae.runtime.inference.sessions import SessionConfig, new_session

from edgevae.timing import Schedule, interleave


def main(argv=None) -> None:
    from onnx.reference import ReferenceEvaluator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model dir (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--budget-s", type=float, default=8.0, help="timing budget per batch size")
    args = parser.parse_args(argv)
    model = load(args.model)
    source = onnx.load_from_string(model.graph_bytes("fp32", "decoder"))
    graphs = {"ConvTranspose": source, "Conv+Transpose": conv_transpose_as_conv(source, TRANSPOSE),
              "Conv+DepthToSpace": conv_transpose_as_conv(source, DEPTH_TO_SPACE)}
    sessions = {name: new_session(g.SerializeToString(), config=SessionConfig(threads=args.threads)) for name, g in graphs.items()}
    name = model.manifest.io["decoder"].inputs[0]
    z = random_input(model, "decoder", 16)
    reference = ReferenceEvaluator(source).run(None, {name: z})[0]
    print("max |x_hat - reference evaluator (ConvTranspose graph)| over 16 z, in onnxruntime:")
    for label, session in sessions.items():
        print(f"  {label:<18} {float(np.abs(session.run(None, {name: z})[0] - reference).max()):.2e}")
    print(f"decoder ms, median of interleaved calls, {args.threads} thread(s); ratio = time / ConvTranspose's")
    for batch in (int(b) for b in args.batches.split(",")):
        feed = {name: random_input(model, "decoder", batch, seed=batch)}
        times = interleave({k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()}, Schedule(budget_s=args.budget_s))
        ms = {k: float(np.median(t)) * 1e3 for k, t in times.items()}
        print(f"  batch {batch:4d}: " + "  ".join(f"{k} {v:.3f} ({v / ms['ConvTranspose']:.2f}x)" for k, v in ms.items()))


if __name__ == "__main__":
    main()
