"""diskcache's format on disk, read without pickle and kept to the cache's own files.

A cache folder may come from elsewhere (a colleague's copy, entries edited by hand), so what
its database says is never trusted beyond the folder: a pickle is never loaded (it would run
any code it names), and a value kept in a file is read, and a file removed, only where the
name is one diskcache makes (`ab/cd/<28 hex digits>.val`) and stays inside the folder. A row
naming any other file (`/home/me/thesis.tex`, `../x`, a link to /dev/zero) would otherwise be
read on a get and deleted when the entry is replaced or expires.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_TEXT

__all__ = ["PICKLED", "TextDisk"]

# The names diskcache.Disk.filename makes: two levels of hex folders, a random hex name.
_OWN_NAME = re.compile(r"[0-9a-f]{2}[/\\][0-9a-f]{2}[/\\][0-9a-f]{28}\.val")


class _Pickled:
    """What `TextDisk` returns for a pickled key or value, in place of loading it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<a pickle, not loaded>"


PICKLED = _Pickled()


class TextDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache is untyped
    """diskcache's own format on disk, without pickle: a pickled key or value is never
    loaded (it reads back as PICKLED), and a value that would be pickled is refused; a file
    not diskcache's own in the folder is neither read nor removed.

    Only how entries are decoded changes: the settings (file size threshold, pickle
    protocol) still come from the cache's Settings table, and keys, modes and files are
    diskcache's, so a cache written by plain diskcache.Cache reads back as before, text
    kept in files (large values) included.
    """

    def get(self, key: Any, raw: bool) -> Any:
        """Returns a key from the Cache table; a pickled one (not minact's) as PICKLED."""
        return super().get(key, raw) if raw else PICKLED

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        """Returns a value from the Cache table or its file; a pickled one as PICKLED;
        raises ValueError for a file that is not a regular one of the cache's own."""
        if mode == MODE_PICKLE:
            return PICKLED
        if mode in (MODE_BINARY, MODE_TEXT):
            path = self._own_path(filename)
            # lstat: a link (to /dev/zero, to a FIFO) or a device is never opened.
            if path is None or not stat.S_ISREG(os.lstat(path).st_mode):
                raise ValueError("a value file that is not the cache's own")
        return super().fetch(mode, filename, value, read)

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        """Stores text, bytes or a number as diskcache does; refuses what it would pickle."""
        if not (read or type(value) in (str, bytes, float) or _is_int64(value)):
            raise TypeError(f"the cache stores JSON text, never a pickle (got {type(value)})")
        return super().store(value, read, key=key)

    def remove(self, file_path: str) -> None:
        """Removes a value file of the cache's own; leaves any other path alone."""
        if self._own_path(file_path) is not None:
            super().remove(file_path)

    def _own_path(self, filename: Any) -> str | None:
        """Returns the full path of `filename` if diskcache made the name and its folder is
        in the cache's folder (not reached through a link), else None."""
        if not isinstance(filename, str) or not _OWN_NAME.fullmatch(filename):
            return None
        path = os.path.join(self._directory, filename)
        top = os.path.realpath(self._directory)
        inside = os.path.realpath(os.path.dirname(path)) == os.path.join(
            top, filename[:2], filename[3:5]
        )
        return path if inside else None


def _is_int64(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63
