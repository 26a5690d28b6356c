"""`edgevae train` as data-parallel processes of one thread each, one per usable core: the default on a CPU.

Why (docs/results.md, Training on a busy machine): one process with N OpenMP threads loses far more than its
fair share when other processes want the cores, since each of a step's many parallel regions waits for its
slowest thread and a descheduled thread stalls them all; processes of one thread meet once per step (the
gradient all-reduce) and keep their share. On a quiet machine N x 1 trains no slower than 1 x N.

The launcher runs `python -m edgevae ARGV` once per rank with torchrun's variables set (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so train/distributed.py does the rest exactly as under torchrun, and
N processes train the model one process would (tests/train/test_distributed.py). Rank 0's output is the run's; the
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
ENDING = b"edgevae train: "  # how a rank's last line (its error, or the signal that ended it) begins


def require(*modules: str) -> None:
    """ModuleNotFoundError for the first of modules that cannot be imported (checked without importing it)."""
    import importlib.util

    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ValueError:  # sys.modules[name] is None: imports of it are blocked
            found = False
        if not found:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def _die_with_the_launcher(launcher: int):
    """In each rank before it starts (Linux): SIGTERM when the launcher dies, even by SIGKILL, since a rank runs
    in its own session (a terminal's signals reach the launcher only) and would otherwise train on, orphaned."""
    def arm():
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # not Linux: the launcher's own handlers are all there is
            return
        if os.getppid() != launcher:  # it died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Relay(threading.Thread):
    """Copies rank 0's stderr (the progress bar, warnings) to ours as it comes, except the lines that end a
    process (`edgevae train: error: ...`, `... terminated by SIGTERM`): the launcher shows one such line, of the
    rank that failed first, so it keeps rank 0's last one aside (`held`)."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.held = stream, b""

    def run(self):
        pending = b""
        for chunk in iter(lambda: self.stream.read1(4096), b""):
            pending += chunk
            ends = [i for i, byte in enumerate(pending) if byte in b"\r\n"]
            if ends:
                self._show(pending[: ends[-1] + 1])
                pending = pending[ends[-1] + 1 :]
        self._show(pending)

    def _show(self, data: bytes):
        for piece in data.splitlines(keepends=True):
            if piece.startswith(ENDING):
                self.held = piece
            else:
                sys.stderr.buffer.write(piece)
        sys.stderr.buffer.flush()


def launch(processes: int, argv: list, *, command: tuple = EDGEVAE) -> int:
    """Run `edgevae ARGV` (command + argv) as `processes` ranks on this machine; the exit status to end with."""
    env = os.environ | {"WORLD_SIZE": str(processes), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
                        "OMP_NUM_THREADS": "1", "TORCHELASTIC_RUN_ID": "edgevae-train"}
    ranks, logs = [], [tempfile.TemporaryFile() for _ in range(processes - 1)]  # the other ranks' stderr
    for rank in range(processes):
        # its own session: a terminal's Ctrl-C reaches the launcher alone, which passes it on once
        ranks.append(subprocess.Popen([*command, *argv], start_new_session=True, preexec_fn=_die_with_the_launcher(os.getpid()),
                                      env=env | {"RANK": str(rank), "LOCAL_RANK": str(rank)},
                                      stdout=None if rank == 0 else subprocess.DEVNULL,
                                      stderr=subprocess.PIPE if rank == 0 else logs[rank - 1]))
    relay = _Relay(ranks[0].stderr)
    relay.start()
    try:
        failed = _first_failure(ranks)
    except BaseException:  # a signal (edgevae/cli.py raises it here, and prints the one line): every rank stops
        _stop(ranks, "SIGTERM")
        raise
    if failed is not None:
        _stop([p for p in ranks if p is not failed], "SIGKILL")
    relay.join()
    if failed is None:
        return 0
    if failed is ranks[0]:
        last = relay.held.decode(errors="replace").strip()
    else:
        log = logs[ranks.index(failed) - 1]
        log.seek(0)
        last = ([""] + log.read().decode(errors="replace").strip().splitlines())[-1]
    print(last or f"edgevae train: rank {ranks.index(failed)} exited with {failed.returncode}", file=sys.stderr)
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
