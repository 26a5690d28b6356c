"""What CPU this is, read once from /proc/cpuinfo: the one place every package (train's precision probe, the
runtime's device profiles, the benchmarks) asks, so that a figure or a cached verdict names the same machine.
Stdlib only, so every install has it."""

import functools
import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=None)
def _fields(cpuinfo: Path = CPUINFO) -> dict:
    """The first value of each `key: value` line (empty where /proc/cpuinfo is absent, e.g. macOS). The whole file:
    ARM boards give their 'Hardware' and 'Model' after the last processor block."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name ('model name' on x86, 'Hardware'/'Model' on some ARM boards), else platform's."""
    fields = _fields(cpuinfo)
    for key in ("model name", "Hardware", "Model"):  # x86 (its "model" is a number), then ARM boards
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset:
    """The CPU feature flags the kernel reports ('flags' on x86, 'Features' on ARM)."""
    fields = _fields(cpuinfo)
    return frozenset((fields.get("flags") or fields.get("Features") or "").split())


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask: what taskset, cgroups' cpusets or a container
    leave it), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity call on this platform (macOS, Windows)
        return os.cpu_count() or 1


def cache_dir(kind: str) -> Path:
    """$XDG_CACHE_HOME/edgevae/KIND (~/.cache when unset): where measured, per-machine verdicts are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgevae" / kind
