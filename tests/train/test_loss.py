import math

import torch

from edgevae.train.loss import gaussian_kl, iwae_nll, neg_elbo
from edgevae.train.model import VAE, VAEConfig


def test_analytic_kl_matches_a_monte_carlo_estimate():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 6), torch.randn(4, 6) * 0.5
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 4, 6)
    log_q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    mc = (log_q - log_p).mean(0)
    stderr = (log_q - log_p).std(0) / math.sqrt(200_000)
    assert torch.all((gaussian_kl(mu, logvar) - mc).abs() < 5 * stderr)


def test_kl_is_zero_for_the_prior():
    assert torch.allclose(gaussian_kl(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3))


def test_neg_elbo_is_summed_over_pixels_and_latents_and_averaged_over_the_batch():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=8))
    x = torch.rand(16, 1, 28, 28)
    terms = neg_elbo(model, x, beta=0.5)
    # an untrained decoder outputs ~0.5 everywhere: BCE ~ 784 * log 2 nats per image, not a per-pixel mean
    assert 0.8 * 784 * math.log(2) < terms.bce.item() < 1.2 * 784 * math.log(2)
    assert torch.isclose(terms.neg_elbo, terms.bce + terms.kl)
    assert torch.isclose(terms.loss, terms.bce + 0.5 * terms.kl)


def test_iwae_bound_is_below_the_elbo_and_tightens_with_k():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=8)).eval()
    with torch.no_grad():  # widen the posterior so the bounds differ clearly
        model.encoder.logvar.bias.fill_(1.0)
    x = torch.rand(64, 1, 28, 28).round()
    with torch.no_grad():
        elbo = torch.stack([neg_elbo(model, x).neg_elbo for _ in range(20)]).mean()
    nll = {k: iwae_nll(model, x, k=k, chunk=7).mean() for k in (1, 10, 100)}
    assert abs(nll[1] - elbo) < 0.01 * elbo  # k = 1 is the ELBO
    assert nll[100] < nll[10] < nll[1]
