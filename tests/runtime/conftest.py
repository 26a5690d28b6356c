"""Torch-free tests of the runtime on the model shipped in the package: they need numpy, onnxruntime and
pytest only, so that they run unchanged on every platform the wheel installs on. The normal suite runs
them on x86; CI's aarch64 lane (scripts/aarch64_lane.sh) runs them under QEMU on an arm64 Python with the
wheel's aarch64 install, where torch does not exist. Keep them so: no import of torch, onnx or tests/helpers.

The other runtime tests run on the wheel's torch-free install too (CI, .ci/run): their `model_dir` is the shipped
model's fp32 variant, copied, not a fresh export; a test that compares with PyTorch or exports a model of its own
skips there (helpers.need_torch)."""

import pytest


@pytest.fixture(scope="session")
def shipped():
    """The shipped model dir, every file hashed once."""
    from edgevae.runtime.contract.manifest import load

    model = load(None)
    model.verify()
    return model


@pytest.fixture(scope="session")
def goldens(shipped):
    """{graph: golden input batch} of the shipped model."""
    from edgevae.runtime.device.golden import read_inputs

    return read_inputs(shipped)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The shipped model's fp32 variant (helpers.shipped_model_dir), one copy per test module (modules may
    damage theirs): what tests/conftest.py's fresh export is elsewhere, built without torch."""
    from helpers import shipped_model_dir

    return shipped_model_dir(tmp_path_factory.mktemp("model") / "model")
