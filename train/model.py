"""The seed notebook's convolutional VAE, as separate Encoder and Decoder modules (export takes them apart)."""

from dataclasses import dataclass

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
FEATURES = (64, 7, 7)  # encoder's last feature map, decoder's first
FLAT = FEATURES[0] * FEATURES[1] * FEATURES[2]  # 3136


@dataclass(frozen=True)
class VAEConfig:
    latent_dim: int = 64
    negative_slope: float = 0.01  # LeakyReLU, as in the seed

    def __post_init__(self):
        if self.latent_dim < 1:  # 0 would build zero-element layers and train a VAE with no latent at all
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")


class Encoder(nn.Module):
    """x [N,1,28,28] in [0,1] -> mu [N,D], logvar [N,D]."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        act = lambda: nn.LeakyReLU(config.negative_slope)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=1, padding=1), act(),  # (N,32,28,28)
            nn.Conv2d(32, 64, 3, stride=2, padding=1), act(),  # (N,64,14,14)
            nn.Conv2d(64, 72, 3, stride=2, padding=1), act(),  # (N,72,7,7)
            nn.Conv2d(72, 64, 3, stride=1, padding=1),  # (N,64,7,7)
            nn.Flatten(),  # (N,3136)
        )
        self.mu = nn.Linear(FLAT, config.latent_dim)
        self.logvar = nn.Linear(FLAT, config.latent_dim)

    def forward(self, x):
        h = self.features(x)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """z [N,D] -> x_hat [N,1,28,28], Bernoulli means in [0,1]."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        act = lambda: nn.LeakyReLU(config.negative_slope)  # noqa: E731
        self.project = nn.Linear(config.latent_dim, FLAT)
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 3, stride=1, padding=1), act(),  # (N,64,7,7)
            nn.ConvTranspose2d(64, 72, 3, stride=2, padding=1), act(),  # (N,72,13,13)
            nn.ConvTranspose2d(72, 32, 3, stride=2, padding=0), act(),  # (N,32,27,27)
            nn.ConvTranspose2d(32, 1, 4, stride=1, padding=1),  # (N,1,28,28)
        )

    def logits(self, z):
        """Pre-sigmoid outputs: the loss takes these, for a numerically stable BCE."""
        return self.deconv(self.project(z).view(-1, *FEATURES))

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
        """x [N,1,28,28] -> mu, logvar, x_hat for one posterior draw."""
        mu, logvar = self.encoder(x)
        return mu, logvar, self.decoder(self.reparameterize(mu, logvar))
