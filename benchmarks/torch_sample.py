"""The minimal PyTorch process of the cold-start comparison: the same job as `edgevae sample --n 64`
(decode 64 draws of z ~ N(0, I) and write a PNG grid), done with torch instead of the runtime.

    python -m edgevae.benchmarks.torch_sample DECODER_STATE.pt LATENT_DIM N OUT.png

The PNG is written by the same code as the runtime's, so the two processes differ only in the engine.
"""

import sys


def main(argv: list[str]) -> None:
    if len(argv) != 4:  # no argparse: this process is timed from its start, and coldstart.py alone starts it
        print("usage: python -m edgevae.benchmarks.torch_sample DECODER_STATE.pt LATENT_DIM N OUT.png", file=sys.stderr)
        sys.exit(2)
    weights, latent_dim, n, out = argv
    import torch

    from edgevae.runtime.image_io.image_files import check_output_path, write_images
    from edgevae.train.model import Decoder, VAEConfig

    state = torch.load(weights, map_location="cpu", weights_only=True)
    decoder = Decoder(VAEConfig(latent_dim=int(latent_dim)))
    if "rest.1.weight" in state:  # the folded decoder of a model dir's initializers (benchmarks/candidates.py)
        from edgevae.export.fold import FoldedDecoder

        decoder = FoldedDecoder(decoder, fold=False)
    decoder.load_state_dict(state)
    decoder.eval()
    z = torch.randn(int(n), int(latent_dim), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        images = decoder(z).numpy()
    write_images(check_output_path(out), images)


if __name__ == "__main__":
    main(sys.argv[1:])
