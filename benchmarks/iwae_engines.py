"""IWAE (k samples per image) in PyTorch eager vs the fp32 ONNX graphs in onnxruntime + numpy, side by side.

    python -m edgevae.benchmarks.iwae_engines [--checkpoint RUN/checkpoint.pt] [--images 50] [--k 1000]

Both engines get the same test images and the same noise (drawn in numpy, in the slices the onnxruntime
path uses), so their per-image NLLs must agree to ~1e-3 nats; the images are split into rounds that
alternate between engines, so load from other processes hits both alike. Without --checkpoint, a freshly
initialised seeded VAE is timed (speed does not depend on the weights).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgevae.export.exporter import export_model_dir
from edgevae.runtime import VAERuntime
from edgevae.runtime.inference import likelihood
from edgevae.train.checkpoint import load_model
from edgevae.train.data import DataConfig, held_out_images
from edgevae.train.loss import iwae_nll
from edgevae.train.model import VAE

FULL_TEST_SET = 10_000


def draw_noise(k: int, n: int, *, d: int, seed: int, step: int) -> np.ndarray:
    """eps [k,n,d] as likelihood.iwae_nll draws it: slices of `step` samples from one Generator."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.standard_normal((min(step, k - s), n, d), dtype=np.float32) for s in range(0, k, step)])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data-dir")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10, help="images per round (and per engine call)")
    args = parser.parse_args(argv)
    if args.checkpoint:
        model, _ = load_model(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = VAE().eval()
    x = held_out_images(DataConfig(data_dir=args.data_dir), limit=args.images)
    with tempfile.TemporaryDirectory() as tmp:
        rt = VAERuntime.load(export_model_dir(model, Path(tmp) / "m"), variant="fp32")
        times = {"torch eager": [], "onnxruntime fp32": []}
        nll = {name: [] for name in times}
        chunk = 256
        for i in range(0, len(x), args.batch):
            xb = x[i : i + args.batch]
            step = max(1, chunk // len(xb))
            eps = draw_noise(args.k, len(xb), d=rt.latent_dim, seed=i, step=step)
            t0 = time.perf_counter()
            nll["torch eager"].append(iwae_nll(model, xb, k=args.k, eps=torch.from_numpy(eps)).numpy())
            t1 = time.perf_counter()
            nll["onnxruntime fp32"].append(likelihood.iwae_nll(rt, xb.numpy(), k=args.k, rng=np.random.default_rng(i), chunk=chunk))
            t2 = time.perf_counter()
            times["torch eager"].append((t1 - t0) / len(xb))
            times["onnxruntime fp32"].append((t2 - t1) / len(xb))
            print(f"round {i // args.batch + 1}: torch {t1 - t0:.1f} s, onnxruntime {t2 - t1:.1f} s", flush=True)
    a, b = (np.concatenate(nll[name]) for name in times)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads; {len(x)} images, k={args.k}, "
          f"medians over {len(times['torch eager'])} interleaved rounds")
    print(f"mean NLL: torch {a.mean():.4f}, onnxruntime {b.mean():.4f}; max per-image difference {np.abs(a - b).max():.2e} nats")
    base = statistics.median(times["torch eager"])
    for name, t in times.items():
        per_image = statistics.median(t)
        print(f"{name:<18} {per_image * 1e3:8.1f} ms/image  {base / per_image:5.2f}x  "
              f"full test set: {per_image * FULL_TEST_SET / 60:6.1f} min")


if __name__ == "__main__":
    main()
