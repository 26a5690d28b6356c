"""The negative ELBO and the IWAE bound, in nats per image.

The seed added a pixel- and batch-MEAN BCE to a batch-SUM KL, which weights the KL ~78,400x too much
(784 pixels x a batch of 100) and collapses the posterior; here both terms are sums over their
dimensions, averaged over the batch (Kingma & Welling 2014, appendix C.2 / B).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


@dataclass
class ELBOTerms:
    neg_elbo: torch.Tensor  # scalar, nats per image: bce + kl (the objective, beta = 1)
    bce: torch.Tensor  # scalar, -E_q[log p(x|z)] summed over 784 pixels
    kl: torch.Tensor  # scalar, KL(q(z|x) || N(0, I)) summed over latent dims
    loss: torch.Tensor  # scalar, bce + beta * kl: what the optimizer minimises


def gaussian_kl(mu, logvar):
    """Analytic KL(N(mu, exp(logvar)) || N(0, I)) per row: [N,D] -> [N]."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def bernoulli_nll(logits, x):
    """-log p(x|z) per row, BCE summed over pixels: [N,1,28,28] -> [N]. Stable: works on logits."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


def neg_elbo(model, x, *, beta: float = 1.0, eps=None) -> ELBOTerms:
    """One-sample estimate of the negative ELBO for a batch x [N,C,H,W].

    eps [N,D]: the posterior noise to use (z = mu + exp(logvar/2) * eps); None draws it from torch's
    global generator. Data-parallel training passes slices of one global draw.
    """
    # .float(): under bf16 autocast the network's outputs are bf16; the sampling, the 784-term BCE sum and
    # the KL stay fp32 (no-ops in fp32 training)
    mu, logvar = (t.float() for t in model.encoder(x))
    z = model.reparameterize(mu, logvar) if eps is None else mu + torch.exp(0.5 * logvar) * eps
    bce = bernoulli_nll(model.decoder.logits(z).float(), x).mean()
    kl = gaussian_kl(mu, logvar).mean()
    return ELBOTerms(neg_elbo=bce + kl, bce=bce, kl=kl, loss=bce + beta * kl)


def _log_normal(z, mu, logvar):
    """log N(z; mu, exp(logvar)) summed over the last dim."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(dim=-1)


@torch.no_grad()
def iwae_nll(model, x, *, k: int, chunk: int = 500, eps=None):
    """IWAE estimate of -log p(x) per image (Burda et al. 2016, eq. 8): [N,...] -> [N].

    -log p(x) ~= -(logsumexp_i log w_i - log k), w_i = p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x).
    An upper bound on the NLL that tightens as k grows; k = 1 gives the ELBO. Samples are drawn `chunk`
    at a time so memory stays bounded for any k. eps [k,N,D]: given noise instead of torch.randn (to
    compare engines on the same draws).
    """
    mu, logvar = model.encoder(x)  # (N,D)
    log_w = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        noise = torch.randn((n, *mu.shape), device=mu.device) if eps is None else eps[start : start + n].to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * noise  # (n,N,D)
        logits = model.decoder.logits(z.flatten(0, 1))  # (n*N,1,28,28)
        log_px = -bernoulli_nll(logits, x.repeat(n, 1, 1, 1)).view(n, -1)  # (n,N)
        log_w.append(log_px + _log_normal(z, torch.zeros_like(z), torch.zeros_like(z)) - _log_normal(z, mu, logvar))
    return -(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))
