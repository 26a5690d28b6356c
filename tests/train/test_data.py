import numpy as np
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
    train_x, test_x = load_fashion_mnist(folder)
    assert train_x.shape == (20, 1, 28, 28) and test_x.shape == (8, 1, 28, 28)
    assert train_x.dtype == torch.float32 and 0 <= train_x.min() and train_x.max() <= 1
    expected = torch.from_numpy(synthetic_images(20, 0)).float().div(255)
    assert torch.equal(train_x[:, 0], expected)


def test_missing_files_are_named(tmp_path):
    folder = write_idx_dataset(tmp_path / "idx", n_train=4, n_test=4)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_fashion_mnist(folder)


def test_fixed_binarization_is_seeded():
    x = torch.rand(10, 1, 28, 28)
    a, b = binarize_fixed(x, 3), binarize_fixed(x, 3)
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, binarize_fixed(x, 4))


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="real Fashion-MNIST absent (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_loads():
    train_x, test_x = load_fashion_mnist(REAL_DATA)
    assert train_x.shape == (60000, 1, 28, 28) and test_x.shape == (10000, 1, 28, 28)
    assert 0.25 < train_x.mean().item() < 0.32  # Fashion-MNIST's mean pixel is ~0.286


# --- dataset specs (train/data.py load_images) ---

from edgevae.train.data import DataConfig, load_images, parse_image_size, parse_spec  # noqa: E402


def write_pngs(folder, n, size=(12, 10), mode="L", seed=0):
    """n seeded random images of size (H, W) as PNG files in folder."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = size if mode == "L" else (*size, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"img{i:03d}.png")
    return folder


def test_image_size_and_spec_parsing():
    assert parse_image_size("48x64") == (48, 64) and parse_image_size("32") == (32, 32)
    for bad in ("0x4", "ax4", "4x4x4", ""):
        with pytest.raises(ValueError, match="--image-size"):
            parse_image_size(bad)
    assert parse_spec("idx:a.gz,b.gz") == ("idx", ["a.gz", "b.gz"])
    assert parse_spec("sklearn-digits") == ("sklearn-digits", [])
    with pytest.raises(ValueError, match="--data 'nonsense'"):
        parse_spec("nonsense")


def test_sklearn_digits_and_patches_are_real_and_split_by_a_fixed_seed():
    digits = load_images(DataConfig("sklearn-digits"))
    assert digits.train.shape[1:] == (1, 8, 8) and len(digits.train) + len(digits.test) == 1797
    assert len(digits.test) == 180 and 0 <= digits.train.min() and digits.train.max() == 1
    assert torch.equal(load_images(DataConfig("sklearn-digits")).test, digits.test)  # same split every time
    patches = load_images(DataConfig("sklearn-patches"))
    assert patches.image_shape == (3, 32, 32) and len(patches.train) + len(patches.test) == 2 * 13 * 20
    wide = load_images(DataConfig("sklearn-patches", image_size="48x64", channels=1))
    assert wide.image_shape == (1, 48, 64)


def test_idx_pair_and_single_idx_with_seeded_split(tmp_path):
    folder = write_idx_dataset(tmp_path / "idx", n_train=30, n_test=7)
    pair = load_images(DataConfig(f"idx:{folder}/train-images-idx3-ubyte.gz,{folder}/t10k-images-idx3-ubyte.gz"))
    assert pair.train.shape == (30, 1, 28, 28) and pair.test.shape == (7, 1, 28, 28)
    assert torch.equal(pair.train[:, 0], torch.from_numpy(synthetic_images(30, 0)).float().div(255))
    single = load_images(DataConfig(str(folder / "train-images-idx3-ubyte.gz"), image_size="14x14"))  # a bare path
    assert single.train.shape == (27, 1, 14, 14) and single.test.shape == (3, 1, 14, 14)


@pytest.mark.parametrize("array", [
    np.random.default_rng(0).integers(0, 256, (20, 9, 11), dtype=np.uint8),
    np.random.default_rng(0).random((20, 3, 9, 11)).astype(np.float32),
    np.random.default_rng(0).random((20, 1, 9, 11)),  # float64
])
def test_npy_arrays_load_with_their_channels(tmp_path, array):
    np.save(tmp_path / "a.npy", array)
    data = load_images(DataConfig(f"npy:{tmp_path / 'a.npy'}"))
    want = array.astype(np.float32) / (255 if array.dtype == np.uint8 else 1)
    want = want[:, None] if want.ndim == 3 else want
    assert data.train.dtype == torch.float32 and data.image_shape == want.shape[1:]
    assert np.allclose(np.sort(np.concatenate([data.train.numpy(), data.test.numpy()]).ravel()), np.sort(want.ravel()))


def test_channel_conversion_and_fitting(tmp_path):
    rgb = np.zeros((4, 3, 10, 20), np.uint8)
    rgb[:, 0] = 255  # pure red
    np.save(tmp_path / "rgb.npy", rgb)
    gray = load_images(DataConfig(str(tmp_path / "rgb.npy"), channels=1, image_size="5x5"))
    assert gray.image_shape == (1, 5, 5) and torch.allclose(gray.train, torch.tensor(0.299))  # luma of red
    np.save(tmp_path / "g.npy", rgb[:, :1])
    assert load_images(DataConfig(str(tmp_path / "g.npy"), channels=3)).image_shape == (3, 10, 20)


def test_image_folder_with_train_and_test_subfolders(tmp_path):
    write_pngs(tmp_path / "d" / "train", 6)
    write_pngs(tmp_path / "d" / "test" / "cats", 2, seed=1)  # nested class folders are read too
    data = load_images(DataConfig(f"folder:{tmp_path / 'd'}"))
    assert data.train.shape == (6, 1, 12, 10) and data.test.shape == (2, 1, 12, 10)
    from PIL import Image

    first = np.asarray(Image.open(tmp_path / "d" / "train" / "img000.png"), np.float32) / 255
    assert np.allclose(data.train[0, 0].numpy(), first)


def test_image_folder_colour_rule_split_and_resize(tmp_path):
    write_pngs(tmp_path / "d", 8, size=(12, 16))
    write_pngs(tmp_path / "d" / "more", 2, size=(12, 16), mode="RGB", seed=3)
    data = load_images(DataConfig(str(tmp_path / "d")))  # one RGB file makes the set RGB
    assert data.image_shape == (3, 12, 16) and len(data.train) == 9 and len(data.test) == 1
    assert load_images(DataConfig(str(tmp_path / "d"), channels=1, image_size="6x6")).image_shape == (1, 6, 6)


@pytest.mark.parametrize("case,message", [
    ("mixed", "differ in size.*--image-size"), ("empty", "has no image files"), ("broken", "broken.png is unreadable"),
    ("range", "outside \\[0, 1\\]"), ("nan", "outside \\[0, 1\\]"), ("empty_test", "test split .* has no image files"),
    ("one_image", "test split would be empty"), ("int16", "int16"), ("channels_last", "channels-last"),
])
def test_bad_data_is_refused_in_one_line(tmp_path, case, message):
    d = tmp_path / "d"
    if case == "mixed":
        write_pngs(d, 2, size=(8, 8))
        write_pngs(d / "sub", 1, size=(9, 8))
    elif case == "empty":
        d.mkdir()
        (d / "notes.txt").write_text("no images here")
    elif case == "broken":
        write_pngs(d, 3)
        (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif case == "empty_test":
        write_pngs(d / "train", 3)
        (d / "test").mkdir()
    elif case == "one_image":
        write_pngs(d, 1)
    else:
        arrays = {"range": np.full((4, 5, 5), 1.5), "nan": np.full((4, 5, 5), np.nan),
                  "int16": np.zeros((4, 5, 5), np.int16), "channels_last": np.zeros((4, 9, 9, 3), np.uint8)}
        np.save(tmp_path / "a.npy", arrays[case])
        d = tmp_path / "a.npy"
    with pytest.raises(ValueError, match=message) as err:
        load_images(DataConfig(str(d)))
    assert "\n" not in str(err.value)


def test_bad_data_on_the_command_line_exits_2_with_one_line(tmp_path, capsys):
    from edgevae.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--data", f"folder:{tmp_path / 'empty'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgevae train: error:") and "has no image files" in err and len(err.splitlines()) == 1


# --- IDX and .npy data sets go through the runtime's bounded reader (runtime/image_io/image_input.py) ---

def test_idx_header_declaring_too_much_is_refused_before_inflating(tmp_path):
    """A 3 KB .gz whose header declares 2**31 28x28 images: refused by the header alone, in one line naming it."""
    import gzip

    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + (2**31).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
                                   + bytes(28 * 28 * 4)))
    with pytest.raises(ValueError, match="bomb-idx3-ubyte.gz: 2147483648 images would take") as err:
        load_images(DataConfig(f"idx:{bomb}"))
    assert "\n" not in str(err.value)


def test_idx_of_rgb_images_and_boolean_npy_load(tmp_path):
    from helpers import idx_bytes

    rgb = np.random.default_rng(0).integers(0, 256, (6, 3, 5, 7), dtype=np.uint8)
    (tmp_path / "rgb-idx").write_bytes(bytes([0, 0, 8, 4]) + b"".join(d.to_bytes(4, "big") for d in rgb.shape)
                                       + rgb.tobytes())
    data = load_images(DataConfig(f"idx:{tmp_path / 'rgb-idx'},{tmp_path / 'rgb-idx'}"))
    assert data.image_shape == (3, 5, 7) and torch.equal(data.train, torch.from_numpy(rgb / np.float32(255)))
    gray = np.random.default_rng(1).integers(0, 256, (4, 5, 7), dtype=np.uint8)
    (tmp_path / "gray-idx").write_bytes(idx_bytes(gray))
    assert load_images(DataConfig(f"idx:{tmp_path / 'gray-idx'}")).image_shape == (1, 5, 7)
    np.save(tmp_path / "b.npy", np.arange(40).reshape(4, 2, 5) % 3 == 0)
    assert set(load_images(DataConfig(f"npy:{tmp_path / 'b.npy'}")).train.unique().tolist()) <= {0.0, 1.0}


def test_truncated_idx_and_missing_file_are_named(tmp_path):
    from helpers import idx_bytes

    (tmp_path / "cut-idx").write_bytes(idx_bytes(np.zeros((4, 5, 5), np.uint8))[:-3])
    with pytest.raises(ValueError, match="cut-idx holds 97 pixel bytes, its header says 4x5x5"):
        load_images(DataConfig(f"idx:{tmp_path / 'cut-idx'}"))
    with pytest.raises(FileNotFoundError, match="gone.npy does not exist"):
        load_images(DataConfig(f"npy:{tmp_path / 'gone.npy'}"))
