"""Exact folds of adjacent affine layers, applied to the seed-family VAE before it is exported.

Two layers with no activation between them are one affine map, and a single Gemm computes it with less
work than the pair:
- decoder: the Linear projection of z and the first ConvTranspose (k3 s1 p1 on 64 x 7 x 7) become one
  Linear from z to the ConvTranspose's output; for the seed network 7.9 -> 6.1 M multiply-adds per
  image, and one op fewer per call.
- encoder: the last Conv (k3 s1 p1, no activation after it), the Flatten and the mu / logvar Linears
  become one Linear from the third Conv's activations to (mu, logvar); 8.3 -> 6.3 M multiply-adds.
The folded matrices are computed in float64 from the layers themselves (the map at 0 gives the bias, its
Jacobian the weight), so they hold for any image shape and channel counts the model rule builds. The
graphs then differ from PyTorch's layer-by-layer float32 arithmetic by rounding only; export's parity
check measures that against the unfolded PyTorch model (docs/results.md).
"""

import copy

import torch
from torch import nn

from edgevae.train.model import VAE, Decoder, Encoder


def affine_as_linear(fn, *, in_shape: tuple, out_shape: tuple) -> nn.Linear:
    """fn, an affine map from [N, *in_shape] to [N, *out_shape] built of float64 layers, as one float32
    Linear on the flattened input and output: the bias is fn(0); the weight's columns are fn of each basis
    vector less the bias when the inputs are fewer, else its rows are one backward pass per output."""
    n_in = int(torch.Size(in_shape).numel())
    with torch.no_grad():
        bias = fn(torch.zeros(1, *in_shape, dtype=torch.float64)).reshape(-1)
        if n_in <= bias.numel():
            weight = (fn(torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)).reshape(n_in, -1) - bias).T
    if n_in > bias.numel():
        x = torch.zeros(1, *in_shape, dtype=torch.float64, requires_grad=True)
        y = fn(x).reshape(-1)
        weight = torch.stack([torch.autograd.grad(y[i], x, retain_graph=True)[0].reshape(-1) for i in range(len(y))])
    if bias.numel() != int(torch.Size(out_shape).numel()):
        raise ValueError(f"affine map gives {bias.numel()} values, expected {list(out_shape)}")
    linear = nn.Linear(n_in, bias.numel())
    with torch.no_grad():
        linear.weight.copy_(weight.float())
        linear.bias.copy_(bias.float())
    return linear


class FoldedEncoder(nn.Module):
    """Encoder with its last Conv, Flatten and the mu / logvar Linears folded into one Linear."""

    def __init__(self, encoder: Encoder, features: tuple[int, int, int]):
        """features: (C, H, W) of the last Conv's output (VAEConfig.features); stride 1 keeps H x W."""
        super().__init__()
        layers = list(encoder.features)
        last_conv, self.features = layers[-2], nn.Sequential(*layers[:-2])  # [..., conv4, flatten]
        twin = copy.deepcopy(nn.ModuleDict({"conv": last_conv, "mu": encoder.mu, "logvar": encoder.logvar})).double()
        self.latent_dim = encoder.mu.out_features

        def tail(h):
            flat = twin["conv"](h).flatten(1)
            return torch.cat([twin["mu"](flat), twin["logvar"](flat)], dim=1)

        self.head = affine_as_linear(tail, in_shape=(last_conv.in_channels, *features[1:]), out_shape=(2 * self.latent_dim,))

    def forward(self, x):
        both = self.head(self.features(x).flatten(1))
        return both[:, : self.latent_dim], both[:, self.latent_dim :]


class FoldedDecoder(nn.Module):
    """Decoder with its Linear projection and first ConvTranspose folded into one Linear."""

    def __init__(self, decoder: Decoder, fold: bool = True):
        """fold=False builds the structure alone, for weights loaded afterwards (benchmarks/torch_sample.py)."""
        super().__init__()
        first = decoder.deconv[0]
        twin = copy.deepcopy(nn.ModuleDict({"project": decoder.project, "first": first})).double()
        features = decoder.features

        def head(z):
            return twin["first"](twin["project"](z).view(-1, *features))

        with torch.no_grad():
            self.features = tuple(head(torch.zeros(1, decoder.project.in_features, dtype=torch.float64)).shape[1:])
        self.project = (affine_as_linear(head, in_shape=(decoder.project.in_features,), out_shape=self.features) if fold
                        else nn.Linear(decoder.project.in_features, int(torch.Size(self.features).numel())))
        self.rest = nn.Sequential(*list(decoder.deconv)[1:])  # LeakyReLU, ConvT, ..., the last ConvT

    def forward(self, z):
        return torch.sigmoid(self.rest(self.project(z).view(-1, *self.features)))


def folded(model: VAE) -> dict[str, nn.Module]:
    """{"encoder": FoldedEncoder, "decoder": FoldedDecoder} of model (which is left as it is)."""
    return {"encoder": FoldedEncoder(model.encoder, model.config.features), "decoder": FoldedDecoder(model.decoder)}
