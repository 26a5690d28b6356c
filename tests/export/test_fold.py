"""export/fold.py: the folded encoder and decoder compute the unfolded model's function."""

import pytest
import torch

from edgevae.export.fold import FoldedDecoder, FoldedEncoder, affine_as_linear
from edgevae.train.model import VAE, VAEConfig

# Folding changes only the float32 summation order (the folded weights are computed in float64): the
# differences measured were 3e-8 on mu / logvar and 6e-8 on x_hat; 1e-6 leaves room for other BLAS builds
# while a wrong fold (a missing bias, a transposed weight) is off by orders of magnitude more.
TOL = 1e-6


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 13, 21)])
def test_folded_halves_compute_the_unfolded_model(shape):
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=16, image_shape=shape)).eval()
    encoder, decoder = FoldedEncoder(model.encoder, model.config.features).eval(), FoldedDecoder(model.decoder).eval()
    x, z = torch.rand(5, *shape), torch.randn(5, 16) * 3
    with torch.no_grad():
        for want, got in zip(model.encoder(x), encoder(x)):
            assert got.shape == want.shape and (got - want).abs().max() <= TOL
        want, got = model.decoder(z), decoder(z)
    assert got.shape == want.shape and (got - want).abs().max() <= TOL
    convs = lambda m: sum(isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for layer in m.modules())  # noqa: E731
    assert (convs(encoder), convs(decoder)) == (convs(model.encoder) - 1, convs(model.decoder) - 1)


def test_affine_as_linear_takes_either_side_and_checks_the_output_size():
    torch.manual_seed(1)
    wide, narrow = torch.nn.Linear(3, 40).double(), torch.nn.Linear(40, 3).double()
    for layer in (wide, narrow):  # columns from basis vectors (3 inputs) or rows from backward passes (40)
        folded = affine_as_linear(layer, in_shape=(layer.in_features,), out_shape=(layer.out_features,))
        assert torch.allclose(folded.weight, layer.weight.float()) and torch.allclose(folded.bias, layer.bias.float())
    with pytest.raises(ValueError, match="expected"):
        affine_as_linear(wide, in_shape=(3,), out_shape=(41,))
