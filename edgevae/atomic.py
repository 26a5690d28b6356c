"""The one way edgevae writes a file: to a temporary name beside it, then renamed over it.

A crash, kill or signal at any point leaves the old file or the new one, never a half-written one. Used by
train (checkpoints, metrics), export (model dirs) and the runtime (images): stdlib only, so every install has it.

A folder (a model dir, a site) is replaced the same way: built whole under a temporary name, then renamed
(atomic_folder).

Temporary names are `.NAME.PID.NONCE+TAG.tmp`, where TAG is a hash of everything before it and of this user
and PID namespace: a later write to the same folder sweeps the leftovers of a writer that no longer exists
(SIGKILL cannot be caught), and only entries that prove by their name, owner and type that edgevae made them.
A user's `.notes.4000000.deadbeef.tmp` has no valid TAG, so it is never touched (tests/runtime/test_atomic.py).
"""

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from pathlib import Path

TEMP_SUFFIX = ".tmp"
# What temp_name makes: (prefix)(writer's PID).(nonce)(tag).tmp. Linux PIDs stay below 2**22 (PID_MAX_LIMIT):
# seven digits at most, so a stranger's ten-digit "PID" can neither match nor overflow os.kill.
TEMP_NAME = re.compile(r"(\..+\.)([0-9]{1,7})\.([0-9a-f]{8})([0-9a-f]{8})\.tmp")
NAME_KEPT = 100  # chars of the target's name kept in the temp name: NAME_MAX is 255 and we add up to ~30


def _temp_prefix(path: Path) -> str:
    return f".{path.name[:NAME_KEPT]}."


def _pid_namespace() -> str:
    """This process's PID namespace: a PID is only meaningful inside it (containers sharing a volume)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


def _tag(prefix: str, pid: str, nonce: str) -> str:
    """The hash that marks a temporary name as edgevae's, for this user and PID namespace. Not a secret:
    it cannot stop a user from naming their own files so, only keep us from ever deleting a file by accident."""
    owner = os.geteuid() if hasattr(os, "geteuid") else 0
    text = f"edgevae-temp/1\0{owner}\0{_pid_namespace()}\0{prefix}\0{pid}\0{nonce}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's; anything else: assume alive, keep its files
        return True
    return True


def _ours_and_stale(entry: os.DirEntry) -> bool:
    """entry is a temporary this user's edgevae made (valid tag, our uid, a plain file or a real folder) and its
    writer is gone."""
    match = TEMP_NAME.fullmatch(entry.name)
    if not match:
        return False
    prefix, pid, nonce, tag = match.groups()
    if tag != _tag(prefix, pid, nonce) or int(pid) == os.getpid() or _pid_alive(int(pid)):
        return False
    info = entry.stat(follow_symlinks=False)
    mine = not hasattr(os, "geteuid") or info.st_uid == os.geteuid()
    return mine and (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode))


def sweep_stale(path: Path) -> None:
    """Delete the temporaries that dead edgevae writers left in path's folder (see the module docstring).
    Never raises: a stranger's file must not fail our write."""
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        try:
            if not _ours_and_stale(entry):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)  # a folder we made (a model dir or site in progress)
            else:
                os.unlink(entry.path)
        except (OSError, ValueError):
            continue


def temp_name(path: Path) -> Path:
    """A fresh temporary name beside path (not created), tagged as ours (see the module docstring)."""
    prefix, pid, nonce = _temp_prefix(path), str(os.getpid()), secrets.token_hex(4)
    return path.parent / f"{prefix}{pid}.{nonce}{_tag(prefix, pid, nonce)}{TEMP_SUFFIX}"


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
    tmp = None
    try:  # from before the file exists: a signal the moment it appears must still remove it
        while True:
            tmp = temp_name(path)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
                break
            except FileExistsError:
                tmp = None  # not ours
        if keep is not None:
            os.fchmod(fd, keep)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write(path, write, *, mode: int | None = None) -> None:
    """Call write(binary file) on a temporary file beside path, then rename it over path (see atomic_open)."""
    with atomic_open(path, mode) as f:
        write(f)


def write_bytes(path, data: bytes, *, mode: int | None = None) -> None:
    atomic_write(path, lambda f: f.write(data), mode=mode)


def json_text(obj) -> str:
    """obj as indented JSON; NaN and inf are refused (other languages cannot read them)."""
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def write_json(path, obj, *, mode: int | None = None) -> None:
    write_bytes(path, json_text(obj).encode(), mode=mode)


@contextlib.contextmanager
def atomic_folder(path, mode: int = 0o755):
    """A fresh, empty folder under a temporary name beside path, for the block to fill. When the block ends
    normally the folder replaces path (an existing folder there is renamed aside, then deleted); when it raises
    (KeyboardInterrupt and SystemExit included: the CLI raises them for SIGINT, SIGTERM and SIGHUP) it is
    deleted and path is left as it was. The caller decides whether path may be replaced at all.

    mode: the folder's permission bits (0o755: model dirs and sites are for sharing), whatever the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = None
    try:  # from before the folder exists, as in atomic_open
        while True:
            tmp = temp_name(path)
            try:
                tmp.mkdir(mode=mode)
                break
            except FileExistsError:
                tmp = None  # not ours
        tmp.chmod(mode)
        yield tmp
        _replace_folder(tmp, path)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_folder(tmp: Path, path: Path) -> None:
    """Rename the folder tmp to path. An existing folder at path is first renamed to a temporary name of its own
    (POSIX rename replaces only an empty folder), and renamed back if the second rename fails or is interrupted,
    so path never stays missing; then it is deleted."""
    if not path.is_dir() or path.is_symlink():
        os.replace(tmp, path)  # nothing there, or a file/link that os.replace refuses or replaces itself
        return
    old = temp_name(path)
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
