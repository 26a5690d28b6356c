"""Quality of a variant measured against the fp32 graphs, in onnxruntime (what quantize stores in
the manifest's "quality" and prints as a table)."""

import numpy as np

from edgevae.runtime.contract import manifest as contract
from edgevae.runtime.inference.graph_pair import GraphPair
from edgevae.runtime.inference.latent import reparameterize, rng_of, standard_normal

DECODER_SAMPLES = 1024  # z ~ N(0, I) decoded by both graphs


def psnr(reference: np.ndarray, other: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for signals in [0, 1] (inf when identical)."""
    mse = float(np.mean((reference.astype(np.float64) - other) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def mean_neg_elbo(outputs: dict, images: np.ndarray) -> float | None:
    """Mean -ELBO in nats per image of graph_outputs (one posterior draw per image), as it computed it: None when
    the model declares no likelihood or no Gaussian posterior."""
    return outputs["neg_elbo"]


def _neg_elbo(x_hat: np.ndarray, mu: np.ndarray, logvar, images: np.ndarray, conventions) -> float | None:
    """-log p(x|z) summed over pixels (the declared head: Bernoulli means or logits, or Gaussian mean with its scale,
    in pixel_range units) + analytic KL summed over latent dims (runtime/inference/likelihood.py, as `edgevae eval`)."""
    from edgevae.runtime.inference.likelihood import LOG_2PI, bernoulli_log_prob, gaussian_kl

    if not conventions.likelihood or logvar is None:
        return None
    head, n = conventions.decoder_head, len(images)
    if head == "gaussian_mean":
        s = conventions.decoder_scale
        diff = (images.astype(np.float64) - x_hat).reshape(n, -1)
        nll = 0.5 * ((diff / s) ** 2 + LOG_2PI + 2 * np.log(s)).sum(axis=1)
    else:
        means = 1 / (1 + np.exp(-x_hat.astype(np.float64))) if head == "bernoulli_logits" else x_hat
        nll = -bernoulli_log_prob(images, means)
    return float(np.mean(nll + gaussian_kl(mu.reshape(n, -1), logvar.reshape(n, -1))))


def graph_outputs(graphs: GraphPair, test_images: np.ndarray, *, seed: int = 0) -> dict:
    """What the quality figures compare, for a pair of graphs of a model dir: decoded DECODER_SAMPLES z ~ N(0, I)
    ("samples"; without a prior, the test images' latents instead), mu / logvar of test_images (in the model's
    pixel range; logvar None for a deterministic encoder), and the decoding of one posterior draw per image
    ("x_hat"; eps from numpy, seeded, so every variant sees the same noise). samples and x_hat are mapped to
    [0, 1] (runtime/contract/conventions.py) for PSNR, and "neg_elbo" is the mean -ELBO (None without a
    likelihood); latent shape and conventions are the model's."""
    from edgevae.runtime.contract.conventions import to_unit

    conventions = graphs.model.conventions
    rng = rng_of(seed)
    z = standard_normal(rng, (DECODER_SAMPLES, *graphs.model.latent_shape)) if conventions.prior != "none" else None
    mu, logvar = graphs.encode(test_images)
    drawn = mu if logvar is None else reparameterize(mu, logvar, eps=standard_normal(rng, mu.shape))
    x_hat = graphs.decode(drawn)
    if z is None:  # no prior: the decoder is measured on the latents it is given in use, the encoder's
        z = mu[np.arange(DECODER_SAMPLES) % len(mu)]
    samples = graphs.decode(z)
    neg_elbo = _neg_elbo(x_hat, mu, logvar, test_images, conventions)
    return {"samples": to_unit(samples, conventions), "mu": mu, "logvar": logvar,
            "x_hat": to_unit(x_hat, conventions), "neg_elbo": neg_elbo}


def measure(reference: dict, graphs: GraphPair, *, test_images: np.ndarray, seed: int = 0) -> dict:
    """Quality of the variant's graphs vs `reference` (graph_outputs of fp32 with the same images and seed):
    decoder max abs diff and PSNR over the z ~ N(0, I) samples, encoder mu / logvar max abs diffs, and the
    test -ELBO through each and its relative change."""
    got = graph_outputs(graphs, test_images, seed=seed)
    elbo_ref, elbo_var = reference["neg_elbo"], got["neg_elbo"]
    nats = elbo_ref is not None
    return {
        "decoder_max_abs_diff": float(np.abs(reference["samples"] - got["samples"]).max()),
        "decoder_psnr_db": _finite_or_none(round(psnr(reference["samples"], got["samples"]), 3)),
        "decoder_samples": DECODER_SAMPLES,
        "encoder_mu_max_abs_diff": float(np.abs(reference["mu"] - got["mu"]).max()),
        "encoder_logvar_max_abs_diff": float(np.abs(reference["logvar"] - got["logvar"]).max())
        if got["logvar"] is not None else None,
        "test_neg_elbo": round(elbo_var, 4) if nats else None,
        "test_neg_elbo_fp32": round(elbo_ref, 4) if nats else None,
        "neg_elbo_rel_change": round((elbo_var - elbo_ref) / abs(elbo_ref), 6) if nats else None,
        "test_images": len(test_images),
    }


def iwae_per_image(graphs: GraphPair, images: np.ndarray, *, k: int, seed: int = 0, batch: int = 20) -> np.ndarray:
    """IWAE NLL [N] of each image through the pair of graphs, with noise that depends on the seed and the
    images' count alone, so every variant sees the same eps."""
    from edgevae.runtime.inference.likelihood import iwae_nll

    rng = rng_of(seed)
    return np.concatenate([iwae_nll(graphs, images[i:i + batch], k=k, rng=rng) for i in range(0, len(images), batch)])


def nll_cost(reference_nll: np.ndarray, graphs: GraphPair, *, images: np.ndarray, k: int, seed: int = 0) -> contract.NllCost:
    """The variant's IWAE NLL against reference_nll (iwae_per_image of fp32 with the same images, k and seed)."""
    from edgevae.train.evaluate import mean_stderr

    nll = iwae_per_image(graphs, images, k=k, seed=seed)
    cost, cost_stderr = mean_stderr(nll - reference_nll)
    return contract.NllCost(nll=round(float(nll.mean()), 4), nll_fp32=round(float(reference_nll.mean()), 4),
                            cost=round(cost, 4), cost_stderr=round(cost_stderr, 4), k=k, images=len(images))


def _finite_or_none(db: float) -> float | None:
    return None if db == float("inf") else db  # identical outputs: JSON has no inf


def within_budget(quality, *, min_psnr_db: float = 35.0, max_elbo_rel: float = 0.01) -> bool:
    """The accuracy budget of --select for a manifest Quality: decoder PSNR >= min_psnr_db (None: identical)
    and -ELBO within max_elbo_rel of fp32."""
    psnr_ok = quality.decoder_psnr_db is None or quality.decoder_psnr_db >= min_psnr_db
    return psnr_ok and (quality.neg_elbo_rel_change is None or abs(quality.neg_elbo_rel_change) <= max_elbo_rel)
