"""The run directory: run.json, the append-only events.jsonl, and the files written at the end.

events.jsonl is the source of truth for `--resume`: one JSON object per line, flushed
as it happens, so a killed run loses at most the line being written (a truncated last
line is skipped on reading). run.json and the reports are replaced atomically (write a
temporary file, then rename), so a reader never sees half a file. A file of the run that
cannot be read or written (a read-only folder, a full disk, a folder where a file should be)
is a ConfigError that names it and says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from minact.errors import ConfigError
from minact.lab.files import FileRefused, open_regular, read_regular
from minact.runs import locks
from minact.runs.schema import check_run
from minact.runs.writes import cannot as _cannot
from minact.runs.writes import left_by_write, rewrite_in_place, write_atomic

__all__ = [
    "RUN_ID_RULE",
    "RunExistsError",
    "RunLog",
    "new_run_id",
    "recorded_nothing",
    "usable_run_id",
    "write_atomic",
]

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}\Z")
RUN_ID_RULE = "use letters, digits, '.', '_' and '-', a letter or digit first (at most 100)"
MAX_RUN_JSON_BYTES = 1 << 26  # minact writes tens of KB
MAX_EVENT_CHARS = 1 << 26  # a line past it is damage: a reply is at most 100,000 characters


def usable_run_id(run_id: str) -> bool:
    """Returns whether `run_id` can name a run directory (RUN_ID_RULE): never a path."""
    return bool(_RUN_ID.match(run_id))


class RunExistsError(ConfigError):
    """The run directory to create exists already."""


def _exists(directory: Path) -> RunExistsError:
    """Returns the refusal to start a run in `directory`, which holds one."""
    return RunExistsError(
        f"run directory {directory} exists; pass --resume {directory} to continue it "
        "or another --run-id"
    )


def recorded_nothing(directory: Path) -> bool:
    """Returns whether `directory` is a folder whose run recorded nothing: no run.json and
    nothing else but what a cut-short write of it leaves, as a run killed (or refused by a
    full disk) between the creation of its folder and its first run.json leaves it."""
    try:
        names = os.listdir(directory) if directory.is_dir() else None
    except OSError:
        return False
    return names is not None and all(left_by_write(n, "run.json") for n in names)


def _nothing_recorded(directory: Path) -> str:
    """Returns the refusal of a command given `directory` as a run, which recorded nothing
    (`recorded_nothing`): there is nothing to resume or report, and its settings are lost."""
    if locks.in_use(directory):  # a start between its folder and its run.json: a moment
        return f"{directory}: not a run directory yet (no run.json): its run is starting"
    again = ""
    if usable_run_id(directory.name):
        again = (
            f"`minact evolve --runs-dir {shlex.quote(str(directory.parent))} --run-id "
            f"{directory.name}` and the settings it was started with start it afresh there, "
            "or "
        )
    return (
        f"{directory}: not a run directory (no run.json): its run recorded nothing (it stopped "
        f"before writing run.json), so there is nothing to resume or report; {again}remove "
        "the folder"
    )


def new_run_id(now: float, seed: int) -> str:
    """Returns a run id from a timestamp and the seed, e.g. 20261128-170501-s0."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-s{seed}"


def _open_regular(path: Path) -> IO[str]:
    """Returns `path` (symlinks followed) open for reading text; raises FileRefused when it
    is not a regular file (a FIFO, a link to /dev/zero: neither is a log), or OSError."""
    return open(open_regular(path), encoding="utf-8", errors="replace")


def _lines(f: IO[str]) -> Iterator[str]:
    """Yields the lines of `f`; a line longer than MAX_EVENT_CHARS as "" (unreadable), read
    in pieces, so that a file of one endless line costs no more memory than the limit."""
    while line := f.readline(MAX_EVENT_CHARS):
        if len(line) == MAX_EVENT_CHARS and not line.endswith("\n"):
            while (rest := f.readline(MAX_EVENT_CHARS)) and not rest.endswith("\n"):
                pass
            line = ""
        yield line


class RunLog:
    """One run's directory: its config, its event log and its outputs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._events: IO[str] | None = None
        self._written = 0  # bytes events.jsonl held after this process's last append
        # Of the last read of events.jsonl to its end: lines that were no event, and the
        # processes that wrote it (the start and each resume), each of which may leave one.
        self.unreadable = 0
        self.writers = 1

    @property
    def run_json(self) -> Path:
        """Returns the path of run.json."""
        return self.directory / "run.json"

    @property
    def events_path(self) -> Path:
        """Returns the path of events.jsonl."""
        return self.directory / "events.jsonl"

    @classmethod
    def create(cls, runs_dir: Path, run_id: str) -> RunLog:
        """Creates runs_dir/run_id; raises RunExistsError if it exists, ConfigError (with the
        operating system's reason) if it cannot be created or the id is unusable."""
        if not usable_run_id(run_id):
            raise ConfigError(f"--run-id {run_id!r}: {RUN_ID_RULE}")
        directory = runs_dir / run_id
        try:
            directory.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            if not directory.is_dir():  # --resume would say the same: no run is there
                raise ConfigError(
                    f"{directory} is a file, not a run directory; give another --run-id "
                    "(or --runs-dir), or move the file away"
                ) from None
            if not os.path.lexists(directory / "run.json") and not recorded_nothing(directory):
                # --resume would refuse it too: it is no run (a user's folder, a rescore's)
                raise RunExistsError(
                    f"{directory} exists and holds no run (no run.json); give another "
                    "--run-id (or --runs-dir), or move the folder away"
                ) from None
            raise _exists(directory) from None
        except OSError as e:
            raise ConfigError(
                f"cannot create run directory {directory}: {e.strerror or e}"
            ) from None
        return cls(directory)

    @classmethod
    def open(cls, directory: Path) -> RunLog:
        """Opens an existing run directory; raises ConfigError if it is not one."""
        log = cls(directory)
        if not directory.is_dir():
            if directory.is_symlink():  # it is there, and a user would say so
                raise ConfigError(
                    f"{directory}: a symbolic link to no directory (broken or a loop)"
                )
            if directory.exists():  # "no such" would send the user looking for a typo
                raise ConfigError(
                    f"{directory}: a file, not a run directory; give the run's folder"
                )
            raise ConfigError(f"{directory}: no such run directory")
        if not os.path.lexists(log.run_json):  # a run.json of another kind: read_run says
            if recorded_nothing(directory):
                raise ConfigError(_nothing_recorded(directory))
            raise ConfigError(f"{directory}: not a run directory (no run.json)")
        log.read_run()
        return log

    def clear_leftovers(self) -> None:
        """Readies a folder whose run recorded nothing for a run to start afresh in it: removes
        what a cut-short write of run.json left. Call it while the run is `held`: a start in
        progress holds its folder. Raises RunExistsError when the folder holds a run by now,
        ConfigError when a leftover cannot be removed."""
        if not recorded_nothing(self.directory):
            raise _exists(self.directory)
        for name in os.listdir(self.directory):
            try:
                (self.directory / name).unlink(missing_ok=True)
            except OSError as e:
                raise _cannot("remove", self.directory / name, e) from None

    def read_run(self) -> dict[str, Any]:
        """Returns run.json; raises ConfigError if it is missing or malformed, or if a key
        minact reads has a value of the wrong type (runs.schema: the message names it)."""
        try:
            data = json.loads(read_regular(self.run_json, MAX_RUN_JSON_BYTES).decode("utf-8"))
        except FileRefused as e:  # a folder, a FIFO: as the other files of a run are refused
            raise ConfigError(f"cannot read {self.run_json}: it {e}") from None
        except OSError as e:  # a link loop, no permission: the operating system's words
            raise _cannot("read", self.run_json, e) from None
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ConfigError(f"{self.run_json}: unreadable ({e})") from None
        return check_run(data, self.run_json)

    def write_run(self, data: dict[str, Any]) -> None:
        """Replaces run.json; raises ConfigError when it cannot."""
        write_atomic(self.run_json, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def write_end(self, data: dict[str, Any]) -> None:
        """Replaces run.json with how the run ended; raises ConfigError when it cannot.

        Where the replacement cannot be written but run.json can (a full disk: the new file
        needs room, run.json's own bytes do not), run.json is rewritten in place, without
        indentation, when that fits in its current size; where `data` does not fit, run.json
        as it is, with `data`'s status and message (every setting a resume needs is kept)."""
        try:
            self.write_run(data)
        except ConfigError as error:
            # A run stopped by a full disk would otherwise go on saying "running", and be
            # taken for a live run, or for the latest finished one.
            if self._rewrite_compact(data):
                return
            try:
                kept = self.read_run()
            except ConfigError:
                raise error from None  # the write's reason, not the read's
            if not self._rewrite_compact(
                {**kept, "status": data["status"], "message": data["message"]}
            ):
                raise error from None

    def _rewrite_compact(self, data: dict[str, Any]) -> bool:
        """Rewrites run.json in place as `data` without indentation; returns whether it fit."""
        text = json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"
        return rewrite_in_place(self.run_json, text.encode("utf-8"))

    def write_text(self, name: str, text: str) -> Path:
        """Replaces a file of the run directory and returns its path; raises ConfigError
        when it cannot."""
        path = self.directory / name
        write_atomic(path, text)
        return path

    def append(self, event: dict[str, Any]) -> None:
        """Appends one event and flushes it to the operating system; raises ConfigError
        when events.jsonl cannot be written."""
        line = json.dumps(event, sort_keys=True, allow_nan=False) + "\n"
        try:
            if self._events is None:
                self._events = self.events_path.open("a", encoding="utf-8")
                self._repair_tail()
            else:
                self._check_same_log(self._events)
            self._events.write(line)
            self._events.flush()
            self._written = os.fstat(self._events.fileno()).st_size
        except OSError as e:
            raise _cannot("write", self.events_path, e) from None

    def _check_same_log(self, events: IO[str]) -> None:
        """Raises ConfigError when events.jsonl is no longer the file this process appends
        to (removed, replaced, its folder moved) or lost lines it held (truncated)."""
        # Appending to a file that left the folder would lose every later event in silence,
        # and the run would end "finished" with a ranking built from what replaced it.
        mine = os.fstat(events.fileno())
        try:
            there = os.stat(self.events_path)
        except FileNotFoundError:
            there = None
        if there is None or (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
            what = "removed or replaced" if self.directory.is_dir() else "moved or removed"
            subject = self.events_path if self.directory.is_dir() else self.directory
            raise ConfigError(
                f"{subject} was {what} while the run was writing it; the run stops. "
                "Evaluated candidates are in the cache: put the run directory back and "
                "--resume it, or start a new run"
            )
        if mine.st_size < self._written:
            raise ConfigError(
                f"{self.events_path} was truncated while the run was writing it (its events "
                f"fell from {self._written} to {mine.st_size} bytes); the run stops. Evaluated "
                "candidates are in the cache: --resume the run or start a new one"
            )

    def events(self) -> Iterator[dict[str, Any]]:
        """Yields the logged events; skips a truncated or damaged line, and counts them in
        `unreadable` once the log is read to its end (`damage` says whether that is more
        than kills explain). Raises ConfigError when events.jsonl cannot be read."""
        unreadable, writers = 0, 1
        if not self.events_path.exists():
            return
        try:
            with _open_regular(self.events_path) as f:
                for line in _lines(f):
                    try:
                        event = json.loads(line)
                    except (ValueError, RecursionError):
                        event = None  # the line a killed run was writing, or damage
                    if isinstance(event, dict) and "event" in event:
                        writers += event["event"] == "resume"
                        yield event
                    else:
                        unreadable += 1
        except FileRefused as e:
            raise ConfigError(f"cannot read {self.events_path}: it {e}") from None
        except OSError as e:  # only reading raises here: the caller's errors stay its own
            raise _cannot("read", self.events_path, e) from None
        self.unreadable, self.writers = unreadable, writers

    def damage(self) -> str | None:
        """Returns a one-line warning when the last full read of events.jsonl skipped more
        lines than its writers' kills explain (one cut line each), else None."""
        # A killed run loses at most the line it was writing; binary garbage or a file that
        # is mostly not JSON lines would otherwise rank nothing without a word.
        if self.unreadable <= self.writers:
            return None
        lines = "line" if self.unreadable == 1 else "lines"
        return (
            f"warning: {self.events_path}: skipped {self.unreadable} unreadable {lines} (not "
            "JSON events: damaged, or not minact's log); what they held is not ranked"
        )

    def held(self) -> contextlib.AbstractContextManager[None]:
        """Holds the run for this process while the block runs; raises ConfigError when
        another process holds it (minact.runs.locks.hold)."""
        return locks.hold(self.directory)

    def writing(self, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Holds the run's outputs (its reports, ranking.json, run.json) for this process
        while the block writes them; waits while another process writes them, at most
        `wait` seconds (None: locks.WRITING_WAIT_S), then raises ConfigError naming the run
        (minact.runs.locks.writing)."""
        # `minact report` of a live run must not write its older report over the one the
        # run writes as it ends: both write under this lock, the report only if run.json
        # did not change meanwhile (jobs.report.write_report).
        return locks.writing(self.directory, self.events_path, wait)

    def version(self) -> tuple[int, int, int] | None:
        """Returns what changes whenever run.json is written (inode, time, size); None when
        it cannot be read."""
        try:
            st = os.stat(self.run_json)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def in_use(self) -> bool:
        """Returns whether a process holds the run (`held`); True where that cannot be told."""
        return locks.in_use(self.directory)

    def close(self) -> None:
        """Closes the event log; raises ConfigError when what it held cannot be written."""
        events, self._events = self._events, None
        if events is not None:
            try:
                events.close()
            except OSError as e:
                raise _cannot("write", self.events_path, e) from None

    def _repair_tail(self) -> None:
        # A run killed mid-write leaves a line without its newline; start on a fresh line
        # so the next event is not glued to the damaged one.
        assert self._events is not None
        path = self.events_path
        if path.stat().st_size > 0:
            with path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    self._events.write("\n")
