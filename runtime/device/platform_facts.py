"""What this process runs on, in one place, so that a report from a device (`edgevae info`, a failed
`edgevae verify`) says which machine, Python and onnxruntime build produced it.

The CPU features listed are the ones onnxruntime's kernels are chosen by, which is why outputs differ
between CPUs (docs/arm.md): on x86, AVX2 without VNNI saturates int8 sums where VNNI and AMX do not; on
ARM, dot-product (asimddp) and matrix (i8mm, sme) instructions select other int8 kernels, and fp16
arithmetic (asimdhp) makes an fp16 graph compute in fp16 where x86 computes it in fp32.
"""

import platform
import sys
from dataclasses import dataclass

# Linux aarch64 hwcap bits (arch/arm64/include/uapi/asm/hwcap.h) of the features above, read from the
# auxiliary vector: the kernel's (or an emulator's) own word, which /proc/cpuinfo only copies.
AT_HWCAP, AT_HWCAP2 = 16, 26
ARM_HWCAP = {"asimd": 1 << 1, "asimdhp": 1 << 10, "asimddp": 1 << 20, "sve": 1 << 22}
ARM_HWCAP2 = {"sve2": 1 << 1, "i8mm": 1 << 13, "bf16": 1 << 14, "sme": 1 << 23}
X86_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class PlatformFacts:
    machine: str  # platform.machine(): x86_64, aarch64, arm64 (macOS), AMD64 (Windows)
    system: str  # e.g. "Linux 6.1.0-28-arm64"
    cpu: str  # edgevae.cpu.cpu_model(): /proc/cpuinfo's model name (x86), often just the machine on ARM
    board: str  # the device tree's model ("Raspberry Pi 5 Model B Rev 1.0"), "" where there is none
    features: tuple  # of ARM_HWCAP / ARM_HWCAP2 / X86_FLAGS present
    cores: int  # usable by this process
    python: str
    numpy: str
    onnxruntime: str
    onnxruntime_build: str  # onnxruntime.get_build_info(): git commit, build type
    providers: tuple


def _read_text(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _arm_hwcaps() -> tuple:
    try:
        import ctypes

        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        words = (getauxval(AT_HWCAP), getauxval(AT_HWCAP2))
    except (OSError, AttributeError):  # not glibc/musl Linux
        return ()
    return tuple(name for word, bits in zip(words, (ARM_HWCAP, ARM_HWCAP2)) for name, bit in bits.items() if word & bit)


def _features(machine: str) -> tuple:
    from edgevae.cpu import cpu_flags

    if machine.lower() in ("aarch64", "arm64") and sys.platform.startswith("linux"):
        return _arm_hwcaps()
    flags = cpu_flags()
    return tuple(f for f in X86_FLAGS if f in flags)


def facts() -> PlatformFacts:
    import numpy
    import onnxruntime as ort

    from edgevae.cpu import cpu_model, usable_cores

    machine = platform.machine() or "unknown"
    board = _read_text("/sys/firmware/devicetree/base/model", 256).rstrip("\0\n")
    build = getattr(ort, "get_build_info", lambda: "")().removeprefix("ORT Build Info: ")
    return PlatformFacts(machine=machine, system=f"{platform.system()} {platform.release()}".strip(), cpu=cpu_model(),
                         board=board, features=_features(machine), cores=usable_cores(),
                         python=f"{platform.python_version()} ({platform.python_implementation()})",
                         numpy=numpy.__version__, onnxruntime=ort.__version__, onnxruntime_build=build or "unknown",
                         providers=tuple(ort.get_available_providers()))


def lines(f: PlatformFacts) -> list:
    """`edgevae info`'s closing lines (escaped: an OS string is not trusted to be printable)."""
    from ..contract.safe_files import escape

    board = f", board {escape(f.board)}" if f.board else ""
    return [f"machine       {escape(f.machine)}, {escape(f.system)}, {f.cores} usable cores{board}",
            f"cpu           {escape(f.cpu)}; kernel-relevant features: {' '.join(f.features) or 'none found'}",
            f"python        {escape(f.python)}, numpy {escape(f.numpy)}",
            f"onnxruntime   {escape(f.onnxruntime)} ({escape(f.onnxruntime_build)}), providers {', '.join(map(escape, f.providers))}"]
