"""Why a folder takes no file, in the operating system's words, where a library has its own.

SQLite says "unable to open database file" of a cache on a read-only disk and "disk I/O
error" of one on a full disk; a file written in the folder says which.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["PROBE_BYTES", "reason", "refusal"]

# What a command writes first: a cache's SQLite index in shared memory (32 KiB) and the start
# of its write-ahead log. A smaller file fits on a disk too full for them; an empty one needs
# no room at all.
PROBE_BYTES = 64 * 1024


def refusal(folder: Path) -> OSError | None:
    """Writes a file of PROBE_BYTES in `folder`, then removes it; returns the error that
    refused it (no such folder, no permission, a read-only or full disk), or None."""
    try:
        fd, name = tempfile.mkstemp(prefix=".minact-check-", dir=folder)
    except OSError as e:
        return e
    try:
        view = memoryview(os.urandom(PROBE_BYTES))  # random: a compressing disk stores it all
        while view:
            view = view[os.write(fd, view) :]
    except OSError as e:
        return e
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)
    return None


def reason(folder: Path, error: Exception) -> str:
    """Returns why `error` happened to a file in `folder`: its operating system's reason
    ("Permission denied", not "[Errno 13] ...: 'cache'"), or, for an error that gives none
    (SQLite's), why the folder refuses a file where it does, else the error's own words."""
    if not isinstance(error, OSError):
        error = refusal(folder) or error
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)
