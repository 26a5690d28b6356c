"""Image shapes x latent sizes, end to end on tiny real data: train one short epoch -> export (parity) ->
quantize int8 -> sample and reconstruct through the runtime, for the seed shape and the other shapes the
network rule builds (gray, RGB, tiny, large, non-square), with latent sizes 2 and 128 among them."""

import numpy as np
import pytest
import torch

from edgevae.cli import main
from helpers import REAL_DATA

TRAIN_IMAGES = 256  # one epoch of 4 steps at batch 64: enough to move the weights off their initialisation


def fashion_subset(folder):
    """npy:TRAIN,TEST of the first 256 + 64 real Fashion-MNIST images (the seed shape on its own data)."""
    from edgevae.train.data import load_fashion_mnist

    train_x, test_x = load_fashion_mnist(REAL_DATA)
    folder.mkdir()
    np.save(folder / "train.npy", (train_x[:TRAIN_IMAGES].numpy() * 255).round().astype(np.uint8))
    np.save(folder / "test.npy", (test_x[:64].numpy() * 255).round().astype(np.uint8))
    return f"npy:{folder / 'train.npy'},{folder / 'test.npy'}"


CASES = {  # id: (data spec or None for Fashion-MNIST, extra train flags, latent_dim, image shape)
    "seed-1x28x28": (None, [], 64, (1, 28, 28)),
    "digits-1x8x8-latent2": ("sklearn-digits", [], 2, (1, 8, 8)),
    "patches-3x32x32-latent128": ("sklearn-patches", [], 128, (3, 32, 32)),
    # the large shapes train on 128 images (2 steps): their transposed convolutions dominate the matrix's time
    "digits-1x64x64": ("sklearn-digits", ["--image-size", "64x64", "--limit-train", "128"], 16, (1, 64, 64)),
    "patches-3x48x64": ("sklearn-patches", ["--image-size", "48x64", "--limit-train", "128"], 8, (3, 48, 64)),
}


@pytest.mark.heavy
@pytest.mark.parametrize("case", list(CASES))
def test_train_export_quantize_run(tmp_path, monkeypatch, request, case):
    spec, flags, latent_dim, shape = CASES[case]
    if spec is None:
        if not REAL_DATA.is_dir():
            pytest.skip("real Fashion-MNIST absent (apt-get install dataset-fashion-mnist)")
        spec = fashion_subset(tmp_path / "fashion")
    monkeypatch.setenv("EDGEVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("edgevae.export.quality.DECODER_SAMPLES", 64)  # quantize's PSNR sample count: 1024 is for real runs
    request.addfinalizer(lambda threads=torch.get_num_threads(): torch.set_num_threads(threads))
    torch.set_num_threads(1)  # 2 shared cores: one thread is as fast here and leaves the other free
    run, model_dir = tmp_path / "run", tmp_path / "model"
    assert main(["train", "--epochs", "1", "--out", str(run), "--data", spec, "--latent-dim", str(latent_dim),
                 "--batch-size", "64", "--limit-train", str(TRAIN_IMAGES), *flags, "--precision", "fp32"]) == 0
    assert main(["export", str(run / "checkpoint.pt"), "--out", str(model_dir)]) == 0
    # 100 calibration images: not whole batches of 64, which onnxruntime's percentile calibrator cannot stack
    assert main(["quantize", str(model_dir), "--variants", "int8", "--calibration-images", "100", "--test-images", "64"]) == 0

    from edgevae.runtime import VAERuntime
    from edgevae.runtime.contract import manifest as contract

    manifest = contract.load(model_dir).manifest
    assert tuple(manifest.image_shape) == shape and manifest.latent_dim == latent_dim
    worst = max(d for rows in manifest.parity.max_abs_diff.values() for outs in rows.values() for d in outs.values())
    assert worst <= 1e-5  # fp32 graphs vs PyTorch, on the run's own test images
    assert "test images" in manifest.parity.encoder_inputs  # real data, not the noise stand-in
    fp32, int8 = VAERuntime.load(model_dir, variant="fp32"), VAERuntime.load(model_dir, variant="int8")
    samples = int8.sample(8, seed=0)
    assert samples.shape == (8, *shape) and samples.dtype == np.float32 and 0 <= samples.min() and samples.max() <= 1
    assert np.array_equal(samples, int8.sample(8, seed=0))
    from edgevae.train.data import DataConfig, load_images

    test = load_images(DataConfig.from_train_config(manifest.training.train_config)).test[:16].numpy()
    recon_fp32, recon_int8 = fp32.reconstruct(test), int8.reconstruct(test)
    assert recon_int8.shape == test.shape
    mse = float(np.mean((recon_fp32 - recon_int8) ** 2))
    assert 10 * np.log10(1 / max(mse, 1e-12)) > 25  # int8 stays close to fp32 (dB)
    assert main(["sample", "--model", str(model_dir), "--variant", "int8", "--n", "4", "--seed", "1",
                 "--out", str(tmp_path / "grid.png")]) == 0
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as img:  # a 2x2 grid, gray or RGB as the images are
        assert img.size == (2 * shape[2], 2 * shape[1]) and img.mode == ("RGB" if shape[0] == 3 else "L")
