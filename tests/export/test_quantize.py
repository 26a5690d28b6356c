"""export/quantize.py, calibrate.py, variants.py: variants built, recorded, measured, loadable; refusals.

One briefly trained model is exported and quantized once for the module (`quantized`); several tests
check that one result.
"""

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgevae.export.calibrate import ArrayReader
from edgevae.train.data import DataOverrides
from helpers import REAL_DATA, flip_byte, sha256_of

DATA = REAL_DATA
STEPS = 40  # Adam steps on batches of 64 real training images
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
    flip_byte(model_dir / "decoder.onnx", offset=100)
    before = sorted(p.name for p in model_dir.iterdir())
    with pytest.raises(ValueError, match="decoder.onnx does not match its sha256") as err:
        quantize_model_dir(model_dir, data=DataOverrides(data_dir=DATA))
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in model_dir.iterdir()) == before


def test_nll_settings_are_checked(tmp_path):
    from edgevae.export.quantize import QuantizeConfig, quantize_model_dir

    for bad in ({"nll_images": -1}, {"nll_k": 0}):
        with pytest.raises(ValueError, match="--nll-"):
            quantize_model_dir(tmp_path, QuantizeConfig(**bad), data=DataOverrides(data_dir=DATA))


def test_unknown_variant_is_named(tmp_path):
    from edgevae.export.quantize import QuantizeConfig, quantize_model_dir

    with pytest.raises(ValueError, match="unknown variant 'int4'"):
        quantize_model_dir(tmp_path, QuantizeConfig(variants=("int4",)), data=DataOverrides(data_dir=DATA))


def test_select_needs_a_clear_gain_over_fp32_and_stays_in_budget():
    from edgevae.export.selection import MIN_GAIN, select

    def graphs(total_by_batch):  # {batch: total ms} -> the latency record, split evenly over the graphs
        return {g: {b: t / 2 for b, t in total_by_batch.items()} for g in ("encoder", "decoder")}

    within_noise = 1 - MIN_GAIN / 2
    latency = {"fp32": graphs({"1": 1.0, "64": 10.0, "256": 40.0}),
               "fp16": graphs({"1": within_noise, "64": 9.9, "256": 39.0}),
               "int8": graphs({"1": 0.8, "64": 5.0, "256": 20.0}),
               "int8-dynamic": graphs({"1": 0.1, "64": 1.0, "256": 1.0})}
    both = lambda choice: {"encoder": choice, "decoder": choice}  # noqa: E731
    assert select(latency, ["fp16", "int8"]) == both({"1": "int8", "64": "int8", "256": "int8"})
    assert select(latency, ["fp16"]) == both({"1": "fp32", "64": "fp32", "256": "fp32"})  # within noise of fp32
    assert select(latency, []) == both({"1": "fp32", "64": "fp32", "256": "fp32"})  # int8-dynamic: outside budget
    latency["int8"]["decoder"]["1"] = 0.6  # slower than fp32's 0.5: only the encoder takes int8 at batch 1
    assert select(latency, ["int8"])["decoder"]["1"] == "fp32" and select(latency, ["int8"])["encoder"]["1"] == "int8"


def briefly_trained_model_dir(path: Path) -> Path:
    """A VAE trained for STEPS batches of 64 real training images, exported: random weights would make
    the quality figures meaningless (their outputs are all near 0.5).

    Trains on one torch thread: on 2 cores shared with other work, 2 threads took 0.7 s a step against
    0.13-0.18 s for 1 (measured), which made this the slowest part of the test suite."""
    import torch

    from edgevae.export.exporter import export_model_dir
    from edgevae.train.data import load_fashion_mnist
    from edgevae.train.loss import neg_elbo
    from helpers import make_model

    train_x, _ = load_fashion_mnist(DATA)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = make_model(seed=0).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        torch.manual_seed(0)
        for step in range(STEPS):
            loss = neg_elbo(model, train_x[step * 64:(step + 1) * 64]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return export_model_dir(model.eval(), path, images=train_x[:64].numpy())
    finally:
        torch.set_num_threads(threads)


@pytest.mark.heavy
@needs_data
def test_a_binarized_model_is_calibrated_and_measured_on_binarized_images():
    """A model trained with --binarize is quantized against what it was trained and is evaluated on: the
    test images are the fixed binarized set `edgevae eval` scores, the calibration images seeded draws."""
    from types import SimpleNamespace

    from edgevae.export import calibrate
    from edgevae.train.data import DataConfig, held_out_images

    assert calibrate.binarized(SimpleNamespace(training=SimpleNamespace(train_config={"binarize": True})))
    assert not calibrate.binarized(SimpleNamespace(training=None))
    test = held_out_images(calibrate.images_of(DATA), binarize=True, limit=50).numpy()
    assert set(np.unique(test)) == {0.0, 1.0}  # what eval scores: the same function, the same fixed draw
    assert np.array_equal(test, held_out_images(DataConfig(data_dir=str(DATA)), binarize=True, limit=50).numpy())
    assert not np.array_equal(test, held_out_images(calibrate.images_of(DATA), limit=50).numpy())
    calibration = calibrate.training_images(DATA, 64, seed=0, binarize=True)
    assert set(np.unique(calibration)) == {0.0, 1.0}
    assert np.abs(calibration.mean() - calibrate.training_images(DATA, 64, seed=0).mean()) < 0.02  # a draw of the same images


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> tuple[Path, dict]:
    """(model dir, manifest) of the briefly trained model after quantize_model_dir with every variant;
    128 calibration and 200 test images (50 of them, k=20, for the NLL cost) keep it to seconds."""
    if not DATA.is_dir():
        pytest.skip(f"real Fashion-MNIST not found at {DATA}")
    from edgevae.export.quantize import QuantizeConfig, quantize_model_dir

    model_dir = briefly_trained_model_dir(tmp_path_factory.mktemp("quantize") / "m")
    return model_dir, quantize_model_dir(model_dir, QuantizeConfig(calibration_images=128, test_images=200, nll_images=50, nll_k=20),
                                         data=DataOverrides(data_dir=DATA)).to_json()


@pytest.mark.heavy
@needs_data
def test_quantize_records_every_variant_with_its_hash(quantized):
    from edgevae.export.quantize import format_table
    from edgevae.runtime.contract.manifest import parse_manifest

    model_dir, manifest = quantized
    assert set(manifest["variants"]) == {"fp32", "int8", "int8-dynamic", "fp16"}
    for variant, graphs in manifest["variants"].items():
        assert set(graphs) == {"encoder", "decoder"}
        for graph, entry in graphs.items():
            assert entry["sha256"] == sha256_of(model_dir / entry["file"])
            assert entry["bytes"] == (model_dir / entry["file"]).stat().st_size
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert set(manifest["quality"]) == {"int8", "int8-dynamic", "fp16"}
    settings = manifest["quality"]["int8"]["settings"]
    assert settings["rewrites"] == {"encoder": ["pad-input-channels"], "decoder": ["conv-transpose-as-conv"]}
    assert settings["calibration"] == {"encoder": "minmax", "decoder": "percentile"} and settings["percentile"] == 99.9
    table = format_table(parse_manifest(manifest))
    assert all(v in table for v in manifest["variants"])


@pytest.mark.heavy
@needs_data
def test_int8_graphs_carry_their_rewrites(quantized):
    """The int8 decoder has no ConvTranspose left (ORT has no int8 one); the int8 encoder's first Conv
    reads the image padded to 4 channels; both keep float32 I/O."""
    model_dir, manifest = quantized
    decoder = onnx.load(model_dir / manifest["variants"]["int8"]["decoder"]["file"])
    encoder = onnx.load(model_dir / manifest["variants"]["int8"]["encoder"]["file"])
    assert "ConvTranspose" not in {n.op_type for n in decoder.graph.node}
    (sigmoid,) = [n for n in decoder.graph.node if n.op_type == "Sigmoid"]
    assert sigmoid.output[0] == decoder.graph.output[0].name  # kept fp32: no QuantizeLinear after it
    pad = next(n for n in encoder.graph.node if n.op_type == "Pad")
    assert pad.input[0] in {n.output[0] for n in encoder.graph.node if n.op_type == "DequantizeLinear"}
    first_weight = next(i for i in encoder.graph.initializer if list(i.dims)[:2] == [32, 4])
    assert first_weight.data_type == onnx.TensorProto.INT8
    for model in (encoder, decoder):
        for value in list(model.graph.input) + list(model.graph.output):
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.heavy
@needs_data
def test_quality_of_every_variant_is_within_its_threshold(quantized):
    q = quantized[1]["quality"]
    # Measured on this 40-step model (calibration 128, test 200 images): int8 40.9 dB, -ELBO +0.18%,
    # mu max |diff| 0.21; int8-dynamic 55.7 dB, -0.06%; fp16 94 dB, 0.000%. The int8 limits are the
    # selection budget's (35 dB, 1%), 6 dB and 5x under what it measured, yet a mis-calibrated int8 fails
    # all three: calibrated on inputs at half their true scale it measured 29.4 dB, -ELBO +2.9%, mu max
    # |diff| 1.2 (at a quarter: 20.1 dB, +10.1%, 1.8).
    assert q["int8"]["decoder_psnr_db"] >= 35 and abs(q["int8"]["neg_elbo_rel_change"]) <= 0.01
    assert q["int8"]["encoder_mu_max_abs_diff"] <= 0.5 and q["int8"]["encoder_logvar_max_abs_diff"] <= 0.5
    assert q["int8"]["size_vs_fp32"] <= 0.30
    assert q["int8-dynamic"]["decoder_psnr_db"] >= 40 and abs(q["int8-dynamic"]["neg_elbo_rel_change"]) <= 0.01
    assert q["fp16"]["decoder_psnr_db"] >= 70 and abs(q["fp16"]["neg_elbo_rel_change"]) <= 1e-3
    assert q["fp16"]["encoder_mu_max_abs_diff"] <= 1e-2
    for variant in q.values():
        assert variant["test_images"] == 200 and variant["test_neg_elbo_fp32"] == q["int8"]["test_neg_elbo_fp32"]


@pytest.mark.heavy
@needs_data
def test_each_variant_reports_its_iwae_nll_cost_paired_with_fp32(quantized):
    from edgevae.export import calibrate, quality
    from edgevae.runtime.contract.manifest import load
    from edgevae.runtime.inference.graph_pair import GraphPair
    from edgevae.train.data import held_out_images

    model_dir, manifest = quantized
    fp32 = GraphPair.of_variant(load(model_dir), "fp32")
    images = held_out_images(calibrate.images_of(DATA), limit=50).numpy()
    reference = quality.iwae_per_image(fp32, images, k=20)
    itself = quality.nll_cost(reference, fp32, images=images, k=20)
    assert itself.cost == 0 and itself.cost_stderr == 0  # the same noise for every graph: differences are paired
    for variant, q in manifest["quality"].items():
        nll = q["nll"]
        assert (nll["k"], nll["images"], nll["nll_fp32"]) == (20, 50, round(float(reference.mean()), 4)), variant
        assert nll["cost"] == pytest.approx(nll["nll"] - nll["nll_fp32"], abs=2e-4)
        assert 0 <= nll["cost_stderr"] < 1, variant
    # fp16 weights move the NLL by ~1e-3 nats; int8 by tenths (0.38 +- 0.08 on the shipped model, k=100)
    assert abs(manifest["quality"]["fp16"]["nll"]["cost"]) < 0.02
    assert abs(manifest["quality"]["int8"]["nll"]["cost"]) < 3


@pytest.mark.heavy
@needs_data
def test_every_variant_runs_through_the_runtime(quantized):
    from edgevae.runtime import VAERuntime

    model_dir = quantized[0]
    z = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    reference = VAERuntime.load(model_dir, variant="fp32").decode(z)
    for variant in ("int8", "int8-dynamic", "fp16"):
        rt = VAERuntime.load(model_dir, variant=variant)
        x_hat = rt.decode(z)
        assert x_hat.shape == (5, 1, 28, 28) and np.abs(x_hat - reference).max() < 0.2
        mu, logvar = rt.encode(x_hat)
        assert mu.shape == logvar.shape == (5, 64)


@pytest.mark.heavy
@needs_data
def test_quantize_adds_goldens_for_every_variant_that_verify(quantized):
    from edgevae.runtime.contract.manifest import load
    from edgevae.runtime.device.verify import verify

    model = load(quantized[0])
    golden = model.manifest.golden
    assert set(golden.outputs) == {"fp32", "int8", "int8-dynamic", "fp16"} and golden.source == "edgevae quantize"
    for variant, graphs in golden.tolerance.items():  # every variant at least fp32's tolerance (the rule's floor)
        assert all(graphs[g] >= golden.tolerance["fp32"][g] for g in graphs)
    checks = verify(model)
    assert len(checks) == 8 and all(c.passed for c in checks), checks
