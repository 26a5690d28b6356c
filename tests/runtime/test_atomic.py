"""edgevae/atomic.py, the one atomic writer, and the CLI's signal handling (issue 15, points 8 and 12)."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgevae import atomic

HANG_S = 600  # turns a hung child into a failure; never a verdict on speed


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


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)


def _temp_of(folder, target: str, pid: int, nonce: str = "0badc0de"):
    """The name edgevae's writer `pid` gives its temporary of folder/target (atomic.temp_name's rule)."""
    prefix = f".{target}."
    return folder / f"{prefix}{pid}.{nonce}{atomic._tag(prefix, str(pid), nonce)}.tmp"


def test_stale_temporaries_of_dead_processes_are_swept_live_ones_kept(tmp_path):
    path, dead = tmp_path / "grid.png", _dead_pid()
    stale = _temp_of(tmp_path, "grid.png", dead)
    stale.write_bytes(b"x" * 1000)
    stale_other = _temp_of(tmp_path, "neg_elbo.png", dead, "1badc0de")  # another file's leftover
    stale_other.write_bytes(b"x")
    stale_dir = _temp_of(tmp_path, "model", dead)  # a model dir an export killed by SIGKILL was writing
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "encoder.onnx").write_bytes(b"x")
    live = _temp_of(tmp_path, "grid.png", os.getppid())
    live.write_bytes(b"y")
    other = tmp_path / ".someone-elses.tmp"
    other.write_bytes(b"z")
    atomic.write_bytes(path, b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, live.name, other.name])


def test_temp_names_are_recognised_only_with_their_tag(tmp_path):
    name = atomic.temp_name(tmp_path / "grid.png").name
    assert atomic.TEMP_NAME.fullmatch(name)
    prefix, pid, nonce, tag = atomic.TEMP_NAME.fullmatch(name).groups()
    assert tag == atomic._tag(prefix, pid, nonce) and int(pid) == os.getpid()
    assert atomic._tag(".other.png.", pid, nonce) != tag  # the tag covers the target's name


def _strangers(folder, dead: int) -> dict:
    """Entries a user or another program made that look like edgevae temporaries: none may be touched."""
    made = {}
    notes = folder / ".notes.4000000.deadbeef.tmp"  # issue 21's example: a user's folder with their files
    (notes / "deep").mkdir(parents=True)
    (notes / "deep" / "thesis.txt").write_text("years of work")
    made["folder"] = notes
    for label, name in [("ten-digit pid", ".x.4294967296.deadbeef.tmp"), ("pid beyond a C long", ".x.99999999999999999999.deadbeef.tmp"),
                        ("untagged dead pid", f".grid.png.{dead}.0badc0dedeadbeef.tmp"),
                        ("old-style name", f".grid.png.{dead}.0badc0de.tmp"), ("uppercase hex", f".g.{dead}.0BADC0DE0BADC0DE.tmp")]:
        (folder / name).write_bytes(b"mine")
        made[label] = folder / name
    link = _temp_of(folder, "link.png", dead)  # a tagged name that is a symlink: not a file we wrote
    link.symlink_to(folder / ".notes.4000000.deadbeef.tmp")
    made["tagged symlink"] = link
    fifo = _temp_of(folder, "fifo.png", dead, "2badc0de")
    os.mkfifo(fifo)
    made["tagged fifo"] = fifo
    return made


def test_the_sweep_never_touches_what_edgevae_did_not_make(tmp_path):
    """Hostile round 2, point 1: only entries that prove by name tag, owner and type that edgevae made them
    are removed, and a stranger's file never fails a write."""
    made = _strangers(tmp_path, _dead_pid())
    for i in range(3):
        atomic.write_bytes(tmp_path / f"s{i}.png", b"png")
    for label, path in made.items():
        assert os.path.lexists(path), f"{label} was removed"
    assert (tmp_path / ".notes.4000000.deadbeef.tmp" / "deep" / "thesis.txt").read_text() == "years of work"


def test_another_users_tag_does_not_match(tmp_path, monkeypatch):
    """The tag covers the user id: what another account's edgevae left is theirs to sweep, not ours."""
    stale = _temp_of(tmp_path, "grid.png", _dead_pid())
    stale.write_bytes(b"x")
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    atomic.write_bytes(tmp_path / "grid.png", b"png")
    assert stale.exists()


def test_the_cli_keeps_a_users_lookalike_folder(tmp_path):
    """`edgevae sample --out s.png` beside a user's `.notes.4000000.deadbeef.tmp`: the folder and its files stay."""
    from helpers import run_cli

    made = _strangers(tmp_path, _dead_pid())
    proc = run_cli("sample", "--n", "4", "--out", tmp_path / "s.png", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert all(os.path.lexists(path) for path in made.values()) and (tmp_path / "s.png").is_file()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_clean_up_the_temporary_file(tmp_path, signum):
    """`sample --n 200000 --out x.npy` streams ~600 MB under a temporary name: a signal mid-way must leave
    neither the output nor the temporary file, and end with one line and 128 + signal (130 for SIGINT).
    The test waits for states it can observe (the temporary file exists, the process exits), never for a time:
    HANG_S only turns a hang into a failure."""
    out = tmp_path / "x.npy"
    proc = subprocess.Popen([sys.executable, "-m", "edgevae", "sample", "--variant", "fp32", "--n", "200000",
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + HANG_S
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):  # the kill must land mid-write
        assert proc.poll() is None and time.monotonic() < deadline, "no temporary file appeared"
        time.sleep(0.02)
    assert proc.poll() is None, "finished before the signal: the test would prove nothing"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# --- atomic_folder: the one folder replace (model dirs, sites) ---

def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_is_built_aside_then_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "model"
    (out / "old-only").mkdir(parents=True)
    (out / "old-only" / "a.onnx").write_bytes(b"old")
    with atomic.atomic_folder(out) as tmp:
        assert tmp.parent == tmp_path and atomic.TEMP_NAME.fullmatch(tmp.name) and out.is_dir()  # old one still there
        (tmp / "new.onnx").write_bytes(b"new")
    assert _tree(out) == {"new.onnx": b"new"} and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert oct(out.stat().st_mode & 0o777) == "0o755"


@pytest.mark.parametrize("fault", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_a_failed_folder_leaves_the_old_one_and_no_temporary(tmp_path, fault):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_bytes(b"old")
    with pytest.raises(type(fault)):
        with atomic.atomic_folder(out) as tmp:
            (tmp / "index.html").write_bytes(b"half")
            raise fault
    assert _tree(out) == {"index.html": b"old"} and sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_an_interrupted_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    """The old folder is renamed aside before the new one takes its name: a fault between the two renames
    (here the second rename raising, as SIGTERM's exception would) must not leave the name missing."""
    out = tmp_path / "model"
    out.mkdir()
    (out / "m.json").write_bytes(b"old")
    real_replace, calls = os.replace, []

    def second_fails(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_folder(out) as tmp:
            (tmp / "m.json").write_bytes(b"new")
            monkeypatch.setattr(os, "replace", second_fails)
    monkeypatch.undo()
    assert len(calls) == 3 and _tree(out) == {"m.json": b"old"}  # aside, (refused), back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_sigterm_while_a_folder_is_filled_leaves_nothing_half_written(tmp_path):
    """A process filling a folder under the CLI's SIGTERM handling is killed mid-fill: the old folder stays
    whole and the temporary goes. Waits for states it can observe, never for a time (HANG_S: a hang fails)."""
    out = tmp_path / "model"
    out.mkdir()
    (out / "kept").write_bytes(b"old")
    script = (
        "import signal, sys, time\n"
        "from edgevae import atomic, cli\n"
        "signal.signal(signal.SIGTERM, cli._raise_terminated)\n"
        "try:\n"
        f"    with atomic.atomic_folder({str(out)!r}) as tmp:\n"
        "        (tmp / 'half').write_bytes(b'x')\n"
        "        print('filling', flush=True)\n"
        "        time.sleep(600)\n"
        "except cli.Terminated:\n"
        "    sys.exit(143)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "filling"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=HANG_S) == 143
    assert _tree(out) == {"kept": b"old"} and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_signal_while_the_temporary_is_being_set_up_still_removes_it(tmp_path, monkeypatch):
    """The signal test above lands wherever the writer is when its temporary appears: also the instant after os.open
    or mkdir made it, and inside NpyWriter.__enter__ (whose __exit__ never runs when it raises). Each is forced here,
    the writer kept alive as it is in the traceback a signal leaves behind."""
    from edgevae.runtime.image_io.image_files import NpyWriter

    def then_interrupted(make):
        def made(*args, **kwargs):
            make(*args, **kwargs)
            raise KeyboardInterrupt
        return made

    monkeypatch.setattr(atomic.os, "open", then_interrupted(os.open))
    with pytest.raises(KeyboardInterrupt):
        atomic.write_bytes(tmp_path / "a.bin", b"x")
    monkeypatch.setattr(Path, "mkdir", then_interrupted(Path.mkdir))
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_folder(tmp_path / "site"):
            pass
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(np.lib.format, "write_array_header_1_0", then_interrupted(lambda *a: None))
    writer = NpyWriter(tmp_path / "x.npy", (4, 1, 2, 2))
    with pytest.raises(KeyboardInterrupt):
        writer.__enter__()
    assert list(tmp_path.iterdir()) == []
