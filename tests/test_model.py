import torch

from edgevae.train.model import VAE, VAEConfig


def conv_param_count(cin, cout, k):
    return cin * cout * k * k + cout


def test_layer_output_sizes_follow_the_seed():
    model = VAE()
    sizes = []
    for layer in model.decoder.deconv:
        if isinstance(layer, torch.nn.ConvTranspose2d):
            layer.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    x_hat = model.decoder(torch.zeros(2, 64))
    assert model.decoder.project(torch.zeros(2, 64)).view(-1, 64, 7, 7).shape[-1] == 7
    assert sizes == [(64, 7, 7), (72, 13, 13), (32, 27, 27), (1, 28, 28)]
    assert x_hat.shape == (2, 1, 28, 28)
    feats = model.encoder.features[:-2](torch.zeros(2, 1, 28, 28))  # up to the last conv, before Flatten
    assert feats.shape == (2, 72, 7, 7)


def test_parameter_count_matches_the_architecture():
    d = 64
    encoder = (conv_param_count(1, 32, 3) + conv_param_count(32, 64, 3) + conv_param_count(64, 72, 3)
               + conv_param_count(72, 64, 3) + 2 * (3136 * d + d))
    decoder = ((d * 3136 + 3136) + conv_param_count(64, 64, 3) + conv_param_count(64, 72, 3)
               + conv_param_count(72, 32, 3) + conv_param_count(32, 1, 4))
    model = VAE()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model.encoder) == encoder
    assert count(model.decoder) == decoder


def test_forward_returns_mu_logvar_and_bernoulli_means():
    model = VAE(VAEConfig(latent_dim=16))
    mu, logvar, x_hat = model(torch.rand(5, 1, 28, 28))
    assert mu.shape == logvar.shape == (5, 16)
    assert x_hat.shape == (5, 1, 28, 28)
    assert 0 <= x_hat.min() and x_hat.max() <= 1


def test_reparameterize_draws_on_the_inputs_device_and_dtype():
    mu = torch.zeros(1000, 8, dtype=torch.float64)
    z = VAE.reparameterize(mu, torch.full_like(mu, 2.0))
    assert z.dtype == torch.float64 and z.device == mu.device
    assert abs(z.var().item() - torch.e**2) < 0.5  # variance exp(logvar) = e^2 ~ 7.39
