"""Every onnxruntime run the runtime makes is bounded in time and can be stopped by a signal.

A model dir is untrusted: a graph whose hashes all match may still run far longer than its size suggests.
onnxruntime checks `RunOptions.terminate` between nodes (a Loop's body included), so one watchdog thread sets
it on each run that outlives its deadline, and `stop_all_runs` sets it on every run in flight. The CLI calls
that when SIGTERM, SIGHUP or SIGINT arrives (edgevae/cli.py): Python runs its own signal handlers only between
bytecodes, so without it a signal would wait for `session.run` to return.

Deadlines: the caller's `timeout_s`, else `default_timeout` of the graph's measured cost on this machine.
"""

import threading
import time

import onnxruntime as ort

# No measured cost yet (the first call of a session): a call may take this long. A VAE decoder the size of
# Stable Diffusion's takes seconds per image on a phone-class CPU, ours well under a millisecond.
FIRST_CALL_S = 300.0
# Once measured: COST_MARGIN x the fastest time per image seen so far, times the batch, and never under FLOOR_S,
# so a loaded machine (2-10x slower) or a cold cache never trips it; a run that has gone wrong does.
COST_MARGIN = 100.0
FLOOR_S = 10.0
POLL_S = 0.1  # how late a deadline may fire: the watchdog wakes this often while a run is in flight
IDLE_S = 2.0  # with no run for this long, the watchdog sleeps until the next one starts


class RunStopped(RuntimeError):
    """A run was terminated: past its deadline (timed_out) or by stop_all_runs (a signal)."""

    def __init__(self, timed_out: bool, timeout_s: float):
        super().__init__(f"ran longer than {timeout_s:g} s" if timed_out else "stopped by a signal")
        self.timed_out = timed_out
        self.timeout_s = timeout_s


def default_timeout(seconds_per_item: float | None, items: int) -> float:
    """The deadline of a call on `items` inputs whose fastest measured cost is seconds_per_item (None: none yet)."""
    if seconds_per_item is None:
        return FIRST_CALL_S
    return max(FLOOR_S, COST_MARGIN * seconds_per_item * items)


def check_timeout(value, name: str = "timeout_s") -> float | None:
    """value as a positive finite float of seconds, or None (the default rule)."""
    from ..contract.errors import InputError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) < float("inf"):
        raise InputError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class _Watchdog:
    """One daemon thread that terminates the runs past their deadline. While runs come it wakes every POLL_S
    (no per-call wake-up, so a batch-1 call pays only a dict insert); after IDLE_S without runs it sleeps."""

    def __init__(self):
        self._cond = threading.Condition()
        self._runs = {}  # {RunOptions: deadline on time.monotonic}
        self._last_run = 0.0
        self._thread = None
        self._sleeping = False

    def add(self, options: ort.RunOptions, deadline: float) -> None:
        with self._cond:
            self._runs[options] = deadline
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="edgevae-run-watchdog", daemon=True)
                self._thread.start()
            elif self._sleeping:
                self._cond.notify()

    def remove(self, options: ort.RunOptions) -> None:
        with self._cond:
            del self._runs[options]
            self._last_run = time.monotonic()

    def stop_all(self) -> None:
        with self._cond:
            for options in self._runs:
                options.terminate = True

    def _watch(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for options, deadline in self._runs.items():
                    if now >= deadline:
                        options.terminate = True
                if self._runs or now - self._last_run < IDLE_S:
                    self._cond.wait(POLL_S)
                else:
                    self._sleeping = True
                    self._cond.wait()
                    self._sleeping = False


_watchdog = _Watchdog()


def stop_all_runs() -> None:
    """Terminate every onnxruntime run in flight in this process; each raises RunStopped. Safe to call from
    any thread (an embedding app's own signal handling, say)."""
    _watchdog.stop_all()


def run(session: ort.InferenceSession, feed: dict, *, timeout_s: float) -> list:
    """session.run(None, feed), terminated after timeout_s seconds or by stop_all_runs (then RunStopped)."""
    options = ort.RunOptions()
    deadline = time.monotonic() + timeout_s
    _watchdog.add(options, deadline)
    try:
        return session.run(None, feed, options)
    except Exception:
        if options.terminate:
            raise RunStopped(time.monotonic() >= deadline, timeout_s) from None
        raise
    finally:
        _watchdog.remove(options)
