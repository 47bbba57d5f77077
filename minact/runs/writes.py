"""Writing a run's files: whole, through a temporary file and a rename, so that a reader
never sees half a file; or, where the disk is full, over the old bytes in place."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from minact.errors import ConfigError

__all__ = ["cannot", "left_by_write", "rewrite_in_place", "write_atomic"]

# `write_atomic`'s temporary name for a file: ".<name>.<pid>.<8 hex digits>.tmp".
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9]+\.[0-9a-f]{8}\.tmp\Z")


def left_by_write(entry: str, name: str) -> bool:
    """Returns whether the folder entry `entry` is the temporary file of a `write_atomic` of
    `name` that did not end (its process was killed): no file of the user's."""
    match = _TEMPORARY.match(entry)
    return match is not None and match["name"] == name


def cannot(action: str, path: Path, e: OSError) -> ConfigError:
    """Returns the error for a file operation that failed: `cannot <action> <path>: <why>`."""
    return ConfigError(f"cannot {action} {path}: {e.strerror or e}")


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename; raises ConfigError
    (the path and the operating system's reason) when it cannot."""
    # A name of its own, created exclusively and never through a link: two writers of one
    # file (two `minact report`s) do not swap each other's halves, and a link planted in
    # the folder under a predictable name cannot turn the write onto another file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # no stray temporary file where a write failed
        raise cannot("write", path, e) from None


def rewrite_in_place(path: Path, data: bytes) -> bool:
    """Overwrites `path` with `data` when `data` is no longer than the file; returns whether
    it did. No new file and no new bytes on the disk are needed."""
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        if len(data) > os.fstat(fd).st_size:
            return False
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
