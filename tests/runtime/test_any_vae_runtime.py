"""Declared conventions applied by the runtime (issue 23): spatial latents, [-1, 1] pixels, image and logits
heads, latent scale and shift, deterministic encoders, models without a prior, fully convolutional sizes, and
`edgevae decode`. The graphs are tiny ONNX graphs built here whose outputs numpy computes exactly, so every
mapping the runtime applies is checked against its definition (float32 tolerances: a few ulps of the values)."""

import dataclasses
import json

import numpy as np
import pytest
from helpers import run_cli

onnx = pytest.importorskip("onnx", reason="builds its graphs with onnx, which the runtime's own install lacks")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgevae.runtime import InputError, ModelDirError, VAERuntime  # noqa: E402
from edgevae.runtime.contract import manifest as contract  # noqa: E402
from edgevae.runtime.inference.vae import NO_PRIOR  # noqa: E402

C, H, W, LATENT_C, F = 3, 8, 8, 4, 2  # image [3, 8, 8], latent [4, 4, 4]: downsampling 2
RNG = np.random.default_rng(7)
ENC_W = RNG.standard_normal((LATENT_C, C, F, F)).astype(np.float32) * 0.3  # Conv k2 s2: patch -> latent pixel
DEC_W = RNG.standard_normal((LATENT_C, C, F, F)).astype(np.float32) * 0.3  # ConvTranspose k2 s2: latent pixel -> patch
ATOL = 1e-5  # float32 sums of 12-16 products of values <= ~3: rounding is ~1e-6


def _patches(x):  # [N,C,H,W] -> [N,C,h,w,F,F]
    n, c, h, w = x.shape
    return x.reshape(n, c, h // F, F, w // F, F).transpose(0, 1, 2, 4, 3, 5)


def np_encode(x):  # the encoder graph's first output, in numpy
    return np.einsum("kcij,nchwij->nkhw", ENC_W, _patches(x))


def np_decode(z):  # the decoder graph's output (before its head), in numpy
    n, _, h, w = z.shape
    y = np.einsum("kcij,nkhw->nchwij", DEC_W, z)
    return y.transpose(0, 1, 2, 4, 3, 5).reshape(n, C, h * F, w * F)


def _graph(nodes, inputs, outputs, inits):
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _encoder(stochastic: bool) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", C, "H", "W"])
    latent = ["batch", LATENT_C, "h", "w"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["mu" if stochastic else "z"], kernel_shape=[F, F], strides=[F, F])]
    outs = [helper.make_tensor_value_info("mu" if stochastic else "z", TensorProto.FLOAT, latent)]
    inits = [numpy_helper.from_array(ENC_W, "w")]
    if stochastic:  # logvar = 0.5 * mu - 1
        nodes += [helper.make_node("Mul", ["mu", "half"], ["m"]), helper.make_node("Sub", ["m", "one"], ["logvar"])]
        inits += [numpy_helper.from_array(np.float32(0.5), "half"), numpy_helper.from_array(np.float32(1.0), "one")]
        outs.append(helper.make_tensor_value_info("logvar", TensorProto.FLOAT, latent))
    return _graph(nodes, [x], outs, inits)


def _decoder() -> bytes:
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", LATENT_C, "h", "w"])
    y = helper.make_tensor_value_info("x_hat", TensorProto.FLOAT, ["batch", C, "H", "W"])
    node = helper.make_node("ConvTranspose", ["z", "w"], ["x_hat"], kernel_shape=[F, F], strides=[F, F])
    return _graph([node], [z], [y], [numpy_helper.from_array(DEC_W, "w")])


def make_dir(folder, conventions: contract.Conventions):
    """A model dir of the two graphs above with the given conventions (fp32 only, no goldens)."""
    folder.mkdir()
    stochastic = conventions.stochastic
    (folder / "encoder.onnx").write_bytes(_encoder(stochastic))
    (folder / "decoder.onnx").write_bytes(_decoder())
    manifest = contract.Manifest(
        format=contract.FORMAT, edgevae_version="test", latent_dim=LATENT_C * (H // F) * (W // F),
        image_shape=(C, H, W), opset=20,
        io={"encoder": contract.GraphIO(("x",), ("mu", "logvar") if stochastic else ("z",)),
            "decoder": contract.GraphIO(("z",), ("x_hat",))},
        variants={"fp32": {g: contract.file_entry(folder / f"{g}.onnx") for g in contract.GRAPH_NAMES}},
        latent_shape=(LATENT_C, H // F, W // F), conventions=conventions)
    contract.write(folder, manifest)
    return folder


LDM = contract.Conventions(pixel_range=(-1.0, 1.0), decoder_head="image", prior="none", latent_scale=0.25,
                           latent_shift=0.5, downsampling=F)
TINY = dataclasses.replace(LDM, posterior="deterministic", latent_scale=1.0, latent_shift=0.0, receptive_field=1)


@pytest.fixture(scope="module")
def ldm(tmp_path_factory):
    return VAERuntime.load(make_dir(tmp_path_factory.mktemp("ldm") / "m", LDM), variant="fp32", threads=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return VAERuntime.load(make_dir(tmp_path_factory.mktemp("tiny") / "m", TINY), variant="fp32", threads=1)


def test_encode_feeds_signed_pixels_and_returns_scaled_latents(ldm):
    x = RNG.random((3, C, H, W), dtype=np.float32)
    mu, logvar = ldm.encode(x)
    raw = np_encode(2 * x - 1)  # [0, 1] images are fed as [-1, 1]
    np.testing.assert_allclose(mu, (raw - 0.5) * 0.25, atol=ATOL)  # (latent - shift) x scale
    np.testing.assert_allclose(logvar, 0.5 * raw - 1 + 2 * np.log(0.25), atol=ATOL)  # variance scaled by scale^2
    assert mu.shape == (3, *ldm.latent_shape) == (3, LATENT_C, H // F, W // F)


def test_decode_unscales_latents_and_maps_the_image_head_onto_unit_range(ldm):
    z = RNG.standard_normal((5, *ldm.latent_shape)).astype(np.float32) * 4
    x_hat = ldm.decode(z)
    want = np.clip((np_decode(z / 0.25 + 0.5) + 1) / 2, 0, 1)
    np.testing.assert_allclose(x_hat, want, atol=ATOL)
    assert 0 < np.mean(want == 0) < 1 and 0 < np.mean(want == 1) < 1  # the clip was exercised at both ends


def test_reconstruct_round_trips_through_the_conventions(ldm):
    x = RNG.random((2, C, H, W), dtype=np.float32)
    want = np.clip((np_decode(np_encode(2 * x - 1)) + 1) / 2, 0, 1)  # scale and shift cancel
    np.testing.assert_allclose(ldm.reconstruct(x), want, atol=ATOL)


def test_fully_convolutional_models_take_other_sizes_that_divide(ldm):
    x = RNG.random((2, C, 6, 10), dtype=np.float32)
    mu, _ = ldm.encode(x)
    assert mu.shape == (2, LATENT_C, 3, 5)
    assert ldm.decode(mu).shape == (2, C, 6, 10)
    with pytest.raises(InputError, match="multiples of 2"):
        ldm.encode(RNG.random((1, C, 7, 8), dtype=np.float32))
    with pytest.raises(InputError, match=r"C = 4"):
        ldm.decode(np.zeros((1, 3, 4, 4), np.float32))
    frames = ldm.interpolate(x[0], x[1], steps=3)
    assert frames.shape == (3, C, 6, 10)


def test_no_prior_refuses_sample_with_one_line(ldm, tmp_path):
    for call in (lambda: ldm.sample(2, seed=0), lambda: next(ldm.iter_samples(2, seed=0))):
        with pytest.raises(InputError) as info:
            call()
        assert str(info.value) == NO_PRIOR
    done = run_cli("sample", "--model", ldm.model.path, "--n", "2", "--out", tmp_path / "s.png")
    assert done.returncode == 2 and done.stderr.strip().endswith(NO_PRIOR) and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "s.png").exists()


def test_deterministic_encoder_returns_the_latent_alone(tiny):
    x = RNG.random((2, C, H, W), dtype=np.float32)
    z, none = tiny.encode(x)
    assert none is None
    np.testing.assert_allclose(z, np_encode(2 * x - 1), atol=ATOL)
    np.testing.assert_array_equal(tiny.reparameterize(z, None, seed=3), z)  # the identity
    with pytest.raises(InputError, match="deterministic"):
        tiny.reparameterize(z, np.zeros_like(z), seed=0)
    np.testing.assert_allclose(tiny.reconstruct(x, seed=5), tiny.reconstruct(x), atol=0)


def test_logits_head_applies_the_sigmoid(tmp_path):
    conventions = contract.Conventions(decoder_head="bernoulli_logits", latent_scale=2.0)
    rt = VAERuntime.load(make_dir(tmp_path / "m", conventions), variant="fp32", threads=1)
    z = RNG.standard_normal((4, *rt.latent_shape)).astype(np.float32)
    np.testing.assert_allclose(rt.decode(z), 1 / (1 + np.exp(-np_decode(z / 2))), atol=ATOL)
    samples = rt.sample(3, seed=1)  # the prior is on the graph's latent: z ~ N(0, I) fed as drawn
    want = 1 / (1 + np.exp(-np_decode(np.random.default_rng(1).standard_normal((3, *rt.latent_shape), dtype=np.float32))))
    np.testing.assert_allclose(samples, want, atol=ATOL)


def test_decode_cli_streams_latents_to_npy_and_png(ldm, tmp_path):
    z = RNG.standard_normal((70, *ldm.latent_shape)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    done = run_cli("decode", "--model", ldm.model.path, "--latents", tmp_path / "z.npy", "--out", tmp_path / "x.npy")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), ldm.decode(z), atol=ATOL)
    assert run_cli("decode", "--model", ldm.model.path, "--latents", tmp_path / "z.npy", "--out",
                   tmp_path / "x.png").returncode == 0
    np.save(tmp_path / "bad.npy", z[:, :2])
    done = run_cli("decode", "--model", ldm.model.path, "--latents", tmp_path / "bad.npy", "--out", tmp_path / "y.npy")
    assert done.returncode == 2 and "got [70, 2, 4, 4]" in done.stderr and len(done.stderr.splitlines()) == 1
    (tmp_path / "pickle.npy").write_bytes(b"\x80\x04not npy")
    done = run_cli("decode", "--model", ldm.model.path, "--latents", tmp_path / "pickle.npy", "--out", tmp_path / "y.npy")
    assert done.returncode == 2 and "not a .npy array" in done.stderr
    assert not (tmp_path / "y.npy").exists()


def test_iter_decode_equals_decode_on_a_memory_map(ldm, tmp_path):
    z = RNG.standard_normal((9, *ldm.latent_shape)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    mapped = np.load(tmp_path / "z.npy", mmap_mode="r")
    np.testing.assert_array_equal(np.concatenate(list(ldm.iter_decode(mapped))), ldm.decode(z))


@pytest.mark.parametrize("change, message", [
    ({"pixel_range": (0.0, 2.0)}, "pixel_range"),
    ({"decoder_head": "gaussian_mean"}, "decoder_scale is given exactly"),
    ({"decoder_head": "softmax"}, "decoder_head"),
    ({"latent_scale": 0.0}, "latent_scale"),
    ({"downsampling": 4}, "downsampling 4 needs"),
])
def test_bad_conventions_are_refused_with_one_line(tmp_path, change, message):
    folder = make_dir(tmp_path / "m", LDM)
    raw = contract.load(folder).manifest.to_json()
    raw["conventions"].update({k: list(v) if isinstance(v, tuple) else v for k, v in change.items()})
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelDirError, match=message):
        contract.load(folder)


def test_latent_shape_must_hold_latent_dim_values(tmp_path):
    folder = make_dir(tmp_path / "m", LDM)
    raw = contract.load(folder).manifest.to_json()
    raw["latent_shape"] = [4, 4, 5]
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelDirError, match="holds 80 values, latent_dim says 64"):
        contract.load(folder)


def test_a_manifest_without_conventions_is_the_classic_family():
    model = contract.load(None)
    assert model.manifest.conventions is None and model.conventions == contract.CLASSIC
    assert model.latent_shape == (model.latent_dim,)


@pytest.mark.parametrize("tile, overlap", [(4, 2), (5, 2), (3, 0), (16, None)])
def test_tiled_decode_equals_whole_decode_when_the_overlap_covers_the_receptive_field(tiny, tile, overlap):
    z = RNG.standard_normal((2, LATENT_C, 9, 13)).astype(np.float32)  # not a multiple of the tile: a flush last tile
    np.testing.assert_allclose(tiny.decode_tiled(z, tile=tile, overlap=overlap), tiny.decode(z), atol=ATOL)


def test_tiled_decode_refuses_what_it_cannot_do(tiny, tmp_path):
    z = np.zeros((1, LATENT_C, 8, 8), np.float32)
    with pytest.raises(InputError, match="overlap 4 must be smaller than tile 4"):
        tiny.decode_tiled(z, tile=4, overlap=4)
    with pytest.raises(InputError, match="fully convolutional"):
        VAERuntime.load(None, variant="fp32").decode_tiled(np.zeros((1, 64), np.float32))
    np.save(tmp_path / "z.npy", RNG.standard_normal((3, LATENT_C, 6, 10)).astype(np.float32))
    done = run_cli("decode", "--model", tiny.model.path, "--latents", tmp_path / "z.npy", "--out", tmp_path / "x.npy",
                   "--tile", "4")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), tiny.decode(np.load(tmp_path / "z.npy")), atol=ATOL)
