"""The seed notebook's convolutional VAE, as separate Encoder and Decoder modules (export takes them apart),
built for any image shape (C, H, W) by one rule that gives exactly the seed network at (1, 28, 28).

The rule (per spatial axis, so H and W may differ). Encoder: Conv k3 s1 p1, Conv k3 s2 p1, Conv k3 s2 p1,
Conv k3 s1 p1, so the last feature map is n = ceil(ceil(H/2)/2) = ceil(H/4) high. Decoder, from n:

    ConvT k3 s1 p1:      n -> n
    ConvT k3 s2 p1:      n -> 2n - 1
    ConvT k3 s2 p=p3:    2n - 1 -> 4n - 1 - 2*p3
    ConvT k=K s1 p1:     4n - 1 - 2*p3 -> 4n - 4 - 2*p3 + K  (= H)

With r = 4n - H in {0, 1, 2, 3}: p3 = 0 and K = 4 - r when r <= 2 (K in 4, 3, 2); p3 = 1 and K = 3 when
r = 3. H = 28 gives n = 7, r = 0: the seed's 7 -> 7 -> 13 -> 27 -> 28 with a 4x4 final kernel. Sizes that
are multiples of 4 keep square 4x4 kernels; other H/W pairs may give non-square final kernels (e.g. 3x4) or
paddings, which export/rewrite.py handles exactly. No layer resizes: every size comes from the arithmetic.
Linear layers hold 64 * n_H * n_W * latent_dim weights each, so large images (say above 128x128) are
better fed downscaled (--image-size).
"""

from dataclasses import dataclass

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)  # the default (seed) image shape; everything downstream reads config.image_shape
MIN_SIZE = 4  # below 4 pixels the two stride-2 stages have nothing left to halve


def latent_grid(size: int) -> int:
    """Spatial size after the encoder's two stride-2 Convs (k3, p1): ceil(ceil(size/2)/2) = ceil(size/4)."""
    return -(-size // 4)


def final_layer(size: int) -> tuple[int, int]:
    """(padding of the second stride-2 ConvT, kernel of the last ConvT) that land exactly on `size` (see module docstring)."""
    r = 4 * latent_grid(size) - size  # 0..3
    return (0, 4 - r) if r <= 2 else (1, 3)


@dataclass(frozen=True)
class VAEConfig:
    """The network's hyperparameters; saved in every checkpoint so the model is rebuilt with no flags."""

    latent_dim: int = 64
    negative_slope: float = 0.01  # LeakyReLU, as in the seed
    image_shape: tuple[int, int, int] = IMAGE_SHAPE  # (C, H, W) of the images, in [0, 1]
    encoder_channels: tuple[int, int, int, int] = (32, 64, 72, 64)  # outputs of the four Convs (the seed's)
    decoder_channels: tuple[int, int, int] = (64, 72, 32)  # outputs of the first three ConvTs (the seed's)

    def __post_init__(self):
        # checkpoints hold lists after a JSON round trip; keep tuples so configs compare and hash alike
        for name in ("image_shape", "encoder_channels", "decoder_channels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.latent_dim < 1:  # 0 would build zero-element layers and train a VAE with no latent at all
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        c, h, w = self.image_shape if len(self.image_shape) == 3 else (0, 0, 0)
        if c < 1 or h < MIN_SIZE or w < MIN_SIZE:
            raise ValueError(f"image_shape must be (C, H, W) with C >= 1 and H, W >= {MIN_SIZE}, got {self.image_shape}")
        if len(self.encoder_channels) != 4 or len(self.decoder_channels) != 3 or min(self.encoder_channels + self.decoder_channels) < 1:
            raise ValueError(f"encoder_channels needs 4 and decoder_channels 3 positive ints, got "
                             f"{self.encoder_channels}, {self.decoder_channels}")

    @property
    def features(self) -> tuple[int, int, int]:
        """(channels, h, w) of the encoder's last feature map, which is also the decoder's first."""
        _, h, w = self.image_shape
        return self.encoder_channels[-1], latent_grid(h), latent_grid(w)

    @property
    def flat(self) -> int:
        c, h, w = self.features
        return c * h * w  # 3136 for the seed


class Encoder(nn.Module):
    """x [N,C,H,W] in [0,1] -> mu [N,D], logvar [N,D]."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        act = lambda: nn.LeakyReLU(config.negative_slope)  # noqa: E731
        c1, c2, c3, c4 = config.encoder_channels
        self.features = nn.Sequential(
            nn.Conv2d(config.image_shape[0], c1, 3, stride=1, padding=1), act(),  # (N,32,28,28) for the seed
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), act(),  # (N,64,14,14)
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), act(),  # (N,72,7,7)
            nn.Conv2d(c3, c4, 3, stride=1, padding=1),  # (N,64,7,7)
            nn.Flatten(),  # (N,3136)
        )
        self.mu = nn.Linear(config.flat, config.latent_dim)
        self.logvar = nn.Linear(config.flat, config.latent_dim)

    def forward(self, x):
        h = self.features(x)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """z [N,D] -> x_hat [N,C,H,W], Bernoulli means in [0,1]."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        act = lambda: nn.LeakyReLU(config.negative_slope)  # noqa: E731
        self.features = config.features
        c_in, (d1, d2, d3) = config.encoder_channels[-1], config.decoder_channels
        (p_h, k_h), (p_w, k_w) = final_layer(config.image_shape[1]), final_layer(config.image_shape[2])
        self.project = nn.Linear(config.latent_dim, config.flat)
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c_in, d1, 3, stride=1, padding=1), act(),  # (N,64,7,7) for the seed
            nn.ConvTranspose2d(d1, d2, 3, stride=2, padding=1), act(),  # (N,72,13,13)
            nn.ConvTranspose2d(d2, d3, 3, stride=2, padding=(p_h, p_w)), act(),  # (N,32,27,27)
            nn.ConvTranspose2d(d3, config.image_shape[0], (k_h, k_w), stride=1, padding=1),  # (N,1,28,28)
        )

    def logits(self, z):
        """Pre-sigmoid outputs: the loss takes these, for a numerically stable BCE."""
        return self.deconv(self.project(z).view(-1, *self.features))

    def forward(self, z):
        return torch.sigmoid(self.logits(z))


class VAE(nn.Module):
    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    @staticmethod
    def reparameterize(mu, logvar):
        """z = mu + exp(logvar/2) * eps, eps ~ N(0, I) drawn on mu's device (Kingma & Welling 2014, eq. 10)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x):
        """x [N,C,H,W] -> mu, logvar, x_hat for one posterior draw."""
        mu, logvar = self.encoder(x)
        return mu, logvar, self.decoder(self.reparameterize(mu, logvar))
