"""The runtime's contract on the shipped model, on whatever CPU runs the tests (torch-free: see conftest.py).
Numbers are held to the model dir's own golden tolerances, never to figures measured on one CPU."""

import threading

import numpy as np
import pytest

from edgevae.runtime import InputError, ModelDirError, VAERuntime
from edgevae.runtime.device.golden import GOLDEN_N, SEED, max_abs_diff, read_expected
from edgevae.runtime.inference.latent import rng_of, standard_normal
from edgevae.runtime.device.verify import verify


@pytest.fixture(scope="module")
def fp32(shipped):
    return VAERuntime.load(shipped.path, variant="fp32")


def test_the_noise_stream_is_the_one_the_goldens_were_made_with(shipped, goldens):
    # numpy's Generator is specified bit for bit (PCG64, ziggurat), so one seed is one z on every CPU.
    z = standard_normal(rng_of(SEED), (GOLDEN_N, shipped.latent_dim))
    assert np.array_equal(z, goldens["decoder"])


def test_the_api_computes_the_goldens_of_every_variant(shipped, goldens):
    tolerance = shipped.manifest.golden.tolerance
    for variant in shipped.manifest.variants:
        rt = VAERuntime.load(shipped.path, variant=variant, threads=1)
        got = {"encoder": list(rt.encode(goldens["encoder"])), "decoder": [rt.decode(goldens["decoder"])]}
        for graph, outputs in got.items():
            expected = read_expected(shipped, variant, graph=graph, n=GOLDEN_N)
            assert max_abs_diff(outputs, expected) <= tolerance[variant][graph], (variant, graph)


def test_verify_fails_when_a_graph_computes_something_else(shipped, tmp_path):
    """The other side of the test above: verify can fail here. The fp32 decoder entry is pointed at the
    int8 decoder (a valid, hashed file), whose outputs are ~1e-2 away, far beyond fp32's ~1e-5."""
    import json
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(shipped.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    quantized = next(v for v in manifest["variants"] if v != "fp32")
    manifest["variants"]["fp32"]["decoder"] = manifest["variants"][quantized]["decoder"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    from edgevae.runtime.contract.manifest import load

    checks = {(c.graph, c.variant): c for c in verify(load(copy), "fp32")}
    assert checks[("encoder", "fp32")].passed and not checks[("decoder", "fp32")].passed


def test_sampling_is_seeded_chunk_invariant_and_in_range(shipped):
    rt = VAERuntime.load(shipped.path, variant="fp32")
    rt.chunk = 4  # n = 10 runs as 4 + 4 + 2
    x = rt.sample(10, seed=0)
    assert x.shape == (10, *shipped.image_shape) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.array_equal(x, rt.sample(10, seed=0))
    assert not np.array_equal(x, rt.sample(10, seed=1))
    # The chunks' draws are one stream: the same z as one draw of 10 rows (decode chunks it the same way).
    z = standard_normal(rng_of(0), (10, shipped.latent_dim))
    assert np.array_equal(x, rt.decode(z))


def test_reconstruct_and_interpolate_decode_the_posterior(shipped, fp32, goldens):
    x = goldens["encoder"]
    mu, logvar = fp32.encode(x)
    assert np.array_equal(fp32.reconstruct(x), fp32.decode(mu))
    assert np.array_equal(fp32.reconstruct(x, seed=3), fp32.decode(fp32.reparameterize(mu, logvar, seed=3)))
    frames = fp32.interpolate(x[0], x[1], steps=5)
    ends = fp32.decode(np.stack([mu[0], (mu[0] + mu[1]) / 2, mu[1]]))
    # Other batch sizes may take other kernels: equal within the fp32 decoder's golden tolerance.
    assert max_abs_diff([frames[[0, 2, 4]]], [ends]) <= shipped.manifest.golden.tolerance["fp32"]["decoder"]


def test_threads_sharing_one_runtime_get_the_serial_results(shipped):
    rt = VAERuntime.load(shipped.path)
    serial = [rt.sample(8, seed=s) for s in range(4)]
    results = [None] * 4

    def work(s):
        results[s] = rt.sample(8, seed=s)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(a, b) for a, b in zip(results, serial))


@pytest.mark.parametrize("call, message", [
    (lambda rt, x: rt.encode(np.full_like(x, np.nan)), "NaN"),
    (lambda rt, x: rt.encode(x[:, :, :27]), "shape"),
    (lambda rt, x: rt.encode(x[:0]), "empty"),
    (lambda rt, x: rt.encode(x + 2), "[0, 1]"),
    (lambda rt, x: rt.sample(4, seed=-1), "seed"),
    (lambda rt, x: rt.decode(np.zeros((2, 3), np.float32)), "64"),
])
def test_bad_input_raises_input_error_naming_it(fp32, goldens, call, message):
    with pytest.raises(InputError) as err:
        call(fp32, goldens["encoder"])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_variant_is_a_model_dir_error(shipped):
    with pytest.raises(ModelDirError, match="no-such-variant"):
        VAERuntime.load(shipped.path, variant="no-such-variant")
