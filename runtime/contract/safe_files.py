"""Reading files of an untrusted folder, and printing what came from them.

Only regular files directly inside the folder are opened (O_NOFOLLOW under the folder's own descriptor,
O_NONBLOCK so that a FIFO cannot hang the open), and their size is checked before a byte is read.
"""

import errno
import hashlib
import os
import stat
from pathlib import Path


def escape(text) -> str:
    """text made safe for a terminal: control characters (escape sequences, newlines) shown as \\x.. codes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def read_regular_file(folder: Path, name: str, *, max_bytes: int, exact: int | None = None) -> bytes:
    """The bytes of `name`, a regular file directly in folder (no links, FIFOs or devices), at most max_bytes
    (or exactly `exact`) long, checked before reading. OSError/ValueError with a message naming the file."""
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as err:
        if err.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise ValueError(f"{escape(name)} is a symbolic link; only regular files inside the dir are read") from None
        raise
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{escape(name)} is not a regular file")
        if exact is not None and info.st_size != exact:
            raise ValueError(f"{escape(name)} is {info.st_size} bytes, the manifest says {exact}")
        if info.st_size > max_bytes:
            raise ValueError(f"{escape(name)} is {info.st_size} bytes, more than the {max_bytes} allowed")
        data = f.read(info.st_size + 1)
    if len(data) != info.st_size:
        raise ValueError(f"{escape(name)} changed size while being read")
    return data


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
