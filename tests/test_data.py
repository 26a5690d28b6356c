import pytest
import torch

from edgevae.train.data import binarize_fixed, load_fashion_mnist
from helpers import REAL_DATA, synthetic_images, write_idx_dataset


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVAE_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_load_as_float_tensors(tmp_path, gz):
    folder = write_idx_dataset(tmp_path / "idx", n_train=20, n_test=8, gz=gz)
    (train_x, train_y), (test_x, test_y) = load_fashion_mnist(folder)
    assert train_x.shape == (20, 1, 28, 28) and test_x.shape == (8, 1, 28, 28)
    assert train_x.dtype == torch.float32 and 0 <= train_x.min() and train_x.max() <= 1
    expected = torch.from_numpy(synthetic_images(20, 0)).float().div(255)
    assert torch.equal(train_x[:, 0], expected)
    assert train_y.tolist() == [i % 10 for i in range(20)]


def test_missing_files_are_named(tmp_path):
    folder = write_idx_dataset(tmp_path / "idx", n_train=4, n_test=4)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_fashion_mnist(folder)


def test_fixed_binarization_is_seeded():
    x = torch.rand(10, 1, 28, 28)
    a, b = binarize_fixed(x, 3), binarize_fixed(x, 3)
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, binarize_fixed(x, 4))


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="real Fashion-MNIST absent (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_loads():
    (train_x, train_y), (test_x, test_y) = load_fashion_mnist(REAL_DATA)
    assert train_x.shape == (60000, 1, 28, 28) and test_x.shape == (10000, 1, 28, 28)
    assert sorted(train_y.unique().tolist()) == list(range(10))
    assert 0.25 < train_x.mean().item() < 0.32  # Fashion-MNIST's mean pixel is ~0.286
