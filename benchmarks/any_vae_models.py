"""The VAE families of issue 23 that are not edgevae's own, as small PyTorch modules built in code: what tests and
benchmarks/any_vae.py export, quantize and time. Weights are seeded initialisations (no training): export,
parity, int8 error and speed depend on the architecture and the value ranges, which these reproduce.

- MLPVAE: pytorch/examples vae/main.py (784-400-20, Bernoulli means, flat latent).
- ResNetVAE: RGB 64x64 ResNet VAE (GroupNorm + SiLU residual blocks, nearest Upsample + Conv), a spatial
  Gaussian latent [4, 8, 8], images in [-1, 1], a Gaussian decoder head: fully convolutional (factor 8).
- tiny diffusers AutoencoderKL / AutoencoderTiny configs (diffusers_kl, diffusers_tiny), saved with save_pretrained.
"""

import torch
import torch.nn.functional as F
from torch import nn

from edgevae.runtime.contract.manifest import Conventions


class MLPVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def encode(self, x):  # [N,1,28,28] -> mu, logvar [N,20]
        h1 = F.relu(self.fc1(x.reshape(-1, 784)))
        return self.fc21(h1), self.fc22(h1)

    def decode(self, z):  # [N,20] -> Bernoulli means [N,784]
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> Conv, twice, plus the input (a 1x1 Conv when the width changes)."""

    def __init__(self, cin: int, cout: int, *, groups: int = 8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class ResNetEncoder(nn.Module):
    def __init__(self, widths=(32, 64, 64), latent_channels: int = 4):
        super().__init__()
        layers, cin = [nn.Conv2d(3, widths[0], 3, 1, 1)], widths[0]
        for width in widths:  # each stage halves H and W: 64 -> 8 after three
            layers += [ResBlock(cin, width), nn.Conv2d(width, width, 3, 2, 1)]
            cin = width
        layers += [ResBlock(cin, cin), nn.GroupNorm(8, cin), nn.SiLU(), nn.Conv2d(cin, 2 * latent_channels, 3, 1, 1)]
        self.net, self.latent_channels = nn.Sequential(*layers), latent_channels

    def forward(self, x):  # [N,3,H,W] in [-1,1] -> mu, logvar [N,4,H/8,W/8]
        h = self.net(x)
        return h[:, : self.latent_channels], h[:, self.latent_channels :]


class ResNetDecoder(nn.Module):
    def __init__(self, widths=(64, 64, 32), latent_channels: int = 4):
        super().__init__()
        layers, cin = [nn.Conv2d(latent_channels, widths[0], 3, 1, 1), ResBlock(widths[0], widths[0])], widths[0]
        for width in widths:  # each stage doubles H and W
            layers += [ResBlock(cin, width), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, 1, 1)]
            cin = width
        layers += [nn.GroupNorm(8, cin), nn.SiLU(), nn.Conv2d(cin, 3, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):  # [N,4,h,w] -> Gaussian mean [N,3,8h,8w] in about [-1,1]
        return self.net(z)


class ResNetVAE(nn.Module):
    image_shape = (3, 64, 64)
    latent_shape = (4, 8, 8)
    conventions = Conventions(pixel_range=(-1.0, 1.0), decoder_head="gaussian_mean", decoder_scale=0.1, downsampling=8)

    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = ResNetEncoder(), ResNetDecoder()


def seed_vae(seed: int = 0) -> nn.Module:
    """edgevae's own network at its defaults, seeded (benchmarks/any_vae.py exports it)."""
    from edgevae.train.model import VAE, VAEConfig

    torch.manual_seed(seed)
    return VAE(VAEConfig()).eval()


def seed_decoder() -> nn.Module:
    """`edgevae bench --torch edgevae.benchmarks.any_vae_models:seed_decoder`: the decoder seed_vae() exports."""
    return seed_vae().decoder


def resnet_vae(seed: int = 0) -> ResNetVAE:
    torch.manual_seed(seed)
    return ResNetVAE().eval()


def resnet_decoder() -> nn.Module:
    """`edgevae bench --torch edgevae.benchmarks.any_vae_models:resnet_decoder`: the decoder resnet_vae() exports."""
    return resnet_vae().decoder


def mlp_vae(seed: int = 0) -> MLPVAE:
    torch.manual_seed(seed)
    return MLPVAE().eval()


def mlp_decoder() -> nn.Module:
    """The MLP VAE's decoder as a module (its decode method), for `bench --torch`."""
    model = mlp_vae()

    class Decode(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, z):
            return self.model.decode(z).reshape(-1, 1, 28, 28)

    return Decode().eval()


def diffusers_kl(*, seed: int = 0, blocks: tuple = (32, 64), latent_channels: int = 4, groups: int = 8):
    """A tiny random diffusers AutoencoderKL (downsampling 2^(len(blocks)-1)); diffusers imported here only."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(blocks),
                         up_block_types=("UpDecoderBlock2D",) * len(blocks), block_out_channels=blocks,
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=groups,
                         sample_size=32, scaling_factor=0.18215).eval()


def diffusers_tiny(*, seed: int = 0, channels: int = 16, blocks: int = 1, latent_channels: int = 4):
    """A tiny random diffusers AutoencoderTiny (TAESD's layout, narrower: downsampling 8)."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    return AutoencoderTiny(in_channels=3, out_channels=3, encoder_block_out_channels=(channels,) * 4,
                           decoder_block_out_channels=(channels,) * 4, num_encoder_blocks=(1, blocks, blocks, blocks),
                           num_decoder_blocks=(blocks, blocks, blocks, 1), latent_channels=latent_channels).eval()
