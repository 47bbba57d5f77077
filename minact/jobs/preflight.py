"""Checks a job makes before any work, so that a run that cannot succeed ends in seconds.

A folder minact must write (the cache, the runs) is created if missing and written to
once; the LLM server is checked by minact.jobs.proposing (GET /models). Each failure is
a ConfigError of one line that names the flag and the folder. A job that then fails
before writing anything removes the folders it created (`remove_empty`), so a failed
start leaves the user's folder as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from minact.errors import ConfigError
from minact.folders import refusal

__all__ = ["folders", "in_the_way", "remove_empty", "writable"]


def writable(folder: Path, flag: str) -> list[Path]:
    """Creates `folder` if needed and checks that a file can be written in it (a read-only
    or full disk cannot); returns the folders it created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        refused = refusal(folder)  # a file with some room: see minact.folders
        if refused is not None:
            raise refused
    except OSError as e:
        remove_empty(missing)  # a full disk lets the folder be made, then refuses the file
        file = in_the_way(folder)
        if file is not None:  # "File exists" would not say which, nor that it is no folder
            what = "it" if file == folder else str(file)
            raise ConfigError(
                f"{flag} {folder}: cannot write there ({what} is a file, not a folder); "
                "choose a folder"
            ) from None
        why = e.strerror or type(e).__name__
        raise ConfigError(
            f"{flag} {folder}: cannot write there ({why}); choose a folder you can write to"
        ) from None
    return missing


def in_the_way(path: Path) -> Path | None:
    """Returns the first of `path` and the folders above it that exists and is no folder (a
    file, a FIFO, a dangling link): what keeps `path` from ever being a folder; None when
    nothing does (permissions are not judged here)."""
    for p in (path, *path.parents):
        if p.is_dir():
            return None
        if os.path.lexists(p):
            return p
    return None


def remove_empty(folders: list[Path]) -> None:
    """Removes those of `folders` (outermost first, as `writable` returns them) that are
    still empty; a folder anything was written to stays."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): keep it, and the folders around it
            return


@contextmanager
def folders(*wanted: tuple[Path, str]) -> Iterator[None]:
    """Checks each (folder, flag) with `writable`; if the body raises, removes the folders
    this created that are still empty."""
    made: list[Path] = []
    try:
        for folder, flag in wanted:
            made += writable(folder, flag)
        yield
    except BaseException:
        remove_empty(made)
        raise
