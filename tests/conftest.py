"""Lets tests import the shared helper module as `from helpers import ...`, and holds the fixtures most
runtime-facing test modules share (a module may override them, e.g. for another latent size)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Device profiles (`edgevae tune`) live in $XDG_CACHE_HOME: tests get an empty one of their own, so a
    profile tuned by the person running them cannot change which variant a test's runtime picks."""
    import os

    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A seeded fp32 model dir of a fresh VAE, one copy per test module (modules may damage theirs)."""
    from helpers import make_model_dir

    return make_model_dir(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def rt(model_dir):
    from edgevae.runtime import VAERuntime

    return VAERuntime.load(model_dir)
