"""Lets tests import the shared helper module as `from helpers import ...`, and holds the fixtures most
runtime-facing test modules share (a module may override them, e.g. for another latent size)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A seeded fp32 model dir of a fresh VAE, one copy per test module (modules may damage theirs)."""
    from helpers import make_model_dir

    return make_model_dir(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def rt(model_dir):
    from edgevae.runtime import VAERuntime

    return VAERuntime.load(model_dir)
