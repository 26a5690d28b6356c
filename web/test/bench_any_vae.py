"""Decode latency of another VAE family in the JS runtime (onnxruntime-node) against the Python runtime, 1 thread each:
the RGB 64 x 64 ResNet VAE of benchmarks/any_vae_models.py ([4, 8, 8] Gaussian latent, [-1, 1] pixels, a Gaussian
head), exported by edgevae's exporter unless --model names a dir. The two alternate within each round, so a busy
machine slows them alike; medians over repeats, then over rounds. Needs node, web/node_modules and (without
--model) the export extra.

    python web/test/bench_any_vae.py [--model DIR] [--rounds R]
"""

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

WEB = Path(__file__).resolve().parents[1]
BATCHES = ((1, 31), (16, 5))  # (batch, repeats)


def python_ms(model_dir) -> dict:
    from edgevae.runtime import VAERuntime

    rt = VAERuntime.load(model_dir, variant="fp32", threads=1)
    out = {}
    for n, reps in BATCHES:
        z = np.random.default_rng(0).standard_normal((n, *rt.latent_shape), dtype=np.float32)
        rt.decode(z)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            rt.decode(z)
            times.append((time.perf_counter() - start) * 1e3)
        out[str(n)] = statistics.median(times)
    return out


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
    result = {"model": str(model), "cpu": _cpu(), "python": {"runtime": f"onnxruntime {onnxruntime.__version__} threads=1", "ms": py},
              "node": {"runtime": runtime, "ms": js}, "node_over_python": {n: js[n] / py[n] for n in py}, "rounds": args.rounds}
    print(json.dumps(result, indent=1))
    return result


def _median(runs: list) -> dict:
    """{batch: median over rounds} of per-round {batch: ms}."""
    return {n: statistics.median(r[n] for r in runs) for n in runs[0]}


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
