"""Runtime commands follow the manifest's image_shape for their inputs: an RGB model reads [N,3,H,W] .npy and
RGB PNG grids (its own samples read back), and a file of the wrong shape or channel count gets one line
naming the expected shape."""

import numpy as np
import pytest
from helpers import need_torch, run_cli


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory):
    torch = need_torch("export an RGB model")

    from edgevae.export.exporter import export_model_dir
    from edgevae.train.model import VAE, VAEConfig

    torch.manual_seed(0)
    return export_model_dir(VAE(VAEConfig(latent_dim=8, image_shape=(3, 16, 20))).eval(), tmp_path_factory.mktemp("rgb") / "m")


def test_rgb_npy_and_png_round_trip(tmp_path, rgb_model):
    samples = tmp_path / "s.png"
    assert run_cli("sample", "--model", rgb_model, "--n", 6, "--out", samples).returncode == 0
    x = np.random.default_rng(0).random((5, 3, 16, 20), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    for source in (tmp_path / "x.npy", samples):
        out = tmp_path / f"r-{source.stem}.npy"
        result = run_cli("reconstruct", "--model", rgb_model, "--input", source, "--out", out)
        assert result.returncode == 0, result.stderr
        assert np.load(out).shape[1:] == (3, 16, 20)
    frames = tmp_path / "i.npy"
    assert run_cli("interpolate", "--model", rgb_model, "--input", samples, "--steps", 4, "--out", frames).returncode == 0
    assert np.load(frames).shape == (4, 3, 16, 20)


def test_rgb_png_reads_back_the_colours_written(tmp_path, rgb_model):
    from edgevae.runtime.image_io.image_files import read_images, write_images

    x = np.random.default_rng(1).integers(0, 256, (4, 3, 16, 20)).astype(np.float32) / 255
    write_images(tmp_path / "g.png", x, columns=2)
    assert np.array_equal(read_images(tmp_path / "g.png", size=(16, 20), channels=3), x)


@pytest.mark.parametrize("array, expected", [
    (np.zeros((2, 16, 20), np.float32), r"want \[N, 3, 16, 20\]"),
    (np.zeros((2, 1, 16, 20), np.float32), r"want \[N, 3, 16, 20\]"),
    (np.zeros((2, 3, 20, 16), np.float32), r"want \[N, 3, 16, 20\]"),
])
def test_wrong_shape_or_channels_is_one_line_naming_the_shape(tmp_path, rgb_model, array, expected):
    import re

    np.save(tmp_path / "bad.npy", array)
    result = run_cli("reconstruct", "--model", rgb_model, "--input", tmp_path / "bad.npy", "--out", tmp_path / "o.png")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and re.search(expected, result.stderr)
    assert not (tmp_path / "o.png").exists()


def test_idx_input_to_an_rgb_model_is_refused(tmp_path, rgb_model):
    from helpers import idx_bytes

    (tmp_path / "x-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 16, 20), np.uint8)))
    result = run_cli("reconstruct", "--model", rgb_model, "--input", tmp_path / "x-idx3-ubyte", "--out", tmp_path / "o.png")
    assert result.returncode == 2 and "IDX file of gray images; the model takes 3 channels" in result.stderr
