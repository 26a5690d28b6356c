"""`edgevae eval`: test -ELBO and the IWAE estimate of the NLL, in nats per image, with standard errors.

Two things can be evaluated:
- a checkpoint (RUN/checkpoint.pt): the result is merged into RUN/metrics.json. Engine "onnx" (the
  default: faster, see ENGINE_DEFAULT) exports the weights to a temporary fp32 model dir and runs it in
  onnxruntime; engine "torch" runs PyTorch eager.
- a model dir (what devices run), any of its variants, int8 included: always onnxruntime + numpy
  (edgevae.runtime.inference.likelihood). Nothing is written into the model dir.

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
from .data import DataOverrides, held_out_images
from .loss import iwae_nll
from .trainer import evaluate

ENGINES = ("onnx", "torch")
# onnxruntime fp32 + numpy computes k=1000 IWAE faster than torch eager, with the same figures
# (python -m edgevae.benchmarks.iwae_engines; docs/results.md, Evaluation)
ENGINE_DEFAULT = "onnx"
IWAE_SEED_OFFSET = 1  # the IWAE noise stream differs from the -ELBO one


def mean_stderr(values) -> tuple[float, float]:
    """(mean, standard error of the mean) of per-image values; stderr 0 for a single value."""
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def _check(iwae_k, limit_test, batch_size) -> None:
    if iwae_k < 1 or batch_size < 1 or (limit_test is not None and limit_test < 1):
        raise ValueError(f"--iwae-k, --batch-size and --limit-test must be >= 1 (got {iwae_k}, {batch_size}, {limit_test})")


def _progress(n: int, k: int, what: str):
    from tqdm import tqdm

    return tqdm(total=n, desc=f"IWAE k={k} {what}", unit="img", mininterval=1.0)  # rate and ETA included


def iwae_torch(model, x: torch.Tensor, *, k: int, batch_size: int, seed: int, device="cpu") -> np.ndarray:
    """Per-image IWAE NLL [N] in PyTorch eager."""
    torch.manual_seed(seed + IWAE_SEED_OFFSET)
    out = []
    with _progress(len(x), k, "(torch)") as bar:
        for i in range(0, len(x), batch_size):
            out.append(iwae_nll(model, x[i : i + batch_size].to(device), k=k).cpu().numpy())
            bar.update(len(out[-1]))
    return np.concatenate(out)


def batch_terms(rt, xb: np.ndarray, *, k: int, seed: int, start: int) -> dict:
    """Per-image -ELBO, BCE, KL and IWAE NLL of the images xb, the batch starting at test image `start`.
    Its noise comes from generators seeded by (seed, start) alone, so the figures do not depend on how
    the batches are shared among worker processes."""
    from edgevae.runtime.inference import likelihood

    elbo_rng = np.random.default_rng([seed, start])
    iwae_rng = np.random.default_rng([seed + IWAE_SEED_OFFSET, start])
    terms = likelihood.neg_elbo(rt, xb, eps=elbo_rng.standard_normal((len(xb), rt.latent_dim), dtype=np.float32))
    return terms | {"iwae": likelihood.iwae_nll(rt, xb, k=k, rng=iwae_rng)}


_worker_runtime = None  # each worker process's own VAERuntime (spawned processes share nothing)


def _load_worker(model_dir, variant: str, threads: int) -> None:
    global _worker_runtime
    from edgevae.runtime import VAERuntime

    _worker_runtime = VAERuntime.load(model_dir, variant=variant, threads=threads)


def _worker_batch(task) -> dict:
    xb, k, seed, start = task
    return batch_terms(_worker_runtime, xb, k=k, seed=seed, start=start)


def evaluate_images(model_dir, x: np.ndarray, *, variant: str = "fp32", k: int, batch_size: int, seed: int,
                    threads: int = 1, workers: int | None = None) -> dict:
    """-ELBO (one seeded draw per image) and IWAE NLL of a model dir's variant on x [N,C,H,W], with
    standard errors, in `workers` processes of `threads` onnxruntime threads each (default: one process
    per usable core). Processes, not threads: single-thread worker processes evaluated faster than
    one process of as many threads (docs/results.md, Evaluation)."""
    from edgevae.runtime.inference.checks import InputError, check_count, check_threads, usable_cores

    threads, cores = check_threads(threads, "--threads"), usable_cores()
    workers = max(1, cores // threads) if workers is None else check_count("--workers", workers)
    if workers * threads > cores:  # more would only time-slice the cores (and a huge count would fork-bomb)
        raise InputError(f"--workers {workers} x --threads {threads} is more than the {cores} CPU core(s) this process may use")
    tasks = [(x[i:i + batch_size], k, seed, i) for i in range(0, len(x), batch_size)]
    workers = min(workers, len(tasks))
    parts = {"neg_elbo": [], "bce": [], "kl": [], "iwae": []}
    with _progress(len(x), k, f"(onnxruntime, {variant}, {workers} x {threads} threads)") as bar:
        for terms in _map(tasks, model_dir, variant, threads, workers):
            for key in parts:
                parts[key].append(terms[key])
            bar.update(len(terms["iwae"]))
    values = {key: np.concatenate(v) for key, v in parts.items()}
    (elbo, elbo_se), (nll, nll_se) = mean_stderr(values["neg_elbo"]), mean_stderr(values["iwae"])
    return {"test_neg_elbo": elbo, "test_neg_elbo_stderr": elbo_se, "test_bce": float(values["bce"].mean()),
            "test_kl": float(values["kl"].mean()), "iwae_nll": nll, "iwae_nll_stderr": nll_se, "workers": workers}


def _map(tasks: list, model_dir, variant: str, threads: int, workers: int):
    """batch_terms of every task, in order: in this process, or in spawned worker processes (fork would
    copy onnxruntime's and PyTorch's thread pools in whatever state they are). concurrent.futures, not
    multiprocessing.Pool: a worker that dies, or fails to load the model, breaks the pool with an error
    where Pool would wait forever. On any way out but success, a SIGTERM turned exception included, the
    workers are terminated so that none outlives the command."""
    _load_worker(model_dir, variant, threads)  # here first: a bad model dir gets its own one-line error
    if workers == 1:
        yield from map(_worker_batch, tasks)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    others = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _load_worker, (str(model_dir), variant, threads))
    # Not pool.map: it cancels the pending futures on the way out, and 3.11's handler of the broken pool
    # then fails on them with a traceback of its own.
    futures = [pool.submit(_worker_batch, task) for task in tasks]
    try:
        for future in futures:
            yield future.result()
    except BaseException:
        for process in set(multiprocessing.active_children()) - others:
            process.terminate()
        pool.shutdown()  # the pool, now broken, fails its pending batches and returns at once
        raise
    pool.shutdown()


def evaluate_model_dir(model_dir, variant: str = "fp32", *, data: DataOverrides = DataOverrides(), iwae_k=1000,
                       limit_test=None, batch_size=20, threads=1, workers=None) -> dict:
    """-ELBO and IWAE NLL (nats per image) of a model dir's variant, computed with onnxruntime + numpy, on the
    held-out test images of the run it was exported from (data: fields of its data config to replace)."""
    from edgevae.runtime.contract import manifest as contract

    _check(iwae_k, limit_test, batch_size)
    model = contract.load(model_dir)
    model.check_variant(variant)
    manifest = model.manifest
    c = model.conventions
    if (c.decoder_head, c.posterior) not in (("bernoulli_means", "gaussian"), ("bernoulli_logits", "gaussian")):
        # runtime/inference/likelihood.py's estimators are Bernoulli with a Gaussian posterior; for any other model nats
        # would be meaningless (issue 23): quantize reports its decoder PSNR instead
        raise ValueError(f"eval reports nats for Bernoulli decoders with a Gaussian posterior; this model declares "
                         f"decoder_head {c.decoder_head} and posterior {c.posterior} (`edgevae quantize` reports its PSNR)")
    train_cfg = dict(manifest.training.train_config) if manifest.training is not None else {}
    x = held_out_images(data.apply(train_cfg), binarize=bool(train_cfg.get("binarize")), limit=limit_test,
                        image_shape=manifest.image_shape).numpy()
    result = evaluate_images(model_dir, x, variant=variant, k=iwae_k, batch_size=batch_size, seed=train_cfg.get("seed", 0),
                             threads=threads, workers=workers)
    return result | {"iwae_k": iwae_k, "eval_images": len(x), "engine": "onnx", "variant": variant}


def evaluate_checkpoint(checkpoint, *, data: DataOverrides = DataOverrides(), iwae_k=1000, limit_test=None, batch_size=20,
                        device="cpu", engine: str = ENGINE_DEFAULT, threads=1, workers=None) -> dict:
    """-ELBO and IWAE NLL (nats per image) of a checkpoint on its run's held-out test images (data: fields of
    its data config to replace), through onnxruntime (engine "onnx") or PyTorch eager ("torch")."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    _check(iwae_k, limit_test, batch_size)
    if engine == "onnx" and device != "cpu":
        engine = "torch"  # the GPU is PyTorch's; onnxruntime here runs on the CPU
    model, state = load_model(checkpoint)
    train_cfg = state.get("train_config", {})
    test_x = held_out_images(data.apply(train_cfg), binarize=bool(train_cfg.get("binarize")), limit=limit_test,
                             image_shape=model.config.image_shape)
    seed = train_cfg.get("seed", 0)
    if engine == "onnx":
        from edgevae.export.exporter import export_model_dir

        with tempfile.TemporaryDirectory(prefix="edgevae-eval-") as tmp:
            model_dir = export_model_dir(model, Path(tmp) / "model")
            result = evaluate_images(model_dir, test_x.numpy(), k=iwae_k, batch_size=batch_size, seed=seed,
                                     threads=threads, workers=workers)
    else:
        model.to(device)
        result = evaluate(model, test_x, seed=seed, device=device)
        nll, nll_se = mean_stderr(iwae_torch(model, test_x, k=iwae_k, batch_size=batch_size, seed=seed, device=device))
        result |= {"iwae_nll": nll, "iwae_nll_stderr": nll_se}
    return result | {"iwae_k": iwae_k, "eval_images": len(test_x), "engine": engine}


def main(args) -> None:
    target = Path(args.target)
    if target.is_dir() and not (target / "manifest.json").exists():
        raise ValueError(f"checkpoint {target} is not a file, nor a model dir (it has no manifest.json)")
    data = DataOverrides(data=args.data, data_dir=args.data_dir, image_size=args.image_size, channels=args.channels)
    if target.is_dir():
        result = evaluate_model_dir(target, args.variant, data=data, iwae_k=args.iwae_k, limit_test=args.limit_test,
                                    batch_size=args.batch_size, threads=args.threads, workers=args.workers)
        what = f"{target} variant {args.variant}"
    else:
        if args.variant != "fp32":
            raise ValueError("--variant applies to a model dir; a checkpoint holds fp32 weights")
        result = evaluate_checkpoint(target, data=data, iwae_k=args.iwae_k, limit_test=args.limit_test,
                                     batch_size=args.batch_size, device=args.device, engine=args.engine,
                                     threads=args.threads, workers=args.workers)
        metrics_path = target.parent / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        metrics["final"] = metrics.get("final", {}) | result
        write_json(metrics_path, metrics)
        what = str(target)
    print(f"{what}: test -ELBO {result['test_neg_elbo']:.2f}, IWAE NLL (k={args.iwae_k}) "
          f"{result['iwae_nll']:.2f} +- {result['iwae_nll_stderr']:.2f} nats over {result['eval_images']} images "
          f"({result['engine']})")
