"""What the numbers were measured on: CPU model, cores, library versions; and the machine's own sgemm
rate (the roofline the models' achieved GFLOP/s are compared against)."""

import os
import platform
import sys
from importlib import metadata

from edgevae.cpu import cpu_model, usable_cores  # noqa: F401 (re-exported)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe() -> dict:
    """The machine and software a result was measured with."""
    import numpy as np
    import onnxruntime as ort

    from edgevae import __version__

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {"edgevae": __version__, "numpy": np.__version__, "onnxruntime": ort.__version__,
                     "onnx": _version("onnx"), "torch": _version("torch")},
    }


def sgemm_call(n: int):
    """(zero-argument callable doing one n x n float32 matmul with torch, its FLOPs). Torch's BLAS
    (MKL / oneDNN on x86) is the fastest sgemm at hand here; the caller sets torch's thread count."""
    import torch

    a = torch.randn(n, n, generator=torch.Generator().manual_seed(0))
    b = torch.randn(n, n, generator=torch.Generator().manual_seed(1))
    out = torch.empty(n, n)
    return (lambda: torch.mm(a, b, out=out)), 2 * n ** 3
