"""`edgevae eval`: test -ELBO and the IWAE estimate of the NLL, merged into the run's metrics.json."""

import json
from pathlib import Path

import torch

from .checkpoint import load_model, write_json
from .data import DataConfig, binarize_fixed, load_images
from .loss import iwae_nll
from .trainer import TEST_BINARIZE_SEED, evaluate


def evaluate_checkpoint(checkpoint, data_dir=None, iwae_k=1000, limit_test=None, batch_size=20, device="cpu",
                        data=None, image_size=None, channels=None) -> dict:
    """Test -ELBO and IWAE NLL on the test images of the checkpoint's dataset spec (data/data_dir/image_size/
    channels override what it was trained with)."""
    if iwae_k < 1 or batch_size < 1 or (limit_test is not None and limit_test < 1):
        raise ValueError(f"--iwae-k, --batch-size and --limit-test must be >= 1 (got {iwae_k}, {batch_size}, {limit_test})")
    model, state = load_model(checkpoint)
    model.to(device)
    train_cfg = state.get("train_config", {})
    data_config = DataConfig.from_train_config(train_cfg, data=data, data_dir=data_dir, image_size=image_size, channels=channels)
    test_x = load_images(data_config).test
    if tuple(test_x.shape[1:]) != model.config.image_shape:
        raise ValueError(f"{data_config.data} gives {list(test_x.shape[1:])} images; the model takes {list(model.config.image_shape)}")
    test_x = test_x[:limit_test]
    if train_cfg.get("binarize"):
        test_x = binarize_fixed(test_x, TEST_BINARIZE_SEED)
    seed = train_cfg.get("seed", 0)
    result = evaluate(model, test_x, seed=seed, device=device)

    from tqdm import tqdm

    torch.manual_seed(seed)
    total = 0.0
    for i in tqdm(range(0, len(test_x), batch_size), desc=f"IWAE k={iwae_k}", mininterval=1.0):
        total += iwae_nll(model, test_x[i : i + batch_size].to(device), iwae_k).sum().item()
    result |= {"iwae_nll": total / len(test_x), "iwae_k": iwae_k, "eval_images": len(test_x)}
    return result


def main(args) -> None:
    result = evaluate_checkpoint(args.checkpoint, args.data_dir, args.iwae_k, args.limit_test, args.batch_size, args.device,
                                 args.data, args.image_size, args.channels)
    metrics_path = Path(args.checkpoint).parent / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metrics["final"] = metrics.get("final", {}) | result
    write_json(metrics_path, metrics)
    print(f"test -ELBO {result['test_neg_elbo']:.2f} nats, IWAE NLL (k={args.iwae_k}) {result['iwae_nll']:.2f} nats")
