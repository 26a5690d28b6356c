"""train/launch.py: `edgevae train` as one process per core. Fake ranks (a few lines of Python reading RANK)
prove the failure and signal rules; the end-to-end run is in tests/train/test_distributed.py."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgevae.train.launch import launch

HANG_S = 600  # turns a hang into a failure; no verdict here depends on speed


def rank_script(code: str) -> tuple:
    """A fake rank: `rank` and `size` are set from the launcher's variables, then code runs."""
    return (sys.executable, "-c", "import os, sys, time\nrank, size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])\n"
            "assert os.environ['OMP_NUM_THREADS'] == '1' and os.environ['MASTER_ADDR'] == '127.0.0.1'\n" + code)


def test_every_rank_runs_with_its_own_rank_and_rank_0s_output_is_the_runs(capfd, tmp_path):
    code = f"open(os.path.join({str(tmp_path)!r}, f'rank{{rank}}of{{size}}'), 'w').close()\nprint('out', rank)\nprint('err', rank, file=sys.stderr)"
    assert launch(3, [], command=rank_script(code)) == 0
    out, err = capfd.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0of3", "rank1of3", "rank2of3"]
    assert out == "out 0\n" and err == "err 0\n"  # the other ranks' output is not the run's


@pytest.mark.parametrize("failing", [0, 1])
def test_the_first_failure_decides_and_stops_the_others(capfd, tmp_path, failing):
    """One rank fails with one line and exit 2 while the others would run for ever: the launcher shows that
    line only, returns 2, and leaves no rank running."""
    pids = tmp_path / "pids"
    code = (f"open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
            f"if rank == {failing}:\n    time.sleep(0.5)\n    print('edgevae train: error: rank', rank, 'broke', file=sys.stderr)\n    sys.exit(2)\n"
            "time.sleep(3600)\n")
    assert launch(2, [], command=rank_script(code)) == 2
    _, err = capfd.readouterr()
    assert err == f"edgevae train: error: rank {failing} broke\n"
    for pid in map(int, pids.read_text().split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_rank_killed_by_a_signal_ends_the_run_with_128_plus_it(capfd):
    code = "if rank == 1:\n    os.kill(os.getpid(), 9)\ntime.sleep(3600)\n"
    assert launch(2, [], command=rank_script(code)) == 128 + 9
    assert "rank 1 exited with -9" in capfd.readouterr().err


def test_ranks_end_when_the_launcher_is_killed(tmp_path):
    """SIGKILL cannot be caught: the ranks, in sessions of their own, must still not train on, orphaned."""
    pids = tmp_path / "pids"
    code = f"open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\ntime.sleep(3600)\n"
    launcher = subprocess.Popen([sys.executable, "-c", "import sys\nfrom edgevae.train.launch import launch\n"
                                 f"sys.exit(launch(2, [], command={rank_script(code)!r}))"])
    deadline = time.monotonic() + HANG_S
    while not pids.exists() or len(pids.read_text().split()) < 2:
        assert time.monotonic() < deadline and launcher.poll() is None
        time.sleep(0.05)
    launcher.kill()
    launcher.wait()
    for pid in map(int, pids.read_text().split()):
        while alive(pid):
            assert time.monotonic() < deadline, f"rank {pid} outlived its launcher"
            time.sleep(0.05)


def alive(pid: int) -> bool:
    """pid runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.heavy
def test_sigterm_stops_every_rank_with_one_line_and_no_temporaries(tmp_path):
    """`edgevae train` (2 ranks by default on 2+ cores) killed by SIGTERM after its first epoch: exit 143, one
    stderr line, no rank left, no temporary file in the run folder."""
    from helpers import write_idx_dataset

    data = write_idx_dataset(tmp_path / "idx", n_train=512, n_test=64)
    run = tmp_path / "run"
    env = os.environ | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "edgevae", "train", "--epochs", "10000", "--processes", "2",
                             "--data-dir", str(data), "--latent-dim", "8", "--batch-size", "32", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + HANG_S
    while not (run / "checkpoint.pt").exists():  # an observable state: the first epoch was written
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "hung"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=HANG_S)
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "it/s" not in line and "s/it" not in line]
    assert proc.returncode == 143 and lines == ["edgevae train: terminated by SIGTERM"], err[-2000:]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    out = subprocess.run(["pgrep", "-f", str(run)], capture_output=True, text=True).stdout
    assert out.strip() == "", "a rank outlived the launcher"
