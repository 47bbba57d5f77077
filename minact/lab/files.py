"""Reading a user's file with a size limit: a regular file, never more than the limit.

A path given on the command line can name anything: a 2 GB sparse file, a symlink to
/dev/zero, a FIFO that no one writes to. `read_regular` follows symlinks, refuses what is
not a regular file before reading a byte (the open does not block on a FIFO), and reads at
most `limit` + 1 bytes, so a file over the limit costs no more memory than one at it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["FileRefused", "kind", "open_regular", "read_regular"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind(mode: int) -> str:
    """Returns what a file of `st_mode` `mode` is that is not a regular one, in a user's
    words ("a directory", "a FIFO (named pipe)")."""
    return next((name for test, name in _KINDS if test(mode)), "not a plain file")


class FileRefused(ValueError):
    """A file that is not a regular file, or is over the size limit (reason in the message)."""


def _require_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise FileRefused(f"is not a regular file ({kind(mode)})")


def open_regular(path: Path, append: bool = False) -> int:
    """Returns a descriptor of the regular file at `path` (symlinks followed), open for
    reading, or with `append` for reading and appending (created if missing); raises
    FileRefused ("is not a regular file (a FIFO (named pipe))") or OSError as open() does."""
    # O_NONBLOCK: an open of a FIFO no one writes to would otherwise wait for ever.
    access = os.O_RDWR | os.O_APPEND | os.O_CREAT if append else os.O_RDONLY
    flags = access | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if append:
        try:  # a folder cannot be opened to write: refused as one, not as EISDIR
            _require_regular(os.stat(path).st_mode)
        except FileNotFoundError:
            pass
    fd = os.open(path, flags, 0o666)
    try:
        _require_regular(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path, limit: int) -> bytes:
    """Returns the bytes of the regular file at `path` (symlinks followed), at most `limit`.

    Raises FileRefused ("is not a regular file (a FIFO (named pipe))", "is larger than the
    limit of N bytes") or OSError (FileNotFoundError, PermissionError, ...) as open() does.
    """
    fd = open_regular(path)
    try:
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise FileRefused(f"is larger than the limit of {limit} bytes")
    return b"".join(chunks)
