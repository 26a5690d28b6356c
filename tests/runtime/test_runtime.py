"""edgevae.runtime.VAERuntime: numbers against a direct onnxruntime session, determinism, the
reparameterization's statistics, thread safety, `auto` variant selection, input checks, no torch."""

import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import onnxruntime as ort
import pytest
from helpers import shipped_model_dir, synthetic_images

from edgevae.runtime import InputError, VAERuntime
from edgevae.runtime.inference.selection import variant_for


@pytest.fixture(scope="module")
def images():
    return synthetic_images(12, seed=1)[:, None].astype(np.float32) / 255.0


def direct_session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_decode_and_encode_match_a_direct_onnxruntime_session(rt, model_dir, images):
    z = np.random.default_rng(5).standard_normal((7, 64), dtype=np.float32)
    (expected,) = direct_session(model_dir / "decoder.onnx").run(None, {"z": z})
    x_hat = rt.decode(z)
    assert x_hat.shape == (7, 1, 28, 28) and x_hat.dtype == np.float32
    np.testing.assert_allclose(x_hat, expected, rtol=0, atol=1e-6)
    mu_ref, logvar_ref = direct_session(model_dir / "encoder.onnx").run(None, {"x": images})
    mu, logvar = rt.encode(images)
    np.testing.assert_allclose(mu, mu_ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(logvar, logvar_ref, rtol=0, atol=1e-5)
    assert 0.0 <= x_hat.min() and x_hat.max() <= 1.0


def test_same_seed_same_samples_other_seed_other_samples(rt, model_dir):
    a = rt.sample(16, seed=3)
    assert np.array_equal(a, VAERuntime.load(model_dir).sample(16, seed=3))
    assert not np.allclose(a, rt.sample(16, seed=4))
    # sample = decode of numpy's standard normal stream for that seed
    z = np.random.default_rng(3).standard_normal((16, 64), dtype=np.float32)
    np.testing.assert_allclose(a, rt.decode(z), rtol=0, atol=1e-6)


def test_chunked_sampling_draws_the_same_noise_as_one_batch(model_dir):
    whole = VAERuntime.load(model_dir).sample(23, seed=9)
    small = VAERuntime.load(model_dir)
    small.chunk = 5  # 5 + 5 + 5 + 5 + 3
    chunks = list(small.iter_samples(23, seed=9))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    # same z for every row; only the batch size of the convolutions differs
    np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=0, atol=1e-6)


def test_reparameterize_is_mu_plus_sigma_eps_with_the_right_moments(rt):
    rng = np.random.default_rng(0)
    n = 20000
    mu1 = rng.normal(0, 2, 64).astype(np.float32)
    logvar1 = rng.uniform(-4, 2, 64).astype(np.float32)
    mu, logvar = np.tile(mu1, (n, 1)), np.tile(logvar1, (n, 1))
    z = rt.reparameterize(mu, logvar, seed=11)
    eps = np.random.default_rng(11).standard_normal((n, 64), dtype=np.float32)
    np.testing.assert_allclose(z, mu + np.exp(0.5 * logvar) * eps, rtol=1e-6, atol=1e-6)
    var = np.exp(logvar1)
    # 5 standard errors: SE(mean) = sigma/sqrt(n); SE(variance) = var*sqrt(2/(n-1)) for a normal
    assert np.all(np.abs(z.mean(0) - mu1) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(z.var(0, ddof=1) - var) < 5 * var * np.sqrt(2 / (n - 1)))


def test_reconstruct_decodes_the_mean_or_a_seeded_draw(rt, images):
    mu, logvar = rt.encode(images)
    assert np.array_equal(rt.reconstruct(images), rt.decode(mu))
    assert np.array_equal(rt.reconstruct(images, seed=2), rt.decode(rt.reparameterize(mu, logvar, seed=2)))
    assert not np.allclose(rt.reconstruct(images, seed=2), rt.reconstruct(images))


def test_interpolate_runs_from_mu_a_to_mu_b(rt, images):
    frames = rt.interpolate(images[0], images[1:2], steps=5)
    assert frames.shape == (5, 1, 28, 28)
    ends = rt.decode(rt.encode(images[:2])[0])
    np.testing.assert_allclose(frames[[0, -1]], ends, rtol=0, atol=1e-6)
    assert not np.allclose(frames[2], frames[0])


def test_threads_sharing_one_runtime_get_the_serial_results(model_dir, images):
    def job(runtime, i):
        return runtime.sample(8, seed=i) if i % 2 else runtime.reconstruct(images, seed=i)

    serial_rt = VAERuntime.load(model_dir)
    serial = [job(serial_rt, i) for i in range(8)]
    rt = VAERuntime.load(model_dir)  # fresh: its sessions get built while 8 threads want them
    results, barrier = [None] * 8, threading.Barrier(8)

    def work(i):
        barrier.wait()
        for _ in range(3):
            out = job(rt, i)
            assert results[i] is None or np.array_equal(out, results[i])
            results[i] = out

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, serial):
        assert np.array_equal(got, want)
    assert len({id(s) for s in rt._sessions.values()}) == 2  # one encoder, one decoder session


def test_auto_variant_follows_the_selection(tmp_path, model_dir):
    """A second variant made of another model's graphs shows which one `auto` ran for each batch size."""
    auto_dir = tmp_path / "auto"
    shutil.copytree(model_dir, auto_dir)
    other = shipped_model_dir(tmp_path / "other", fp32_only=False)  # its int8 graphs: other (quantized) weights
    manifest = json.loads((auto_dir / "manifest.json").read_text())
    entry = {}
    for graph in ("encoder", "decoder"):
        shutil.copy(other / f"{graph}.int8.onnx", auto_dir / f"{graph}.int8.onnx")
        entry[graph] = json.loads((other / "manifest.json").read_text())["variants"]["int8"][graph]
    manifest["variants"]["int8"] = entry
    manifest["selection"] = {"encoder": {"1": "int8"}, "decoder": {"1": "fp32", "8": "int8"}}
    (auto_dir / "manifest.json").write_text(json.dumps(manifest))

    auto, fp32, int8 = (VAERuntime.load(auto_dir, variant=v) for v in ("auto", "fp32", "int8"))
    assert np.array_equal(auto.sample(7, seed=0), fp32.sample(7, seed=0))
    assert np.array_equal(auto.sample(8, seed=0), int8.sample(8, seed=0))
    assert np.array_equal(auto.sample(300, seed=0)[:8], int8.sample(300, seed=0)[:8])
    assert not np.allclose(fp32.sample(8, seed=0), int8.sample(8, seed=0))
    assert [variant_for(auto.model.manifest, "auto", batch=n, graph="decoder") for n in (1, 7, 8, 1000)] == ["fp32", "fp32", "int8", "int8"]
    x = auto.sample(4, seed=1)
    assert np.array_equal(auto.encode(x)[0], int8.encode(x)[0])  # the encoder's own selection
    no_selection = VAERuntime.load(model_dir, variant="auto")
    assert variant_for(no_selection.model.manifest, "auto", batch=64, graph="decoder") == "fp32"


BAD_CALLS = [
    ("encode", lambda rt, x: rt.encode(x[:, 0]), "shape [N, 1, 28, 28]"),
    ("encode", lambda rt, x: rt.encode((x * 255).astype(np.uint8)), "uint8"),
    ("encode", lambda rt, x: rt.encode(np.where(np.arange(784).reshape(1, 1, 28, 28) == 5, np.nan, x)), "NaN/inf"),
    ("encode", lambda rt, x: rt.encode(np.where(np.arange(784).reshape(1, 1, 28, 28) == 5, np.inf, x)), "NaN/inf"),
    ("encode", lambda rt, x: rt.encode(x * 255), "got values in [0, 252]"),
    ("encode", lambda rt, x: rt.encode(x - 0.5), "[-0.5"),
    ("encode", lambda rt, x: rt.encode(x[:0]), "empty batch"),
    ("encode", lambda rt, x: rt.encode(x.tolist()), "numpy array, got list"),
    ("decode", lambda rt, x: rt.decode(np.zeros((2, 32), np.float32)), "[2, 32]"),
    ("decode", lambda rt, x: rt.decode(np.full((2, 64), np.nan, np.float32)), "NaN/inf"),
    ("decode", lambda rt, x: rt.decode(np.zeros((0, 64), np.float32)), "empty batch"),
    ("reparameterize", lambda rt, x: rt.reparameterize(np.zeros((2, 64), np.float32), np.zeros((3, 64), np.float32)), "[3, 64]"),
    ("sample", lambda rt, x: rt.sample(0), "n must be >= 1, got 0"),
    ("sample", lambda rt, x: rt.sample(2.5), "2.5"),
    ("sample", lambda rt, x: rt.sample(True), "True"),
    ("interpolate", lambda rt, x: rt.interpolate(x[0], x[1], steps=1), "steps must be >= 2, got 1"),
    ("interpolate", lambda rt, x: rt.interpolate(x[:2], x[1], steps=3), "x_a must be one image"),
]


@pytest.mark.parametrize("method,call,message", BAD_CALLS, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(BAD_CALLS)])
def test_bad_input_raises_input_error_naming_the_value(rt, images, method, call, message):
    with pytest.raises(InputError) as info:
        call(rt, images)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_load_arguments(model_dir):
    with pytest.raises(InputError, match="threads must be >= 1, got 0"):
        VAERuntime.load(model_dir, threads=0)
    with pytest.raises(InputError, match="NoSuchExecutionProvider"):
        VAERuntime.load(model_dir, providers=["NoSuchExecutionProvider"])


def test_a_fresh_interpreter_samples_without_torch_or_onnx(model_dir):
    code = f"""
import json, sys
import edgevae.runtime
lazy = 'numpy' not in sys.modules and 'onnxruntime' not in sys.modules
rt = edgevae.runtime.VAERuntime.load({str(model_dir)!r})
x = rt.sample(4, seed=0)
rt.reconstruct(x)
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxscript', 'torchvision')
               or m.startswith(('edgevae.train', 'edgevae.export')))
print(json.dumps({{"lazy": lazy, "heavy": heavy, "shape": list(x.shape), "std": float(x.std())}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["heavy"] == [] and report["lazy"] is True
    assert report["shape"] == [4, 1, 28, 28] and report["std"] > 0
