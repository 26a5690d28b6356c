"""Quality of a variant measured against the fp32 graphs, in onnxruntime (what quantize stores in
the manifest's "quality" and prints as a table)."""

import numpy as np
import onnxruntime as ort

from edgevae.runtime.contract import manifest as contract
from edgevae.runtime.inference.latent import reparameterize, rng_of, standard_normal

DECODER_SAMPLES = 1024  # z ~ N(0, I) decoded by both graphs


def graph_session(path, threads: int | None = None) -> ort.InferenceSession:
    """A session of the graph file at path with the runtime's session options (the code devices run;
    its non-spinning threads also keep these measurements quick on a loaded machine)."""
    from pathlib import Path

    from edgevae.runtime.inference.sessions import SessionConfig, new_session

    return new_session(Path(path).read_bytes(), SessionConfig(threads=threads))


def run_batched(sess: ort.InferenceSession, name: str, array: np.ndarray, batch: int = 256) -> list[np.ndarray]:
    """sess's outputs for `array` fed in batches of `batch`, concatenated."""
    parts = [sess.run(None, {name: array[i:i + batch]}) for i in range(0, len(array), batch)]
    return [np.concatenate(outs) for outs in zip(*parts)]


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


def graph_outputs(paths: dict, test_images: np.ndarray, latent_dim, seed: int = 0, conventions=None) -> dict:
    """What the quality figures compare, for the graphs {"encoder": path, "decoder": path}: decoded
    DECODER_SAMPLES z ~ N(0, I) ("samples"; without a prior, the test images' latents instead), mu / logvar of
    test_images (in the model's pixel range; logvar None for a deterministic encoder), and the decoding of one
    posterior draw per image ("x_hat"; eps from numpy, seeded, so every variant sees the same noise). latent_dim:
    D or the latent's shape; samples and x_hat are mapped to [0, 1] (runtime/contract/conventions.py) for PSNR, and
    "neg_elbo" is the mean -ELBO (None without a likelihood). conventions: the manifest's (default: edgevae's)."""
    from edgevae.runtime.contract.conventions import to_unit
    from edgevae.runtime.contract.manifest import CLASSIC

    conventions = conventions or CLASSIC
    latent = (latent_dim,) if isinstance(latent_dim, (int, np.integer)) else tuple(latent_dim)
    encoder, decoder = graph_session(paths["encoder"]), graph_session(paths["decoder"])
    rng = rng_of(seed)
    z = standard_normal(rng, (DECODER_SAMPLES, *latent)) if conventions.prior != "none" else None
    posterior = run_batched(encoder, "x", test_images)
    mu, logvar = posterior[0], (posterior[1] if len(posterior) == 2 else None)
    drawn = mu if logvar is None else reparameterize(mu, logvar, standard_normal(rng, mu.shape))
    (x_hat,) = run_batched(decoder, "z", drawn)
    if z is None:  # no prior: the decoder is measured on the latents it is given in use, the encoder's
        z = mu[np.arange(DECODER_SAMPLES) % len(mu)]
    (samples,) = run_batched(decoder, "z", z)
    neg_elbo = _neg_elbo(x_hat, mu, logvar, test_images, conventions)
    return {"samples": to_unit(samples, conventions), "mu": mu, "logvar": logvar,
            "x_hat": to_unit(x_hat, conventions), "neg_elbo": neg_elbo, "conventions": conventions}


def measure(reference: dict, variant_paths: dict, test_images: np.ndarray, latent_dim: int, seed: int = 0) -> dict:
    """Quality of the variant's graphs vs `reference` (graph_outputs of fp32 with the same images and seed):
    decoder max abs diff and PSNR over the z ~ N(0, I) samples, encoder mu / logvar max abs diffs, and the
    test -ELBO through each and its relative change."""
    got = graph_outputs(variant_paths, test_images, latent_dim, seed, reference["conventions"])
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


class _Graphs:
    """encode / decode through two graph files: what runtime/inference/likelihood.py asks of a VAERuntime, for
    variants that are still temporary files outside any manifest."""

    def __init__(self, paths: dict):
        self.encoder, self.decoder = graph_session(paths["encoder"]), graph_session(paths["decoder"])

    def encode(self, x):
        return tuple(run_batched(self.encoder, "x", x))

    def decode(self, z):
        return run_batched(self.decoder, "z", z)[0]


def iwae_per_image(paths: dict, images: np.ndarray, k: int, seed: int = 0, batch: int = 20) -> np.ndarray:
    """IWAE NLL [N] of each image through the graphs {"encoder": path, "decoder": path}, with noise that
    depends on the seed and the images' count alone, so every variant sees the same eps."""
    from edgevae.runtime.inference.likelihood import iwae_nll

    graphs, rng = _Graphs(paths), rng_of(seed)
    return np.concatenate([iwae_nll(graphs, images[i:i + batch], k, rng) for i in range(0, len(images), batch)])


def nll_cost(reference_nll: np.ndarray, paths: dict, images: np.ndarray, k: int, seed: int = 0) -> contract.NllCost:
    """The variant's IWAE NLL against reference_nll (iwae_per_image of fp32 with the same images, k and seed)."""
    from edgevae.train.evaluate import mean_stderr

    nll = iwae_per_image(paths, images, k, seed)
    cost, cost_stderr = mean_stderr(nll - reference_nll)
    return contract.NllCost(nll=round(float(nll.mean()), 4), nll_fp32=round(float(reference_nll.mean()), 4),
                            cost=round(cost, 4), cost_stderr=round(cost_stderr, 4), k=k, images=len(images))


def _finite_or_none(db: float) -> float | None:
    return None if db == float("inf") else db  # identical outputs: JSON has no inf


def within_budget(quality, min_psnr_db: float = 35.0, max_elbo_rel: float = 0.01) -> bool:
    """The accuracy budget of --select for a manifest Quality: decoder PSNR >= min_psnr_db (None: identical)
    and -ELBO within max_elbo_rel of fp32."""
    psnr_ok = quality.decoder_psnr_db is None or quality.decoder_psnr_db >= min_psnr_db
    return psnr_ok and (quality.neg_elbo_rel_change is None or abs(quality.neg_elbo_rel_change) <= max_elbo_rel)
