"""The run's locks: the operating system's (flock), so a killed process leaves none behind.

Two locks, on two files of a run directory:

* the directory itself is held by the process that runs the search (`hold`): a second
  `minact evolve --resume` of it is refused at once, and `in_use` tells a reader whether
  a run marked "running" still has a process;
* events.jsonl is held while a run's outputs (reports, ranking.json, run.json) are written
  (`writing`), so that `minact report` of a live run and the run's own end do not write
  between each other. A writer waits for the other one, but no longer than WRITING_WAIT_S:
  a stopped (SIGSTOP) or hung process holding it must not hang every later command.

Where there are no such locks (not POSIX), nothing is guarded.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from minact.errors import ConfigError

__all__ = ["WRITING_WAIT_S", "hold", "in_use", "writing"]

# How long the outputs' writer waits for another process that writes them. Writing a
# report takes seconds (its curves are drawn before the lock is taken): minutes of waiting
# mean the other process is stopped or hung, not busy.
WRITING_WAIT_S = 120.0
_POLL_S = 0.05  # between two tries of the lock while waiting


@contextlib.contextmanager
def hold(directory: Path) -> Iterator[None]:
    """Holds the run `directory` for this process while the block runs; raises ConfigError
    when another process holds it (two searches appending to one log would interleave,
    each giving the same proposals other candidates)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as e:
        raise ConfigError(f"cannot read {directory}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(
                f"{directory}: the run is in use by another minact process; wait "
                "for it to end, or stop it and resume the run"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def writing(directory: Path, events: Path, wait: float | None = None) -> Iterator[None]:
    """Holds `events` (the run's events.jsonl) while the block writes the run's outputs;
    waits while another process holds it, at most `wait` seconds (None: WRITING_WAIT_S),
    then raises ConfigError naming `directory`. Where the lock cannot be had (no log yet,
    a filesystem without locks), the block runs unguarded."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(events, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        yield
        return
    limit = WRITING_WAIT_S if wait is None else wait
    try:
        deadline = time.monotonic() + limit
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConfigError(
                        f"{directory}: another minact process is writing the run's report "
                        f"and did not finish in {limit:g} s (stopped or hung?); the run's "
                        f"events are kept: once it ends, `minact report {directory}` writes "
                        "the report"
                    ) from None
                time.sleep(_POLL_S)
            except OSError:
                break  # no locks on this filesystem: unguarded, as before there were any
        yield
    finally:
        os.close(fd)  # releases the lock


def in_use(directory: Path) -> bool:
    """Returns whether a process holds the run `directory` (`hold`); True where that cannot
    be told (not POSIX, a folder it cannot open)."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a look: closing fd lets it go
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
