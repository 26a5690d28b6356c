"""`edgevae eval`: test -ELBO and the IWAE estimate of the NLL, in nats per image, with standard errors.

Two things can be evaluated:
- a checkpoint (RUN/checkpoint.pt): the result is merged into RUN/metrics.json. Engine "onnx" (the
  default: faster, see ENGINE_DEFAULT) exports the weights to a temporary fp32 model dir and runs it in
  onnxruntime; engine "torch" runs PyTorch eager.
- a model dir (what devices run), any of its variants, int8 included: always onnxruntime + numpy
  (edgevae.runtime.likelihood). Nothing is written into the model dir.

The test images, and for a binarized run the fixed binarized test set, come from the training config
stored beside the weights. IWAE: mean +- standard error over images (the spread of the per-image
estimates / sqrt(N); the Monte Carlo error of each image's k-sample estimate is inside that spread).
"""

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_model, write_json
from .data import DataConfig, binarize_fixed, load_images
from .loss import iwae_nll
from .trainer import TEST_BINARIZE_SEED, evaluate

ENGINES = ("onnx", "torch")
# k=1000 IWAE on 50 test images, 2 shared cores: onnxruntime fp32 was faster than torch eager
# (python -m edgevae.benchmarks.iwae_engines; README "Evaluation")
ENGINE_DEFAULT = "onnx"
IWAE_SEED_OFFSET = 1  # the IWAE noise stream differs from the -ELBO one


def mean_stderr(values) -> tuple[float, float]:
    """(mean, standard error of the mean) of per-image values; stderr 0 for a single value."""
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def test_images(train_cfg: dict, image_shape, data_dir=None, limit=None, data=None, image_size=None, channels=None) -> torch.Tensor:
    """The test set of the run's dataset spec (data/data_dir/image_size/channels override what it was trained
    with): [N,C,H,W] in [0,1], binarized with the fixed seed if the run was."""
    data_config = DataConfig.from_train_config(train_cfg, data=data, data_dir=data_dir, image_size=image_size, channels=channels)
    test_x = load_images(data_config).test
    if tuple(test_x.shape[1:]) != tuple(image_shape):
        raise ValueError(f"{data_config.data} gives {list(test_x.shape[1:])} images; the model takes {list(image_shape)}")
    test_x = test_x[:limit]
    return binarize_fixed(test_x, TEST_BINARIZE_SEED) if train_cfg.get("binarize") else test_x


def _check(iwae_k, limit_test, batch_size) -> None:
    if iwae_k < 1 or batch_size < 1 or (limit_test is not None and limit_test < 1):
        raise ValueError(f"--iwae-k, --batch-size and --limit-test must be >= 1 (got {iwae_k}, {batch_size}, {limit_test})")


def _progress(n: int, k: int, what: str):
    from tqdm import tqdm

    return tqdm(total=n, desc=f"IWAE k={k} {what}", unit="img", mininterval=1.0)  # rate and ETA included


def iwae_torch(model, x: torch.Tensor, k: int, batch_size: int, seed: int, device="cpu") -> np.ndarray:
    """Per-image IWAE NLL [N] in PyTorch eager."""
    torch.manual_seed(seed + IWAE_SEED_OFFSET)
    out = []
    with _progress(len(x), k, "(torch)") as bar:
        for i in range(0, len(x), batch_size):
            out.append(iwae_nll(model, x[i : i + batch_size].to(device), k).cpu().numpy())
            bar.update(len(out[-1]))
    return np.concatenate(out)


def evaluate_runtime(rt, x: np.ndarray, k: int, batch_size: int, seed: int) -> dict:
    """-ELBO (one seeded draw per image) and IWAE NLL of a VAERuntime on x [N,C,H,W], with standard errors."""
    from edgevae.runtime import likelihood

    elbo_rng, iwae_rng = np.random.default_rng(seed), np.random.default_rng(seed + IWAE_SEED_OFFSET)
    parts = {"neg_elbo": [], "bce": [], "kl": [], "iwae": []}
    with _progress(len(x), k, f"(onnxruntime, {rt.variant})") as bar:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            terms = likelihood.neg_elbo(rt, xb, elbo_rng.standard_normal((len(xb), rt.latent_dim), dtype=np.float32))
            for key in ("neg_elbo", "bce", "kl"):
                parts[key].append(terms[key])
            parts["iwae"].append(likelihood.iwae_nll(rt, xb, k, iwae_rng))
            bar.update(len(xb))
    values = {key: np.concatenate(v) for key, v in parts.items()}
    (elbo, elbo_se), (nll, nll_se) = mean_stderr(values["neg_elbo"]), mean_stderr(values["iwae"])
    return {"test_neg_elbo": elbo, "test_neg_elbo_stderr": elbo_se, "test_bce": float(values["bce"].mean()),
            "test_kl": float(values["kl"].mean()), "iwae_nll": nll, "iwae_nll_stderr": nll_se}


def evaluate_model_dir(model_dir, variant: str = "fp32", data_dir=None, iwae_k=1000, limit_test=None,
                       batch_size=20, threads=None, data=None, image_size=None, channels=None) -> dict:
    """-ELBO and IWAE NLL (nats per image) of a model dir's variant, computed with onnxruntime + numpy."""
    from edgevae.runtime import VAERuntime

    _check(iwae_k, limit_test, batch_size)
    rt = VAERuntime.load(model_dir, variant=variant, threads=threads)
    training = rt.model.manifest.training
    train_cfg = dict(training.train_config) if training is not None else {}
    x = test_images(train_cfg, rt.image_shape, data_dir, limit_test, data, image_size, channels).numpy()
    result = evaluate_runtime(rt, x, iwae_k, batch_size, train_cfg.get("seed", 0))
    return result | {"iwae_k": iwae_k, "eval_images": len(x), "engine": "onnx", "variant": variant}


def evaluate_checkpoint(checkpoint, data_dir=None, iwae_k=1000, limit_test=None, batch_size=20, device="cpu",
                        engine: str = ENGINE_DEFAULT, data=None, image_size=None, channels=None) -> dict:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    _check(iwae_k, limit_test, batch_size)
    if engine == "onnx" and device != "cpu":
        engine = "torch"  # the GPU is PyTorch's; onnxruntime here runs on the CPU
    model, state = load_model(checkpoint)
    train_cfg = state.get("train_config", {})
    test_x = test_images(train_cfg, model.config.image_shape, data_dir, limit_test, data, image_size, channels)
    seed = train_cfg.get("seed", 0)
    if engine == "onnx":
        from edgevae.export.exporter import export_model_dir
        from edgevae.runtime import VAERuntime

        with tempfile.TemporaryDirectory(prefix="edgevae-eval-") as tmp:
            rt = VAERuntime.load(export_model_dir(model, Path(tmp) / "model"), variant="fp32")
            result = evaluate_runtime(rt, test_x.numpy(), iwae_k, batch_size, seed)
    else:
        model.to(device)
        result = evaluate(model, test_x, seed=seed, device=device)
        nll, nll_se = mean_stderr(iwae_torch(model, test_x, iwae_k, batch_size, seed, device))
        result |= {"iwae_nll": nll, "iwae_nll_stderr": nll_se}
    return result | {"iwae_k": iwae_k, "eval_images": len(test_x), "engine": engine}


def main(args) -> None:
    target = Path(args.target)
    if target.is_dir() and not (target / "manifest.json").exists():
        raise ValueError(f"checkpoint {target} is not a file, nor a model dir (it has no manifest.json)")
    if target.is_dir():
        result = evaluate_model_dir(target, args.variant, args.data_dir, args.iwae_k, args.limit_test,
                                    args.batch_size, args.threads, args.data, args.image_size, args.channels)
        what = f"{target} variant {args.variant}"
    else:
        if args.variant != "fp32":
            raise ValueError("--variant applies to a model dir; a checkpoint holds fp32 weights")
        result = evaluate_checkpoint(target, args.data_dir, args.iwae_k, args.limit_test, args.batch_size,
                                     args.device, args.engine, args.data, args.image_size, args.channels)
        metrics_path = target.parent / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        metrics["final"] = metrics.get("final", {}) | result
        write_json(metrics_path, metrics)
        what = str(target)
    print(f"{what}: test -ELBO {result['test_neg_elbo']:.2f}, IWAE NLL (k={args.iwae_k}) "
          f"{result['iwae_nll']:.2f} +- {result['iwae_nll_stderr']:.2f} nats over {result['eval_images']} images "
          f"({result['engine']})")
