import pytest
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
    assert model.decoder.project(torch.zeros(2, 64)).shape == (2, 64 * 7 * 7)  # reshaped to (64, 7, 7)
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
    assert count(model) == 807_025  # the seed notebook's network, pinned


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


def test_default_config_is_the_seed_network_layer_for_layer():
    """VAEConfig() must stay the seed notebook's network: same layers, shapes and parameter count as before
    image_shape existed (state_dict shapes pinned), so old checkpoints and figures stay valid."""
    seed_shapes = {
        "encoder.features.0.weight": (32, 1, 3, 3), "encoder.features.2.weight": (64, 32, 3, 3),
        "encoder.features.4.weight": (72, 64, 3, 3), "encoder.features.6.weight": (64, 72, 3, 3),
        "encoder.mu.weight": (64, 3136), "encoder.logvar.weight": (64, 3136), "decoder.project.weight": (3136, 64),
        "decoder.deconv.0.weight": (64, 64, 3, 3), "decoder.deconv.2.weight": (64, 72, 3, 3),
        "decoder.deconv.4.weight": (72, 32, 3, 3), "decoder.deconv.6.weight": (32, 1, 4, 4),
    }
    model = VAE()
    assert VAEConfig().image_shape == (1, 28, 28)
    weights = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.endswith("weight")}
    assert weights == seed_shapes
    strides_pads = [(m.stride, m.padding) for m in model.decoder.deconv if isinstance(m, torch.nn.ConvTranspose2d)]
    assert strides_pads == [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((2, 2), (0, 0)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32), (1, 64, 64), (3, 48, 64), (1, 29, 30),
                                   (3, 31, 18), (2, 5, 7), (1, 4, 4)])
def test_every_image_shape_lands_exactly_without_resizing(shape):
    model = VAE(VAEConfig(latent_dim=3, image_shape=shape))
    mu, logvar, x_hat = model(torch.rand(2, *shape))
    assert mu.shape == logvar.shape == (2, 3) and x_hat.shape == (2, *shape)
    kinds = {type(m) for m in model.modules()}
    assert kinds <= {VAE, type(model.encoder), type(model.decoder), torch.nn.Sequential, torch.nn.Conv2d,
                     torch.nn.ConvTranspose2d, torch.nn.LeakyReLU, torch.nn.Flatten, torch.nn.Linear}  # no Upsample
    # the documented rule: the latent grid is ceil(size/4) and the decoder's sizes follow it
    c, h, w = model.config.features
    assert (h, w) == (-(-shape[1] // 4), -(-shape[2] // 4)) and c == 64
    sizes = []
    for layer in model.decoder.deconv:
        if isinstance(layer, torch.nn.ConvTranspose2d):
            layer.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:])))
    model.decoder(mu)
    assert sizes[0] == (h, w) and sizes[1] == (2 * h - 1, 2 * w - 1) and sizes[-1] == shape[1:]


def test_non_square_remainders_give_non_square_final_kernels():
    deconv = VAE(VAEConfig(image_shape=(1, 30, 28))).decoder.deconv
    assert deconv[-1].kernel_size == (2, 4) and deconv[4].padding == (0, 0)
    assert VAE(VAEConfig(image_shape=(1, 29, 28))).decoder.deconv[4].padding == (1, 0)


@pytest.mark.parametrize("bad", [{"image_shape": (1, 3, 28)}, {"image_shape": (0, 28, 28)}, {"image_shape": (28, 28)},
                                 {"latent_dim": 0}, {"encoder_channels": (32, 64)}])
def test_bad_configs_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        VAEConfig(**bad)


def test_config_lists_from_json_become_tuples():
    assert VAEConfig(image_shape=[3, 32, 32]) == VAEConfig(image_shape=(3, 32, 32))


def test_old_checkpoints_without_image_shape_load_as_the_seed(tmp_path):
    from edgevae.train.checkpoint import load_model, save_checkpoint

    model = VAE(VAEConfig(latent_dim=8))
    save_checkpoint(tmp_path / "old.pt", {"epoch": 1, "model_config": {"latent_dim": 8, "negative_slope": 0.01},
                                         "model": model.state_dict()})
    loaded, _ = load_model(tmp_path / "old.pt")
    assert loaded.config.image_shape == (1, 28, 28) and loaded.config.latent_dim == 8


def test_checkpoint_carries_the_image_shape(tmp_path):
    from dataclasses import asdict

    from edgevae.train.checkpoint import load_model, save_checkpoint

    model = VAE(VAEConfig(latent_dim=5, image_shape=(3, 48, 64)))
    save_checkpoint(tmp_path / "c.pt", {"epoch": 1, "model_config": asdict(model.config), "model": model.state_dict()})
    loaded, _ = load_model(tmp_path / "c.pt")
    assert loaded.config == model.config
    x = torch.rand(2, 3, 48, 64)
    assert torch.equal(loaded.encoder(x)[0], model.encoder(x)[0])
