"""What folding adjacent affine layers (export/fold.py) buys: the seed model's encoder and decoder exported
with and without the fold, timed side by side in onnxruntime (the runtime's session options), interleaved.

    python -m edgevae.benchmarks.fold_speed [--checkpoint RUN/checkpoint.pt] [--threads 1]

Prints, per graph and batch size, the median ms of both graphs, their ratio and their largest difference.
"""

import argparse

import numpy as np
import torch

from edgevae.export import graphs
from edgevae.runtime.inference.sessions import SessionConfig, new_session
from edgevae.train.checkpoint import load_model
from edgevae.train.model import VAE

from edgevae.timing import Schedule, interleave

BATCH_SIZES = (1, 64, 256)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained model (default: a seeded untrained seed VAE)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = load_model(args.checkpoint)[0] if args.checkpoint else VAE()
    model.eval()
    folded, plain = graphs.export_graphs(model, metadata={}), graphs.export_graphs(model, metadata={}, fold=False)
    config = SessionConfig(threads=args.threads)
    rng = np.random.default_rng(0)
    print(f"graph    batch  unfolded ms  folded ms  folded/unfolded  max |diff|   ({args.threads} thread(s), medians)")
    for name, spec in graphs.GRAPHS.items():
        sessions = {kind: new_session(protos[name].SerializeToString(), config=config) for kind, protos in
                    (("unfolded", plain), ("folded", folded))}
        shape = model.config.image_shape if spec is graphs.ENCODER else (model.config.latent_dim,)
        for batch in BATCH_SIZES:
            feed = {spec.inputs[0]: rng.random((batch, *shape), dtype=np.float32)}
            outs = {kind: s.run(None, feed) for kind, s in sessions.items()}
            diff = max(float(np.abs(a - b).max()) for a, b in zip(outs["unfolded"], outs["folded"]))
            times = interleave({kind: (lambda s=s: s.run(None, feed)) for kind, s in sessions.items()}, Schedule())
            ms = {kind: float(np.median(t)) * 1e3 for kind, t in times.items()}
            print(f"{name:<8} {batch:5d} {ms['unfolded']:12.3f} {ms['folded']:10.3f} {ms['folded'] / ms['unfolded']:16.2f}"
                  f"  {diff:10.1e}")


if __name__ == "__main__":
    main()
