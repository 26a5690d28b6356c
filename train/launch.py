"""`edgevae train` as data-parallel processes of one thread each, one per usable core: the default on a CPU.

Why (docs/results.md, Training on a busy machine): one process with N OpenMP threads loses far more than its
fair share when other processes want the cores, since each of a step's many parallel regions waits for its
slowest thread and a descheduled thread stalls them all; processes of one thread meet once per step (the
gradient all-reduce) and keep their share. On a quiet machine N x 1 trains no slower than 1 x N.

The launcher runs `python -m edgevae ARGV` once per rank with torchrun's variables set (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so train/distributed.py does the rest exactly as under torchrun, and
N processes train the model one process would (tests/test_distributed.py). Rank 0's output is the run's; the
other ranks' output is kept only to report their failure. The first rank to fail decides the exit status and
the one line shown; the others are stopped. SIGTERM, SIGHUP and SIGINT reach every rank, which clean up as a
single process does, and end the launcher with one line.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

STOP_GRACE_S = 30.0  # a rank told to stop gets this long to remove its temporaries before SIGKILL
EDGEVAE = (sys.executable, "-m", "edgevae")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Relay(threading.Thread):
    """Copies rank 0's stderr (the progress bar) to ours until stopped, so that a failure elsewhere can end the
    output with its own line only."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.open = stream, True

    def run(self):
        for chunk in iter(lambda: self.stream.read1(4096), b""):
            if self.open:
                sys.stderr.buffer.write(chunk)
                sys.stderr.buffer.flush()


def launch(processes: int, argv: list, command: tuple = EDGEVAE) -> int:
    """Run `edgevae ARGV` (command + argv) as `processes` ranks on this machine; the exit status to end with."""
    env = os.environ | {"WORLD_SIZE": str(processes), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
                        "OMP_NUM_THREADS": "1", "TORCHELASTIC_RUN_ID": "edgevae-train"}
    ranks, logs = [], [tempfile.TemporaryFile() for _ in range(processes - 1)]  # the other ranks' stderr
    for rank in range(processes):
        # its own session: a terminal's Ctrl-C reaches the launcher alone, which passes it on once
        ranks.append(subprocess.Popen([*command, *argv], start_new_session=True,
                                      env=env | {"RANK": str(rank), "LOCAL_RANK": str(rank)},
                                      stdout=None if rank == 0 else subprocess.DEVNULL,
                                      stderr=subprocess.PIPE if rank == 0 else logs[rank - 1]))
    relay = _Relay(ranks[0].stderr)
    relay.start()
    try:
        failed = _first_failure(ranks)
    except BaseException:  # a signal (edgevae/cli.py raises it here): every rank stops and cleans up
        relay.open = False
        _stop(ranks, "SIGTERM")
        raise
    if failed is None:
        relay.join()
        return 0
    relay.open = failed is ranks[0]  # rank 0's own last line is already on its way out
    _stop([p for p in ranks if p is not failed], "SIGKILL")
    relay.join(timeout=5)
    if failed is not ranks[0]:
        log = logs[ranks.index(failed) - 1]
        log.seek(0)
        lines = log.read().decode(errors="replace").strip().splitlines()
        print(lines[-1] if lines else f"edgevae train: rank {ranks.index(failed)} exited with {failed.returncode}",
              file=sys.stderr)
    return failed.returncode if failed.returncode > 0 else 128 - failed.returncode


def _first_failure(ranks: list):
    """Wait for every rank; the first one that exits non-zero, or None when all succeed."""
    while True:
        codes = [p.poll() for p in ranks]
        bad = [p for p, code in zip(ranks, codes) if code not in (None, 0)]
        if bad:
            return bad[0]
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.1)


def _stop(ranks: list, how: str) -> None:
    """SIGTERM (each rank cleans up, then STOP_GRACE_S) or SIGKILL every rank still running, and reap them."""
    for p in ranks:
        if p.poll() is None:
            p.terminate() if how == "SIGTERM" else p.kill()
    for p in ranks:
        try:
            p.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
