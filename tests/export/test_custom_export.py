"""export/custom.py: a user's own VAE (here the MLP of pytorch/examples' vae) exported through the contract."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgevae.export.custom import export_vae


class MLPVAE(nn.Module):
    """pytorch/examples vae/main.py's network (784-400-20), smaller here, on [N,1,28,28] images."""

    def __init__(self, hidden=32, latent=4, pixels=784):
        super().__init__()
        self.pixels = pixels
        self.fc1, self.fc21, self.fc22 = nn.Linear(pixels, hidden), nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.fc3, self.fc4 = nn.Linear(latent, hidden), nn.Linear(hidden, pixels)

    def encode(self, x):
        h1 = F.relu(self.fc1(x.reshape(-1, self.pixels)))
        return self.fc21(h1), self.fc22(h1)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z)))  # [N,784]: the exporter reshapes to the image shape

    def decode(self, z):
        return torch.sigmoid(self.decode_logits(z))


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return MLPVAE().eval()


@pytest.mark.heavy
def test_mlp_vae_exports_with_parity_and_runs_in_the_runtime(tmp_path, mlp):
    """Exported from logits (the exporter adds the Sigmoid); the runtime must match PyTorch's decode()."""
    from edgevae.runtime import VAERuntime
    from edgevae.runtime.contract import manifest as contract

    out = export_vae(mlp.encode, mlp.decode_logits, tmp_path / "m", image_shape=(1, 28, 28), latent_dim=4, logits=True)
    manifest = contract.load(out).manifest
    assert tuple(manifest.image_shape) == (1, 28, 28) and manifest.latent_dim == 4
    worst = max(d for rows in manifest.parity.max_abs_diff.values() for outs in rows.values() for d in outs.values())
    assert worst <= 1e-5
    rt = VAERuntime.load(out, variant="fp32")
    z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        want = mlp.decode(torch.from_numpy(z)).reshape(3, 1, 28, 28).numpy()
    assert np.abs(rt.decode(z) - want).max() <= 1e-5
    x = np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        mu = mlp.encode(torch.from_numpy(x))[0].numpy()
    assert np.abs(rt.encode(x)[0] - mu).max() <= 1e-5


@pytest.mark.heavy
def test_separate_modules_and_rgb_shape(tmp_path):
    torch.manual_seed(1)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 5, 4))

    class Split(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = encoder

        def forward(self, x):
            return tuple(self.net(x).chunk(2, dim=1))

    decoder = nn.Sequential(nn.Linear(2, 3 * 6 * 5), nn.Sigmoid(), nn.Unflatten(1, (3, 6, 5)))
    out = export_vae(Split(), decoder, tmp_path / "m", image_shape=(3, 6, 5), latent_dim=2)
    from edgevae.runtime import VAERuntime

    assert VAERuntime.load(out).sample(2, seed=0).shape == (2, 3, 6, 5)


def test_contract_violations_are_named(tmp_path, mlp):
    with pytest.raises(ValueError, match=r"encoder returned \[2, 4\], \[2, 4\] .*want mu, logvar of \[N, 5\]"):
        export_vae(mlp.encode, mlp.decode, tmp_path / "a", image_shape=(1, 28, 28), latent_dim=5)
    with pytest.raises(ValueError, match="logits=True"):
        export_vae(mlp.encode, mlp.decode_logits, tmp_path / "b", image_shape=(1, 28, 28), latent_dim=4)
    with pytest.raises(ValueError, match=r"encoder returned \[6, 4\], \[6, 4\] for x \[2, 3, 28, 28\]"):
        export_vae(mlp.encode, mlp.decode, tmp_path / "c", image_shape=(3, 28, 28), latent_dim=4)
    with pytest.raises(ValueError, match="decoder does not run on the contract's shapes"):
        export_vae(mlp.encode, nn.Linear(3, 784), tmp_path / "e", image_shape=(1, 28, 28), latent_dim=4)
    with pytest.raises(TypeError, match="neither an nn.Module"):
        export_vae(lambda x: x, mlp.decode, tmp_path / "d", image_shape=(1, 28, 28), latent_dim=4)
    assert not any(tmp_path.iterdir())  # nothing written
