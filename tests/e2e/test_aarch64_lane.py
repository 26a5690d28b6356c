"""scripts/aarch64_lane.sh on bad input: CI's aarch64 lane must fail with one line saying what is missing
(never skip silently), before it downloads or emulates anything. The lane itself runs in CI (.ci/run)."""

import subprocess
import sys
from pathlib import Path

import pytest

LANE = Path(__file__).resolve().parents[2] / "scripts" / "aarch64_lane.sh"


def aarch64_elf(path: Path) -> None:
    """A file whose ELF header says aarch64 (e_machine 0xB7 at offset 18): all the lane checks of a Python
    before it runs it."""
    header = bytearray(64)
    header[:4], header[4], header[5], header[18] = b"\x7fELF", 2, 1, 0xB7
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(header))
    path.chmod(0o755)


@pytest.fixture
def wheel(tmp_path):
    path = tmp_path / "edgevae-0.1.0-py3-none-any.whl"
    path.write_bytes(b"")  # never installed: every case fails before that step
    return path


def lane(tmp_path, wheel, **env):
    cache = tmp_path / "cache"
    result = subprocess.run(["bash", str(LANE), str(wheel), sys.executable], capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                              "EDGEVAE_AARCH64_CACHE": str(cache), **env})
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aarch64 lane: "), result.stderr
    assert not any(p.is_file() for p in cache.rglob("*")), "a failed lane left files in the cache"
    return lines[0]


def test_a_missing_emulator_is_named(tmp_path, wheel):
    assert "emulator /nowhere/qemu-aarch64 not found" in lane(tmp_path, wheel, QEMU_AARCH64="/nowhere/qemu-aarch64")


def test_a_prefix_without_an_arm64_python_is_named(tmp_path, wheel):
    (tmp_path / "prefix").mkdir()
    line = lane(tmp_path, wheel, QEMU_AARCH64="true", AARCH64_PREFIX=str(tmp_path / "prefix"))
    assert f"no arm64 Python at {tmp_path}/prefix/usr/bin/python3.11" in line


def test_a_prefix_whose_python_is_not_aarch64_is_named(tmp_path, wheel):
    python = tmp_path / "prefix" / "usr" / "bin" / "python3.11"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)  # this machine's own Python: an ELF for another machine, or a script
    line = lane(tmp_path, wheel, QEMU_AARCH64="true", AARCH64_PREFIX=str(tmp_path / "prefix"))
    assert f"{python} is not an aarch64 executable" in line


def test_a_missing_aarch64_wheel_is_named(tmp_path, wheel):
    import onnxruntime

    aarch64_elf(tmp_path / "prefix" / "usr" / "bin" / "python3.11")
    (tmp_path / "wheels").mkdir()
    line = lane(tmp_path, wheel, QEMU_AARCH64="true", AARCH64_PREFIX=str(tmp_path / "prefix"),
                AARCH64_WHEELHOUSE=str(tmp_path / "wheels"))
    assert f"no aarch64 wheel of onnxruntime=={onnxruntime.__version__}" in line and str(tmp_path / "wheels") in line


def test_a_missing_edgevae_wheel_is_named(tmp_path):
    assert f"no wheel at {tmp_path}/missing.whl" in lane(tmp_path, tmp_path / "missing.whl")
