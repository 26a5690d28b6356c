"""On an install without the extras, each command names, in one line, the one extra that brings all it needs."""

import subprocess
import sys
from pathlib import Path

import pytest

# A fresh interpreter in which the heavy packages cannot be imported, as on a base install.
BLOCK = ("import sys\nfor m in ('torch', 'torchvision', 'onnx', 'onnxscript', 'matplotlib', 'model_signing'): "
         "sys.modules[m] = None\n")
SHIPPED = str(Path(__file__).resolve().parents[2] / "runtime" / "default_model")


@pytest.mark.parametrize("argv, extra", [
    (["bench", "--out", "{tmp}/b"], "bench"),
    (["train", "--epochs", "1", "--out", "{tmp}/r"], "train"),
    (["export", "{tmp}/c.pt", "--out", "{tmp}/m"], "export"),
    (["check", "--target", "nnapi"], "check"),  # torch-free: onnx alone
    (["sign", SHIPPED, "--key", "{tmp}/k.pem"], "sign"),
    (["verify", "--trust", "{tmp}/k.pem"], "sign"),
])
def test_missing_extra_is_named_once(tmp_path, argv, extra):
    argv = [a.format(tmp=tmp_path) for a in argv]
    code = BLOCK + f"from edgevae.cli import main\nsys.exit(main({argv!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().endswith(f"pip install 'edgevae[{extra}]'") and len(result.stderr.splitlines()) == 1
