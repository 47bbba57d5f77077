"""Checks a job makes before any work, so that a run that cannot succeed ends in seconds.

A folder minact must write (the cache, the runs) is created if missing and written to
once; the LLM server is checked by minact.jobs.proposing (GET /models). Each failure is
a ConfigError of one line that names the flag and the folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from minact.errors import ConfigError

__all__ = ["writable"]


def writable(folder: Path, flag: str) -> None:
    """Creates `folder` if needed and checks that files can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".minact-check-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise ConfigError(
            f"{flag} {folder}: cannot write there ({why}); choose a folder you can write to"
        ) from None
