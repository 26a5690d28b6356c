"""Decode latency of another VAE family in the JS runtime (onnxruntime-node) against the Python runtime, 1 thread each:
the RGB 64 x 64 ResNet VAE of benchmarks/any_vae_models.py ([4, 8, 8] Gaussian latent, [-1, 1] pixels, a Gaussian
head), exported by edgevae's exporter unless --model names a dir. The two alternate within each round, so a busy
machine slows them alike; medians over repeats, then over rounds. Needs node, web/node_modules and (without
--model) the export extra.

    python web/test/bench_any_vae.py [--model DIR] [--rounds R]
"""

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from edgevae.cpu import cpu_model

WEB = Path(__file__).resolve().parents[1]
BATCHES = ((1, 31), (16, 5))  # (batch, repeats)


def python_ms(model_dir) -> dict:
    from edgevae.benchmarks import web_latency

    return web_latency.python_ms(model_dir, 1, variants=("fp32",), batches=BATCHES)["fp32"]


def node_ms(model_dir) -> tuple:
    batches = ",".join(f"{n}x{reps}" for n, reps in BATCHES)
    out = subprocess.run(["node", str(WEB / "test" / "bench-node.mjs"), str(model_dir), "1", batches],
                         capture_output=True, text=True, check=True, timeout=600)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return report["runtime"], report["ms"]["fp32"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model dir (default: the ResNet VAE, exported here)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    model = args.model
    if model is None:
        from edgevae.benchmarks.any_vae_models import resnet_vae
        from edgevae.export.custom import export_vae

        m = resnet_vae()
        model = export_vae(m.encoder, m.decoder, Path(tempfile.mkdtemp(prefix="edgevae-any-vae-")) / "resnet",
                           image_shape=m.image_shape, latent_shape=m.latent_shape, conventions=m.conventions)
    python, node = [], []
    for _ in range(args.rounds):
        python.append(python_ms(model))
        runtime, ms = node_ms(model)
        node.append(ms)
    import onnxruntime

    py, js = _median(python), _median(node)
    result = {"model": str(model), "cpu": cpu_model(), "python": {"runtime": f"onnxruntime {onnxruntime.__version__} threads=1", "ms": py},
              "node": {"runtime": runtime, "ms": js}, "node_over_python": {n: js[n] / py[n] for n in py}, "rounds": args.rounds}
    print(json.dumps(result, indent=1))
    return result


def _median(runs: list) -> dict:
    """{batch: median over rounds} of per-round {batch: ms}."""
    return {n: statistics.median(r[n] for r in runs) for n in runs[0]}


if __name__ == "__main__":
    main()
