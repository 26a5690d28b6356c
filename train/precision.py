"""Mixed precision for training: `--precision auto|fp32|bf16`.

bf16 runs the network's convolutions and matmuls under torch.autocast (oneDNN on CPU, cuDNN/cuBLAS on
CUDA); the weights, the optimizer state and the loss stay fp32 (train/loss.py casts the network's
outputs back to fp32 before the BCE and KL sums, which add up 784 terms per image).

`auto` picks bf16 only where the hardware computes it natively, by a fixed rule rather than a timed
probe, so that a run resumed on the same machine makes the same choice and replays bit for bit:
- CPU: bf16 when /proc/cpuinfo lists `amx_bf16` or `avx512_bf16` (Intel Sapphire Rapids and later,
  AMD Zen 4 and later). Without them oneDNN emulates bf16 through fp32 conversions, which is slower
  than fp32 (measured by `python -m edgevae.benchmarks.train_speed` on an AVX2-only AMD EPYC).
- CUDA: bf16 when torch.cuda.is_bf16_supported() (Ampere and later).
"""

import contextlib
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is absent, e.g. macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):  # x86 / ARM spelling
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: str, flags: set[str] | None = None) -> bool:
    """Whether `device` ("cpu" or "cuda") computes bf16 convolutions and matmuls in hardware."""
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve(precision: str, device: str, flags: set[str] | None = None) -> str:
    """"fp32" or "bf16" for the requested precision on device; ValueError for an unknown one."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device, flags) else "fp32"
    return precision


def autocast(precision: str, device: str):
    """The context to run the network's forward pass in, for a resolved precision ("fp32" or "bf16")."""
    if precision == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()
