"""What the numbers were measured on: CPU model, cores, library versions; and the machine's own sgemm
rate (the roofline the models' achieved GFLOP/s are compared against)."""

import os
import platform
import sys
from importlib import metadata


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask; os.cpu_count() where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


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
