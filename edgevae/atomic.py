"""The one way edgevae writes a file: to a temporary name beside it, then renamed over it.

A crash, kill or signal at any point leaves the old file or the new one, never a half-written one. Used by
train (checkpoints, metrics), export (model dirs) and the runtime (images): stdlib only, so every install has it.

Temporary names are `.NAME.PID.RANDOM.tmp`, so any later write to the same folder can sweep the leftovers of a
process that no longer exists (SIGKILL cannot be caught) without touching those of a live writer.
"""

import contextlib
import json
import os
import re
import secrets
from pathlib import Path

TEMP_SUFFIX = ".tmp"
TEMP_NAME = re.compile(r"\..+\.([0-9]{1,10})\.[0-9a-f]{8}\.tmp")  # what temp_name makes; group 1 is the writer's PID
NAME_KEPT = 100  # chars of the target's name kept in the temp name: NAME_MAX is 255 and we add up to ~30


def _temp_prefix(path: Path) -> str:
    return f".{path.name[:NAME_KEPT]}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(path: Path) -> None:
    """Delete the temporary files (and folders) that writers killed before they could clean up (SIGKILL)
    left in path's folder: ours by their name, of processes that no longer exist."""
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        match = TEMP_NAME.fullmatch(entry.name)
        if not match or int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                import shutil

                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def temp_name(path: Path) -> Path:
    """A fresh temporary name beside path (not created)."""
    return path.parent / f"{_temp_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def _mode_for(path: Path, mode: int | None) -> int | None:
    """The mode the result gets: `mode` if given, else an existing target keeps its own; None: as open() would."""
    if mode is not None:
        return mode
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return None


@contextlib.contextmanager
def atomic_open(path, mode: int | None = None):
    """A binary file open for writing under a temporary name beside path; renamed over path (after fsync)
    when the block ends normally, deleted when it raises -- KeyboardInterrupt and SystemExit included, which
    the CLI raises for SIGINT, SIGTERM and SIGHUP.

    mode: the new file's permission bits (e.g. 0o644 for a model dir's files); None keeps an existing
    file's mode, or gives what a plain open() would (0666 less the umask; the umask is never changed).
    """
    path = Path(path)
    sweep_stale(path)
    keep = _mode_for(path, mode)
    while True:
        tmp = temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
            break
        except FileExistsError:
            continue
    try:
        if keep is not None:
            os.fchmod(fd, keep)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path, write, mode: int | None = None) -> None:
    """Call write(binary file) on a temporary file beside path, then rename it over path (see atomic_open)."""
    with atomic_open(path, mode) as f:
        write(f)


def write_bytes(path, data: bytes, mode: int | None = None) -> None:
    atomic_write(path, lambda f: f.write(data), mode)


def json_text(obj) -> str:
    """obj as indented JSON; NaN and inf are refused (other languages cannot read them)."""
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def write_json(path, obj, mode: int | None = None) -> None:
    write_bytes(path, json_text(obj).encode(), mode)
