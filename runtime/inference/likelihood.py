"""-ELBO and the IWAE bound of an exported model, in nats per image, with onnxruntime and numpy only.

The same estimators as train/loss.py (Kingma & Welling 2014; Burda et al. 2016, eq. 8), computed from
what the graphs give a device: the encoder's (mu, logvar) and the decoder's Bernoulli MEANS p, not
logits. log p(x|z) = sum over pixels of x log p + (1 - x) log(1 - p) then needs a floor, because fp32
rounds p to exactly 0 or 1 where the decoder is very sure:
- 1 - p >= 2^-24 (P_ONE_FLOOR), the spacing of float32 just below 1: sigmoid(l) rounds to 1.0 from
  l ~ 16.6, so log(1 - p) >= -16.6 nats per pixel; a pixel whose logit is larger counts l - 16.6 nats too
  few when its target is not 1 (a confidently wrong pixel: rare in a trained model; the torch loss on
  logits and this one agree within 0.01 nats per image on the models tests/runtime/test_likelihood.py checks).
- p >= float32's smallest normal (P_ZERO_FLOOR, log p >= -87.3): sigmoid underflows only below l ~ -87.
Short of the floor, p near 1 holds 1 - p to ~6e-8 absolute, so log(1 - p) drifts for logits above ~8
(0.2 nats per pixel at l = 15) where the target is not 1; targets of exactly 0 or 1 (binarized data,
Fashion-MNIST's background) are unaffected. Logits would be exact, but the graph contract gives means.
Per-pixel terms are float32 (relative error ~1e-7); sums over pixels and latents are taken in float64.
"""

import math

import numpy as np

from .latent import reparameterize, standard_normal

LOG_2PI = math.log(2 * math.pi)
P_ONE_FLOOR = 2.0 ** -24  # smallest 1 - p a float32 p below 1 can express
P_ZERO_FLOOR = float(np.finfo(np.float32).tiny)


def bernoulli_log_prob(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """log p(x | probs) per image, summed over pixels: [N,C,H,W] (probs may be [K,N,C,H,W]) -> [N] / [K,N]."""
    p = probs.astype(np.float32, copy=False)  # per pixel in float32 (rel. error ~1e-7), summed in float64
    log_p = np.log(np.maximum(p, np.float32(P_ZERO_FLOOR)))
    log_1mp = np.log1p(-np.minimum(p, np.float32(1.0 - P_ONE_FLOOR)))
    per_pixel = log_1mp + x.astype(np.float32, copy=False) * (log_p - log_1mp)
    return per_pixel.reshape(*per_pixel.shape[: per_pixel.ndim - 3], -1).sum(axis=-1, dtype=np.float64)


def gaussian_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Analytic KL(N(mu, exp(logvar)) || N(0, I)) per row: [N,D] -> [N]."""
    mu, logvar = mu.astype(np.float64), logvar.astype(np.float64)
    return 0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar).sum(axis=-1)


def log_normal(z: np.ndarray, *, mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """log N(z; mu, exp(logvar)) summed over the last axis (broadcasting), float64."""
    z, mu, logvar = (np.asarray(a, np.float64) for a in (z, mu, logvar))
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / np.exp(logvar)).sum(axis=-1)


def logsumexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """log sum exp(a) along axis, stable: the largest term is factored out."""
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def neg_elbo(rt, x: np.ndarray, *, eps: np.ndarray) -> dict:
    """One-sample -ELBO per image of x [N,C,H,W] with posterior noise eps [N,D]: {"neg_elbo", "bce", "kl"} -> [N]."""
    mu, logvar = rt.encode(x)
    z = reparameterize(mu, logvar, eps=eps)
    bce = -bernoulli_log_prob(x, rt.decode(z))
    kl = gaussian_kl(mu, logvar)
    return {"neg_elbo": bce + kl, "bce": bce, "kl": kl}


def iwae_nll(rt, x: np.ndarray, *, k: int, rng: np.random.Generator, chunk: int = 256) -> np.ndarray:
    """IWAE estimate of -log p(x) per image: x [N,C,H,W] -> [N] (see train/loss.py iwae_nll).

    -log p(x) ~= -(logsumexp_i log w_i - log k), log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x).
    eps [k,N,D] is drawn from rng in slices of at most `chunk` samples, so memory stays bounded for any k.
    """
    mu, logvar = rt.encode(x)  # (N,D)
    n, d = mu.shape
    log_w = np.empty((k, n))
    step = max(1, chunk // n)  # samples per decoder call: about `chunk` images at once
    for start in range(0, k, step):
        m = min(step, k - start)
        z = reparameterize(mu, logvar, eps=standard_normal(rng, (m, n, d)))  # (m,N,D)
        probs = rt.decode(z.reshape(m * n, d)).reshape(m, n, *x.shape[1:])
        log_w[start : start + m] = bernoulli_log_prob(x, probs) + log_normal(z, mu=0.0, logvar=0.0) - log_normal(z, mu=mu, logvar=logvar)
    return -(logsumexp(log_w, axis=0) - math.log(k))
