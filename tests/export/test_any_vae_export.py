"""export_vae with tensor latents and declared conventions, and `export --diffusers` (issue 23): the contract
checks that refuse a module before any export work (quick), and end-to-end exports whose runtime output is
compared with the PyTorch / diffusers module itself (heavy)."""

import json

import numpy as np
import pytest
import torch
from helpers import run_cli
from torch import nn

from edgevae.benchmarks.any_vae_models import ResNetVAE, diffusers_kl, diffusers_tiny, resnet_vae
from edgevae.export.custom import ContractVAE
from edgevae.export.diffusers_import import export_diffusers, read_config
from edgevae.runtime import VAERuntime
from edgevae.runtime.contract.manifest import Conventions

SIGNED = Conventions(pixel_range=(-1.0, 1.0), decoder_head="image", prior="none", downsampling=2)


class Spatial(nn.Module):
    """x [N,3,H,W] -> (mu, logvar) [N,4,H/2,W/2]; decoder back. Deterministic when asked."""

    def __init__(self, deterministic=False, channels=4):
        super().__init__()
        self.enc, self.dec, self.deterministic = nn.Conv2d(3, 2 * channels, 2, 2), nn.ConvTranspose2d(channels, 3, 2, 2), deterministic
        self.channels = channels

    def encode(self, x):
        h = self.enc(x)
        return h[:, : self.channels] if self.deterministic else (h[:, : self.channels], h[:, self.channels:])

    def decode(self, z):
        return torch.tanh(self.dec(z))


def test_spatial_latents_and_conventions_pass_the_contract():
    m = Spatial()
    model = ContractVAE(m.encode, m.decode, image_shape=(3, 8, 8), latent_dim=None, latent_shape=(4, 4, 4), conventions=SIGNED)
    assert model.config.latent_dim == 64 and model.config.latent_shape == (4, 4, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"latent_shape": (4, 4, 5)}, r"encoder returned \[2, 4, 4, 4\]"),
    ({"latent_shape": (4, 4, 4), "latent_dim": 60}, "latent_dim 60 disagrees"),
    ({"latent_shape": (4, 4)}, "latent_shape must be"),
    ({"latent_shape": (4, 4, 4), "conventions": Conventions(downsampling=2)}, "not Bernoulli means"),
    ({"latent_shape": (4, 4, 4), "logits": True, "conventions": SIGNED}, "contradicts decoder_head"),
    ({"latent_shape": (4, 4, 4), "conventions": "signed"}, "must be edgevae.runtime.contract.manifest.Conventions"),
])
def test_modules_that_break_the_contract_are_refused_naming_the_part(kwargs, message):
    m = Spatial()
    with pytest.raises((ValueError, TypeError), match=message):
        ContractVAE(m.encode, m.decode, image_shape=(3, 8, 8), latent_dim=kwargs.pop("latent_dim", None), **kwargs)


def test_a_deterministic_encoder_must_be_declared_and_returns_one_tensor():
    m = Spatial(deterministic=True)
    with pytest.raises(ValueError, match="posterior='deterministic'"):
        ContractVAE(m.encode, m.decode, image_shape=(3, 8, 8), latent_dim=None, latent_shape=(4, 4, 4), conventions=SIGNED)
    declared = Conventions(pixel_range=(-1.0, 1.0), decoder_head="image", prior="none", downsampling=2,
                           posterior="deterministic")
    ContractVAE(m.encode, m.decode, image_shape=(3, 8, 8), latent_dim=None, latent_shape=(4, 4, 4), conventions=declared)
    with pytest.raises(ValueError, match="returns the latent alone"):
        ContractVAE(Spatial().encode, m.decode, image_shape=(3, 8, 8), latent_dim=None, latent_shape=(4, 4, 4), conventions=declared)


def test_a_fully_convolutional_declaration_is_checked_at_a_second_size():
    class FixedSize(Spatial):  # decodes only 4x4 latents: not fully convolutional though declared so
        def decode(self, z):
            return torch.tanh(self.dec(z[..., :4, :4]))

    m = FixedSize()
    with pytest.raises(ValueError, match=r"for z \[2, 4, 5, 6\]"):
        ContractVAE(m.encode, m.decode, image_shape=(3, 8, 8), latent_dim=None, latent_shape=(4, 4, 4), conventions=SIGNED)


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "has no config.json"),
    (lambda d: (d / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"})), "holds a 'UNet2DModel'"),
    (lambda d: (d / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"})), "has no weights"),
    (lambda d: (d / "config.json").write_text("{not json"), "is not valid JSON"),
])
def test_diffusers_folders_of_another_kind_are_refused_with_one_line(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(ValueError, match=message):
        read_config(tmp_path)


@pytest.mark.heavy
def test_resnet_vae_exports_and_the_runtime_applies_its_conventions(tmp_path):
    m = resnet_vae()
    from edgevae.export.custom import export_vae

    export_vae(m.encoder, m.decoder, tmp_path / "m", image_shape=m.image_shape, latent_shape=m.latent_shape,
               conventions=m.conventions)
    rt = VAERuntime.load(tmp_path / "m", variant="fp32", threads=1)
    assert rt.model.manifest.parity.sizes  # the second image size was checked
    x = np.random.default_rng(0).random((2, *ResNetVAE.image_shape), dtype=np.float32)
    with torch.no_grad():
        mu, logvar = m.encoder(torch.from_numpy(2 * x - 1))
        want = np.clip((m.decoder(mu).numpy() + 1) / 2, 0, 1)
    got_mu, got_logvar = rt.encode(x)
    np.testing.assert_allclose(got_mu, mu.numpy(), atol=1e-4)  # the export's parity tolerance
    np.testing.assert_allclose(rt.reconstruct(x), want, atol=1e-4)
    assert rt.sample(2, seed=0).shape == (2, *ResNetVAE.image_shape)  # a VAE with a prior samples


@pytest.mark.heavy
@pytest.mark.parametrize("make", [diffusers_kl, diffusers_tiny], ids=["AutoencoderKL", "AutoencoderTiny"])
def test_diffusers_export_matches_the_diffusers_module(tmp_path, make):
    vae = make()
    vae.save_pretrained(tmp_path / "src")
    done = run_cli("export", "--diffusers", tmp_path / "src", "--image-size", "32x32", "--out", tmp_path / "m")
    assert done.returncode == 0, done.stderr
    rt = VAERuntime.load(tmp_path / "m", variant="fp32", threads=1)
    scale = vae.config.scaling_factor
    x = np.random.default_rng(0).random((2, 3, 48, 32), dtype=np.float32)  # not the export's size: dynamic H, W
    with torch.no_grad():
        out = vae.encode(torch.from_numpy(2 * x - 1))
        raw = out.latents if hasattr(out, "latents") else out.latent_dist.mean
        image = vae.decode(raw).sample.numpy()
    z, logvar = rt.encode(x)
    np.testing.assert_allclose(z, raw.numpy() * scale, atol=1e-4 * scale)  # the API's latents are scaled
    assert (logvar is None) == (make is diffusers_tiny)
    np.testing.assert_allclose(rt.decode(z), np.clip((image + 1) / 2, 0, 1), atol=1e-4)
    assert rt.conventions.prior == "none" and (rt.conventions.receptive_field is not None) == (make is diffusers_tiny)
    done = run_cli("sample", "--model", tmp_path / "m", "--n", "1", "--out", tmp_path / "s.png")
    assert done.returncode == 2 and "no prior" in done.stderr
    if make is diffusers_tiny:  # a measured receptive field r: tiles overlapping by 2r give the whole decode
        r = rt.conventions.receptive_field
        big = np.random.default_rng(1).standard_normal((1, 4, 2 * r + 12, 3 * r + 7)).astype(np.float32)
        np.testing.assert_allclose(rt.decode_tiled(big, tile=2 * r + 4), rt.decode(big), atol=1e-5)


@pytest.mark.heavy
def test_diffusers_export_refuses_a_size_the_model_cannot_take(tmp_path):
    diffusers_tiny().save_pretrained(tmp_path / "src")
    with pytest.raises(ValueError, match="multiple of the model's downsampling 8"):
        export_diffusers(tmp_path / "src", tmp_path / "m", image_size=(12, 16))
    assert not (tmp_path / "m").exists()
