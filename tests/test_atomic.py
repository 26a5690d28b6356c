"""edgevae/atomic.py, the one atomic writer, and the CLI's signal handling (issue 15, points 8 and 12)."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from edgevae import atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.bin"
    atomic.write_bytes(path, b"old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic.atomic_write(path, boom)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_modes_follow_open_or_the_existing_file_and_never_touch_the_umask(tmp_path, monkeypatch):
    def no_umask(*args):
        raise AssertionError("os.umask changes the mask for every thread of the process")

    monkeypatch.setattr(os, "umask", no_umask)
    private = tmp_path / "private.bin"
    atomic.write_bytes(private, b"a")
    private.chmod(0o600)
    atomic.write_bytes(private, b"b")  # overwriting keeps the owner's choice
    assert oct(private.stat().st_mode & 0o777) == "0o600" and private.read_bytes() == b"b"
    shared = tmp_path / "shared.json"
    atomic.write_json(shared, {"a": 1}, mode=0o644)
    assert oct(shared.stat().st_mode & 0o777) == "0o644"


def test_threads_writing_meanwhile_keep_their_modes(tmp_path):
    """A umask flipped to 0 for a moment (the old helper did) would give other threads' files 0666."""
    old = os.umask(0o022)
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            atomic.write_bytes(tmp_path / "x.bin", b"x")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        made = []
        for i in range(300):
            path = tmp_path / f"plain{i}"
            with open(path, "w"):
                pass
            made.append(path.stat().st_mode & 0o777)
    finally:
        stop.set()
        thread.join()
        os.umask(old)
    assert set(made) == {0o644}


@pytest.mark.parametrize("length", [200, 242, 255])
def test_names_up_to_name_max_work(tmp_path, length):
    path = tmp_path / ("n" * (length - 4) + ".npy")
    atomic.write_bytes(path, b"data")
    assert path.read_bytes() == b"data"


def test_stale_temporaries_of_dead_processes_are_swept_live_ones_kept(tmp_path):
    path = tmp_path / "grid.png"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".grid.png.{dead.stdout.strip()}.0badc0de.tmp"
    stale.write_bytes(b"x" * 1000)
    stale_other = tmp_path / f".neg_elbo.png.{dead.stdout.strip()}.1badc0de.tmp"  # another file's leftover
    stale_other.write_bytes(b"x")
    live = tmp_path / f".grid.png.{os.getppid()}.0badc0de.tmp"
    live.write_bytes(b"y")
    other = tmp_path / ".someone-elses.tmp"
    other.write_bytes(b"z")
    atomic.write_bytes(path, b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, live.name, other.name])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_clean_up_the_temporary_file(tmp_path, signum):
    """`sample --n 200000 --out x.npy` streams ~600 MB under a temporary name: a signal mid-way must leave
    neither the output nor the temporary file, and end with one line and 128 + signal (130 for SIGINT)."""
    out = tmp_path / "x.npy"
    proc = subprocess.Popen([sys.executable, "-m", "edgevae", "sample", "--variant", "fp32", "--n", "200000",
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):  # the kill must land mid-write
        assert proc.poll() is None and time.monotonic() < deadline, "no temporary file appeared"
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "finished before the signal: the test would prove nothing"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
