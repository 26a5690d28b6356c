"""Export tiny VAEs of other families with edgevae's Python exporter and write the Python runtime's outputs on them,
for the JS parity tests (web/test/any_vae.test.mjs; tests/web/test_web.py runs it with EDGEVAE_ANY_VAE set).

    python web/test/make_any_vae.py OUT_DIR

OUT_DIR/<name>/ gets model/ (a model dir from edgevae.export.custom.export_vae, goldens included), golden.json
({"model", "conventions", "arrays": {name: {"file", "dims"}}}) and one raw little-endian float32 file per array:
z (latents in the model's convention), decode, x (images), mu and logvar (or mu alone for a deterministic encoder),
reconstruct (from mu), interpolate (x[0] to x[1], 5 steps), x_other and reconstruct_other (another image size the
model divides), and zt (latents whose h x w no tile divides) with decode_zt and its tiled decodes tiled_<tile>_<overlap or default>.
OUT_DIR/any_vae.json lists the names. Needs the `export` extra (torch).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # a sibling script, also when loaded by file path
from make_golden import write_arrays  # noqa: E402

# (tile, overlap) pairs; None: the runtime's default overlap (twice the receptive field, else tile // 4)
TILINGS = ((4, None), (4, 1), (5, 2), (3, 0))


def _modules(deterministic: bool):
    """A fully convolutional VAE on [3, 8, 8] images with a [4, 4, 4] latent: the encoder a 2x2 stride-2 Conv; the
    decoder a 3x3 Conv in latent space (receptive field: 1 latent pixel, so tiles see their neighbours' values),
    then a 2x2 stride-2 ConvTranspose; an unbounded Gaussian mean (clipped by the runtime) or a tanh image."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4 if deterministic else 8, 2, 2)

        def forward(self, x):
            h = self.conv(x)
            return h if deterministic else (h[:, :4], h[:, 4:] - 1.0)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.mix, self.up = nn.Conv2d(4, 8, 3, 1, 1), nn.ConvTranspose2d(8, 3, 2, 2)

        def forward(self, z):
            y = self.up(torch.nn.functional.leaky_relu(self.mix(z), 0.1))
            return torch.tanh(y) if deterministic else 2.0 * y

    torch.manual_seed(3 if deterministic else 2)
    return Encoder().eval(), Decoder().eval()


def _conventions(name: str):
    from edgevae.runtime.contract.manifest import Conventions

    if name == "signed":  # an LDM-like KL VAE: [-1, 1] pixels, Gaussian posterior and head, scaled and shifted latents
        return Conventions(pixel_range=(-1.0, 1.0), decoder_head="gaussian_mean", decoder_scale=0.1, latent_scale=0.5,
                           latent_shift=0.25, downsampling=2, receptive_field=1)
    # a TAESD-like decoder: deterministic encoder, no prior, an image head, no receptive field declared
    return Conventions(pixel_range=(-1.0, 1.0), decoder_head="image", posterior="deterministic", prior="none",
                       downsampling=2)


def write_model(out: Path, name: str) -> Path:
    """out/<name>: the exported model dir and the Python runtime's outputs on it."""
    from edgevae.export.custom import export_vae
    from edgevae.runtime import VAERuntime

    folder = out / name
    conventions = _conventions(name)
    encoder, decoder = _modules(conventions.posterior == "deterministic")
    export_vae(encoder, decoder, folder / "model", image_shape=(3, 8, 8), latent_shape=(4, 4, 4), conventions=conventions)
    rt = VAERuntime.load(folder / "model", variant="fp32", threads=1)
    rng = np.random.default_rng(0)
    arrays = {"z": 1.5 * rng.standard_normal((5, 4, 4, 4), dtype=np.float32), "x": rng.random((3, 3, 8, 8), dtype=np.float32)}
    arrays["decode"] = rt.decode(arrays["z"])
    arrays["mu"], logvar = rt.encode(arrays["x"])
    if logvar is not None:
        arrays["logvar"] = logvar
    arrays["reconstruct"] = rt.reconstruct(arrays["x"])
    arrays["interpolate"] = rt.interpolate(arrays["x"][0], arrays["x"][1], steps=5)
    arrays["x_other"] = rng.random((2, 3, 6, 10), dtype=np.float32)
    arrays["reconstruct_other"] = rt.reconstruct(arrays["x_other"])
    arrays["zt"] = rng.standard_normal((2, 4, 9, 13), dtype=np.float32)
    arrays["decode_zt"] = rt.decode(arrays["zt"])
    for tile, overlap in TILINGS:
        arrays[f"tiled_{tile}_{'default' if overlap is None else overlap}"] = rt.decode_tiled(arrays["zt"], tile=tile, overlap=overlap)
    write_arrays(folder, arrays, {"model": str((folder / "model").resolve()), "tilings": [list(t) for t in TILINGS],
                                  "conventions": conventions.__dict__ | {"pixel_range": list(conventions.pixel_range)}})
    return folder


def write_all(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    names = ["signed", "tiny"]
    for name in names:
        write_model(out, name)
    (out / "any_vae.json").write_text(json.dumps({"models": names}))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    print(write_all(parser.parse_args().out))
    sys.exit(0)
