"""Quality of a variant measured against the fp32 graphs, in onnxruntime (what quantize stores in
the manifest's "quality" and prints as a table)."""

import numpy as np
import onnxruntime as ort

from edgevae.runtime import manifest as contract
from edgevae.runtime.latent import reparameterize, rng_of, standard_normal

DECODER_SAMPLES = 1024  # z ~ N(0, I) decoded by both graphs


def graph_session(path, threads: int | None = None) -> ort.InferenceSession:
    """A session of the graph file at path with the runtime's session options (the code devices run;
    its non-spinning threads also keep these measurements quick on a loaded machine)."""
    from pathlib import Path

    from edgevae.runtime.sessions import SessionConfig, new_session

    return new_session(Path(path).read_bytes(), SessionConfig(threads=threads))


def run_batched(sess: ort.InferenceSession, name: str, array: np.ndarray, batch: int = 256) -> list[np.ndarray]:
    """sess's outputs for `array` fed in batches of `batch`, concatenated."""
    parts = [sess.run(None, {name: array[i:i + batch]}) for i in range(0, len(array), batch)]
    return [np.concatenate(outs) for outs in zip(*parts)]


def psnr(reference: np.ndarray, other: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for signals in [0, 1] (inf when identical)."""
    mse = float(np.mean((reference.astype(np.float64) - other) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def mean_neg_elbo(outputs: dict, images: np.ndarray) -> float:
    """Mean -ELBO in nats per image from outputs {"mu", "logvar", "x_hat"} of one posterior draw per image:
    BCE summed over pixels + analytic KL summed over latent dims (runtime/likelihood.py, as `edgevae eval`)."""
    from edgevae.runtime.likelihood import bernoulli_log_prob, gaussian_kl

    return float(np.mean(-bernoulli_log_prob(images, outputs["x_hat"]) + gaussian_kl(outputs["mu"], outputs["logvar"])))


def graph_outputs(paths: dict, test_images: np.ndarray, latent_dim: int, seed: int = 0) -> dict:
    """What the quality figures compare, for the graphs {"encoder": path, "decoder": path}: decoded
    DECODER_SAMPLES z ~ N(0, I) ("samples"), mu / logvar of test_images, and the decoding of one posterior
    draw per image ("x_hat"; eps from numpy, seeded, so every variant sees the same noise)."""
    encoder, decoder = graph_session(paths["encoder"]), graph_session(paths["decoder"])
    rng = rng_of(seed)
    z = standard_normal(rng, (DECODER_SAMPLES, latent_dim))
    mu, logvar = run_batched(encoder, "x", test_images)
    (x_hat,) = run_batched(decoder, "z", reparameterize(mu, logvar, standard_normal(rng, mu.shape)))
    (samples,) = run_batched(decoder, "z", z)
    return {"samples": samples, "mu": mu, "logvar": logvar, "x_hat": x_hat}


def measure(reference: dict, variant_paths: dict, test_images: np.ndarray, latent_dim: int, seed: int = 0) -> dict:
    """Quality of the variant's graphs vs `reference` (graph_outputs of fp32 with the same images and seed):
    decoder max abs diff and PSNR over the z ~ N(0, I) samples, encoder mu / logvar max abs diffs, and the
    test -ELBO through each and its relative change."""
    got = graph_outputs(variant_paths, test_images, latent_dim, seed)
    elbo_ref, elbo_var = mean_neg_elbo(reference, test_images), mean_neg_elbo(got, test_images)
    return {
        "decoder_max_abs_diff": float(np.abs(reference["samples"] - got["samples"]).max()),
        "decoder_psnr_db": _finite_or_none(round(psnr(reference["samples"], got["samples"]), 3)),
        "decoder_samples": DECODER_SAMPLES,
        "encoder_mu_max_abs_diff": float(np.abs(reference["mu"] - got["mu"]).max()),
        "encoder_logvar_max_abs_diff": float(np.abs(reference["logvar"] - got["logvar"]).max()),
        "test_neg_elbo": round(elbo_var, 4),
        "test_neg_elbo_fp32": round(elbo_ref, 4),
        "neg_elbo_rel_change": round((elbo_var - elbo_ref) / elbo_ref, 6),
        "test_images": len(test_images),
    }


class _Graphs:
    """encode / decode through two graph files: what runtime/likelihood.py asks of a VAERuntime, for
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
    from edgevae.runtime.likelihood import iwae_nll

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
    return psnr_ok and abs(quality.neg_elbo_rel_change) <= max_elbo_rel
