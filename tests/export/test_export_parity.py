"""Parity of the exported graphs with PyTorch: encoder, decoder, and the whole reparameterized path.

Tolerances (fp32, CPU):
- onnxruntime vs PyTorch: ATOL = 1e-5. Both sum the same products in different orders (MLAS vs oneDNN),
  so outputs differ by accumulated rounding: ~1e-7..1e-6 (1.7e-6 at most on a Fashion-MNIST-trained
  model, batch 256). 1e-5 keeps 6x margin or more, yet is 400x below one grey level (1/255), and
  a real export fault (padding, weight layout, a lost sigmoid, batch fixed to the example's) is >= 1e-2.
- the reparameterized path adds z = mu + exp(logvar/2) * eps on top: an error d in mu / logvar moves z by
  about d * (1 + |eps|/2 * sigma), so the same 1e-5 holds for z and for the x_hat decoded from it
  (the decoder's sigmoid has slope <= 1/4).
- onnx's ReferenceEvaluator vs onnxruntime: the same 1e-5; it is a different, numpy implementation of
  every operator, so agreement shows the graph means what onnxruntime computes, not an ORT quirk.
"""

import numpy as np
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from edgevae.export.graphs import export_graphs
from edgevae.runtime.inference.sessions import new_session
from helpers import make_model, make_trained_model

ATOL = 1e-5
BATCHES = (1, 7, 256)


@pytest.fixture(scope="module", params=["fresh", "trained"])
def exported(request):
    """(PyTorch model, {"encoder": ORT session, "decoder": ...}, {"encoder": proto, ...}, kind) per model kind."""
    model = make_model(seed=0) if request.param == "fresh" else make_trained_model(seed=0)
    protos = export_graphs(model, metadata={})
    return model, {name: new_session(p.SerializeToString()) for name, p in protos.items()}, protos, request.param


def images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 28, 28), dtype=np.float32)


def max_diff(a: np.ndarray, b: torch.Tensor) -> float:
    return float(np.max(np.abs(a - b.numpy())))


@pytest.mark.heavy
@pytest.mark.parametrize("batch", BATCHES)
def test_encoder_matches_pytorch(exported, batch):
    model, sessions, _, _ = exported
    x = images(batch)
    mu, logvar = sessions["encoder"].run(["mu", "logvar"], {"x": x})
    with torch.no_grad():
        want_mu, want_logvar = model.encoder(torch.from_numpy(x))
    assert mu.shape == logvar.shape == (batch, 64) and mu.dtype == np.float32
    assert max_diff(mu, want_mu) < ATOL and max_diff(logvar, want_logvar) < ATOL
    assert np.std(mu) > 1e-3  # a degenerate (constant) output would pass the comparison trivially


@pytest.mark.heavy
@pytest.mark.parametrize("batch", BATCHES)
def test_decoder_matches_pytorch(exported, batch):
    model, sessions, _, _ = exported
    z = np.random.default_rng(2).standard_normal((batch, 64), dtype=np.float32)
    (x_hat,) = sessions["decoder"].run(["x_hat"], {"z": z})
    with torch.no_grad():
        want = model.decoder(torch.from_numpy(z))
    assert x_hat.shape == (batch, 1, 28, 28) and x_hat.dtype == np.float32
    assert max_diff(x_hat, want) < ATOL
    assert 0 <= x_hat.min() and x_hat.max() <= 1 and np.std(x_hat) > 1e-3  # the sigmoid is in the graph


@pytest.mark.heavy
@pytest.mark.parametrize("batch", BATCHES)
def test_reparameterized_path_matches_pytorch_with_the_same_eps(exported, batch):
    model, sessions, _, _ = exported
    x = images(batch, seed=3)
    eps = np.random.default_rng(4).standard_normal((batch, 64), dtype=np.float32)
    mu, logvar = sessions["encoder"].run(None, {"x": x})
    z = mu + np.exp(0.5 * logvar) * eps  # what the runtime's reparameterize computes, eps given
    (x_hat,) = sessions["decoder"].run(None, {"z": z})
    with torch.no_grad():
        t_mu, t_logvar = model.encoder(torch.from_numpy(x))
        t_z = t_mu + torch.exp(0.5 * t_logvar) * torch.from_numpy(eps)
        t_x_hat = model.decoder(t_z)
    assert max_diff(z, t_z) < ATOL and max_diff(x_hat, t_x_hat) < ATOL
    assert max_diff(z, t_mu) > 0.1  # eps really entered z: the path is not the mean path


@pytest.mark.heavy
def test_trained_weights_differ_from_fresh_ones(exported):
    """Guards the "trained" case: it must test other weights than the fresh ones."""
    model, _, _, kind = exported
    fresh = make_model(seed=0)
    diff = max((a - b).abs().max().item() for a, b in zip(fresh.parameters(), model.parameters()))
    assert (diff > 5e-3) == (kind == "trained")  # Adam moves each weight by up to ~lr = 3e-3 a step


@pytest.mark.heavy
@pytest.mark.parametrize("graph", ["encoder", "decoder"])
def test_reference_evaluator_matches_onnxruntime(exported, graph):
    _, sessions, protos, _ = exported
    # batch 2: onnx's pure-numpy ConvTranspose takes ~0.5 s per image
    feed = {"x": images(2)} if graph == "encoder" else {"z": np.random.default_rng(5).standard_normal((2, 64), dtype=np.float32)}
    want = sessions[graph].run(None, feed)
    got = ReferenceEvaluator(protos[graph]).run(None, feed)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        assert float(np.max(np.abs(g - w))) < ATOL
