"""`edgevae export --diffusers DIR`: a diffusers AutoencoderKL or AutoencoderTiny saved with `save_pretrained`
-> a validated model dir, through export_vae (export/custom.py) with the conventions read from its config.

diffusers is an optional extra (`pip install 'edgevae[diffusers]'`), imported only here, and only ever loads
the local folder (local_files_only, HF_HUB_OFFLINE): no hub download. Parity is measured against the diffusers
module itself (its own encode().latent_dist / .latents and decode().sample).

Conventions, from diffusers' own code and config:
- both: images in [-1, 1]; the decoder returns an image (no likelihood: diffusers decodes to the mean);
  latents in the API are (z - shift_factor) x scaling_factor, as a diffusion pipeline sees them; no prior
  (the KL term of AutoencoderKL is weighted ~1e-6: N(0, I) samples are not images; latents come from a
  diffusion model, decoded with `edgevae decode`); fully convolutional, downsampling 2^(stages - 1).
- AutoencoderKL: Gaussian posterior, mean and logvar (clamped to [-30, 20] by diffusers, as exported).
- AutoencoderTiny (TAESD): deterministic encoder; the decoder's receptive field is bounded (convolutions
  only) and measured here by autograd, so tiled decode knows the overlap it needs.
"""

import json
import os
from pathlib import Path

import torch
from torch import nn

from edgevae.runtime.contract.manifest import Conventions

from .validate import TOLERANCE

CLASSES = ("AutoencoderKL", "AutoencoderTiny")
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
MAX_CONFIG_BYTES = 1 << 20
DEFAULT_SIDE = 64  # native image side when the config has no sample_size (export checks parity there)
FIELD_PROBE = 48  # latent side on which the receptive field is measured; a field reaching its border is unbounded


def read_config(folder: Path) -> dict:
    """config.json of a save_pretrained folder, checked to hold a supported class and a weights file."""
    if not folder.is_dir():
        raise ValueError(f"--diffusers {folder} is not a folder")
    path = folder / "config.json"
    if not path.is_file():
        raise ValueError(f"--diffusers {folder} has no config.json (not a save_pretrained folder)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"--diffusers {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--diffusers {path} is not valid JSON ({err})") from None
    name = config.get("_class_name") if isinstance(config, dict) else None
    if name not in CLASSES:
        raise ValueError(f"--diffusers {folder} holds a {name!r}, not one of {', '.join(CLASSES)}")
    if not any((folder / w).is_file() for w in WEIGHTS):
        raise ValueError(f"--diffusers {folder} has no weights ({' or '.join(WEIGHTS)})")
    return config


def load_module(folder: Path, config: dict) -> nn.Module:
    """The diffusers module of the folder, from local files only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: from_pretrained of a local folder
    try:
        import diffusers
    except ImportError:
        raise ModuleNotFoundError("--diffusers needs the diffusers package: pip install 'edgevae[diffusers]'",
                                  name="diffusers") from None
    diffusers.utils.logging.set_verbosity_error()  # its loading advice would add lines to ours
    cls = getattr(diffusers, config["_class_name"])
    try:
        return cls.from_pretrained(str(folder), local_files_only=True).eval()
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"--diffusers {folder}: diffusers cannot load it: {first[:200]}") from None


class KLEncoder(nn.Module):
    """AutoencoderKL.encode -> (mean, logvar) of its latent_dist (quant_conv and diffusers' clamp included)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x):
        dist = self.vae.encode(x).latent_dist
        return dist.mean, dist.logvar


class TinyEncoder(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x):
        return self.vae.encode(x).latents


class Decoder(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z).sample


def downsampling_of(config: dict) -> int:
    key = "encoder_block_out_channels" if config["_class_name"] == "AutoencoderTiny" else "block_out_channels"
    stages = config.get(key)
    if not isinstance(stages, list) or not stages:
        raise ValueError(f"config.json has no {key} list")
    return 2 ** (len(stages) - 1)


@torch.no_grad()
def _probe(decoder: nn.Module, z: torch.Tensor) -> torch.Tensor:
    return decoder(z)


def receptive_field(decoder: nn.Module, *, latent_channels: int, factor: int, seeds=(0, 1)) -> int | None:
    """The decoder's receptive field radius in latent pixels, measured: the latents on which the output pixels of
    the centre latent pixel depend (non-zero gradient, union over seeded z). None when they reach the border of a
    FIELD_PROBE-wide latent: unbounded (attention) or too wide to tile usefully."""
    centre, support = FIELD_PROBE // 2, torch.zeros(FIELD_PROBE, FIELD_PROBE, dtype=torch.bool)
    for seed in seeds:
        z = torch.randn(1, latent_channels, FIELD_PROBE, FIELD_PROBE, generator=torch.Generator().manual_seed(seed))
        z.requires_grad_(True)
        out = decoder(z)
        out[..., centre * factor:(centre + 1) * factor, centre * factor:(centre + 1) * factor].sum().backward()
        support |= z.grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(support, as_tuple=True)
    radius = int(max((rows - centre).abs().max(), (cols - centre).abs().max()))
    return None if radius >= centre - 1 else max(1, radius)


def conventions_for(config: dict, vae: nn.Module) -> Conventions:
    factor = downsampling_of(config)
    tiny = config["_class_name"] == "AutoencoderTiny"
    field = receptive_field(Decoder(vae), latent_channels=config["latent_channels"], factor=factor) if tiny else None
    return Conventions(pixel_range=(-1.0, 1.0), decoder_head="image", posterior="deterministic" if tiny else "gaussian",
                       prior="none", latent_scale=float(config.get("scaling_factor") or 1.0),
                       latent_shift=float(config.get("shift_factor") or 0.0), downsampling=factor, receptive_field=field)


def image_shape_for(config: dict, image_size: tuple | None) -> tuple:
    """(C, H, W) of the export: image_size, else the config's sample_size capped at DEFAULT_SIDE (parity and goldens
    run there; the graphs take any multiple of the downsampling factor)."""
    factor = downsampling_of(config)
    if image_size is None:
        side = config.get("sample_size")
        side = side[0] if isinstance(side, (list, tuple)) else side
        side = min(int(side), DEFAULT_SIDE) if isinstance(side, int) and side > 0 else DEFAULT_SIDE
        image_size = (side, side)
    h, w = image_size
    if h % factor or w % factor or h < factor or w < factor:
        raise ValueError(f"--image-size {h}x{w} is not a positive multiple of the model's downsampling {factor}")
    return (int(config.get("in_channels", 3)), h, w)


def export_diffusers(folder, out_dir, *, image_size: tuple | None = None, images=None, force: bool = False,
                     tolerance: float = TOLERANCE) -> Path:
    """Export the AutoencoderKL / AutoencoderTiny saved in folder to out_dir (see module docstring); returns out_dir.
    ValueError naming the folder for another class, missing files, or a model that does not load."""
    from .custom import export_vae

    folder = Path(folder)
    config = read_config(folder)
    shape = image_shape_for(config, image_size)
    vae = load_module(folder, config)
    conventions = conventions_for(config, vae)
    factor = conventions.downsampling
    latent = (int(config["latent_channels"]), shape[1] // factor, shape[2] // factor)
    encoder = TinyEncoder(vae) if conventions.posterior == "deterministic" else KLEncoder(vae)
    return export_vae(encoder, Decoder(vae), out_dir, image_shape=shape, latent_shape=latent, conventions=conventions,
                      images=images, force=force, tolerance=tolerance)


def parse_size(text: str) -> tuple:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--image-size {text!r} is not HxW (e.g. 64x64)") from None
    return h, w


def main(args) -> None:
    """CLI entry of `edgevae export --diffusers DIR --out MODEL_DIR`."""
    import time

    from edgevae.runtime.contract import manifest as contract

    from .exporter import check_destination

    t0 = time.perf_counter()
    check_destination(args.out, args.force)  # before the slow part
    size = parse_size(args.image_size) if args.image_size else None
    out = export_diffusers(args.diffusers, args.out, image_size=size, force=args.force)
    m = contract.load(out).manifest
    worst = max(d for rows in m.parity.max_abs_diff.values() for outs in rows.values() for d in outs.values())
    print(f"exported {args.diffusers} -> {out} (latent {list(m.latent_shape)} at image {list(m.image_shape)}, max abs "
          f"diff vs diffusers {worst:.2g}, tolerance {m.parity.tolerance:g}; {time.perf_counter() - t0:.1f} s)")
