"""export/quantize.py, calibrate.py, variants.py: variants built, recorded, measured, loadable; refusals."""

from pathlib import Path

import numpy as np
import pytest

from edgevae.export.calibrate import ArrayReader

DATA = Path("/usr/share/datasets/fashion-mnist")
STEPS = 40
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real Fashion-MNIST not found at {DATA}")


def test_reader_feeds_a_last_partial_batch_and_rewinds():
    array = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    reader = ArrayReader("z", array, batch_size=4)
    sizes = []
    while (batch := reader.get_next()) is not None:
        sizes.append(len(batch["z"]))
    assert sizes == [4, 4, 2]
    reader.rewind()
    assert np.array_equal(reader.get_next()["z"], array[:4])


def test_reader_refuses_empty_data():
    with pytest.raises(ValueError, match="empty"):
        ArrayReader("x", np.zeros((0, 1, 28, 28), np.float32))


def test_quantize_refuses_a_changed_file_and_writes_nothing(tmp_path):
    from helpers import make_model_dir

    from edgevae.export.quantize import quantize_model_dir

    model_dir = make_model_dir(tmp_path / "m")
    with open(model_dir / "decoder.onnx", "r+b") as f:  # flip one byte
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    before = sorted(p.name for p in model_dir.iterdir())
    with pytest.raises(ValueError, match="decoder.onnx has sha256") as err:
        quantize_model_dir(model_dir, DATA)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in model_dir.iterdir()) == before


def test_unknown_variant_is_named(tmp_path):
    from edgevae.export.quantize import QuantizeConfig, quantize_model_dir

    with pytest.raises(ValueError, match="unknown variant 'int4'"):
        quantize_model_dir(tmp_path, DATA, QuantizeConfig(variants=("int4",)))


def briefly_trained_model_dir(path: Path) -> Path:
    """A VAE trained for STEPS batches of 64 real training images (seconds), exported: random weights
    would make the quality figures meaningless (their outputs are all near 0.5)."""
    import torch

    from edgevae.export.exporter import export_model_dir
    from edgevae.train.data import load_fashion_mnist
    from edgevae.train.loss import neg_elbo
    from helpers import make_model

    (train_x, _), _ = load_fashion_mnist(DATA)
    model = make_model(seed=0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    torch.manual_seed(0)
    for step in range(STEPS):
        loss = neg_elbo(model, train_x[step * 64:(step + 1) * 64]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return export_model_dir(model.eval(), path, images=train_x[:64].numpy())


@needs_data
def test_quantize_adds_measured_variants_that_the_runtime_runs(tmp_path):
    from edgevae.export.manifest import sha256
    from edgevae.export.quantize import QuantizeConfig, format_table, quantize_model_dir
    from edgevae.runtime import VAERuntime

    model_dir = briefly_trained_model_dir(tmp_path / "m")
    config = QuantizeConfig(calibration_images=128, test_images=200)
    manifest = quantize_model_dir(model_dir, DATA, config)

    assert set(manifest["variants"]) == {"fp32", "int8", "int8-dynamic", "fp16"}
    for variant, graphs in manifest["variants"].items():
        for graph, entry in graphs.items():
            assert entry["sha256"] == sha256(model_dir / entry["file"])
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".")]  # no temporary files left
    q = manifest["quality"]
    # Thresholds, with margin, from what the same settings measured on a 1-epoch model (int8: 39.6 dB,
    # -ELBO +0.10%; fp16: 94 dB) and on this 40-step one; a broken quantizer lands far outside them
    # (e.g. an int8 Sigmoid rounds small probabilities to 0 and the -ELBO of non-zero pixels explodes).
    assert q["int8"]["decoder_psnr_db"] >= 33 and abs(q["int8"]["neg_elbo_rel_change"]) <= 0.02
    assert q["int8"]["size_vs_fp32"] <= 0.30
    assert q["int8-dynamic"]["decoder_psnr_db"] >= 40 and abs(q["int8-dynamic"]["neg_elbo_rel_change"]) <= 0.01
    assert q["fp16"]["decoder_psnr_db"] >= 70 and abs(q["fp16"]["neg_elbo_rel_change"]) <= 1e-3
    assert "int8" in format_table(manifest)

    z = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    reference = VAERuntime.load(model_dir, variant="fp32").decode(z)
    for variant in ("int8", "int8-dynamic", "fp16"):
        rt = VAERuntime.load(model_dir, variant=variant)
        x_hat = rt.decode(z)
        assert x_hat.shape == (5, 1, 28, 28) and np.abs(x_hat - reference).max() < 0.2
        mu, logvar = rt.encode(x_hat)
        assert mu.shape == logvar.shape == (5, 64)
