"""The fitness cache on disk: with its disk format (minact.textdisk), the only module that
imports diskcache.

Entries are JSON text (never pickles written by minact):

* `adm/{version}/{lab}/{code_hash}`: the worker's admission verdict for normalised code
  (ADMISSION_REVISION): behaviour hash and cost, or a failure with its reason (and, for a
  timeout or a crash, its conditions). Known code is answered without the worker.
* `res/{version}/{lab}/{task}/{key}`: results on one task (losses per seed, or a
  deterministic failure), with the code hash that produced them and its trace. The key is
  a behaviour hash, so equal functions share the entry, or a code hash, for code whose
  behaviour hash collided with code that trains differently. Keyed by task digest too, so
  any tasks file reuses the pairs it has in common with another.
* `trn/{version}/{lab}/{task}/{code_hash}`: a transient training failure (timeout,
  crash) of that code only, with its conditions; never shared by behaviour.
* `vfy/{version}/{lab}/{task}/{code_hash}/{producer}`: whether code computes what
  `producer` computed at the pre-activations of its training on that task, and at the dense
  check (minact.sandbox.verify): a verdict holds for the tasks whose traces it checked.
* `src/{code_hash}`: the normalised source, so later commands can show and rescore it.
* `crv/{version}/{code_hash}/{lo}:{hi}:{n}`: f and f' of normalised code on a grid (or
  why they could not be computed), for the report's plots.
* `meta/salt`: a random secret made once per cache, from which the probe points no source
  can predict are drawn (`seed`). It never leaves this module: not in logs, runs or reports.

Each entry names the key it was written under and, but for sources, the torch version
(its numbers depend on torch's kernels; the worker runs this interpreter's torch, and Ray
nodes must run the same one). An entry under another key (copied or edited by hand) is
unreadable; one written under another torch, or before entries named it, is a miss.

diskcache keeps entries in SQLite (large ones in files beside it), safe for several
processes at once. A corrupt or unreadable entry is a miss; a cache that cannot be opened is
a CacheError. A pickle can run any code it names and diskcache would load one; minact
writes none and reads through `TextDisk`, which treats a pickle as unreadable without
loading it, and reads or removes no file but the cache's own: a cache folder from elsewhere
cannot run code in minact, nor make it read or delete files outside the folder.
"""

from __future__ import annotations

import hmac
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import diskcache

from minact.candidate import Hash
from minact.errors import CacheError
from minact.folders import reason
from minact.score import Admission, Conditions, TaskResult
from minact.textdisk import PICKLED, TextDisk

__all__ = ["ADMISSION_REVISION", "FitnessCache", "Stored"]

T = TypeVar("T")
_SALT = "meta/salt"
# Admissions of an older revision are misses (2: the flat note), so a verdict never depends
# on when the cache was written; training results stay valid.
ADMISSION_REVISION = 2
LOCK_WAIT = 60.0  # seconds to wait for another process's write lock on the database


def torch_version() -> str:
    """Returns the installed torch's version, without importing torch ("none" without one)."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


@dataclass(frozen=True, slots=True)
class Stored:
    """A cached result and the code hash whose training produced it (None if unknown)."""

    result: TaskResult
    producer: Hash | None


def _database_reason(directory: Path, error: Exception) -> str:
    """Returns why the store in `directory` did not open: what is wrong with its database
    file where that is the cause (SQLite says only "unable to open database file" of a
    folder in its place), else the folder's reason (folders.reason)."""
    database = directory / "cache.db"
    if database.exists() and not database.is_file():
        kind = "a folder" if database.is_dir() else "a special file (a FIFO, socket or device)"
        return f"{database.name} is {kind}, not the cache's database"
    if isinstance(error, sqlite3.DatabaseError) and "not a database" in str(error):
        return f"{database.name} is not an SQLite database (damaged, or another program's file)"
    return reason(directory, error)


class FitnessCache:
    """Fitness results on disk, shared by every run that uses the same directory."""

    def __init__(self, directory: Path, version: str, torch: str | None = None) -> None:
        """Opens the cache in `directory` for evaluator `version` and `torch` (default: the
        installed torch's version); raises CacheError."""
        self.directory = directory
        self.version = version
        self.torch = torch_version() if torch is None else torch
        self.warnings: list[str] = []
        self._salt: str | None = None
        self._cache = self._open()
        self._database = self._identity()

    def _open(self) -> diskcache.Cache:
        """Opens (or creates) the store in the cache's folder; raises CacheError."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # No eviction: a result is never dropped to make room; entries are small.
            return diskcache.Cache(
                str(self.directory),
                disk=TextDisk,
                eviction_policy="none",
                timeout=LOCK_WAIT,
                statistics=False,
            )
        except (sqlite3.Error, OSError) as e:
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                # Not damage: another process holds the database; deleting it loses its work.
                raise CacheError(
                    f"cannot open the cache at {self.directory}: another process kept its "
                    f"database locked for {LOCK_WAIT:g} s; wait for it to finish or pass "
                    "--cache-dir DIR (or set MINACT_CACHE_DIR)"
                ) from None
            # A read-only or full disk is said as such: SQLite's words for them send a user
            # to delete a cache that is not damaged.
            why = _database_reason(self.directory, e)
            raise CacheError(
                f"cannot open the cache at {self.directory}: {why}; "
                "pass --cache-dir DIR (or set MINACT_CACHE_DIR) or fix its permissions "
                "(deleting a damaged cache folder is safe: it only costs re-evaluation)"
            ) from None

    def _identity(self) -> tuple[int, int] | None:
        """Returns the device and inode of the database file in the folder, None if none."""
        try:
            st = (self.directory / "cache.db").stat()
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _reopen_if_replaced(self) -> None:
        """Opens the store again when its database left the folder (removed, replaced)."""
        # SQLite goes on writing to the file it opened: after `rm -r` of the folder, every
        # later result would go to a deleted file, in silence.
        if self._identity() == self._database:
            return
        self.warnings.append(
            f"the cache at {self.directory} was removed or replaced while the command ran; "
            "later results are kept in a new one there"
        )
        self._cache.close()
        self._cache = self._open()
        self._database = self._identity()

    def close(self) -> None:
        """Closes the underlying database."""
        self._cache.close()

    def __enter__(self) -> FitnessCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the secret salt ----------------------------------------------------------------

    def seed(self, context: str) -> int:
        """Returns a 63-bit seed derived from this cache's secret salt and `context`."""
        if self._salt is None:
            try:
                # add() keeps the first process's salt when two create it at once.
                self._cache.add(_SALT, secrets.token_hex(32))
                stored = self._cache.get(_SALT)
            except (sqlite3.Error, OSError):
                stored = None
            if not isinstance(stored, str) or len(stored) < 32:
                self.warnings.append("the cache's salt is unreadable; using one for this command")
                stored = secrets.token_hex(32)
            self._salt = stored
        digest = hmac.new(self._salt.encode(), context.encode(), "sha256").hexdigest()
        return int(digest[:15], 16)

    # admissions ---------------------------------------------------------------------

    def get_admission(self, code_hash: Hash, lab_digest: str) -> Admission | None:
        """Returns the cached admission of `code_hash` (of ADMISSION_REVISION), or None."""
        key = f"adm/{self.version}/{lab_digest}/{code_hash}"
        stored = self._get(key, lambda d: (d.get("revision"), Admission.from_dict(d)))
        return stored[1] if stored is not None and stored[0] == ADMISSION_REVISION else None

    def get_admission_conditions(self, code_hash: Hash, lab_digest: str) -> Conditions | None:
        """Returns the conditions of a cached provisional admission verdict, or None."""
        key = f"adm/{self.version}/{lab_digest}/{code_hash}"
        return self._get(key, lambda d: Conditions.from_dict(d["conditions"]))

    def put_admission(
        self,
        code_hash: Hash,
        lab_digest: str,
        admission: Admission,
        conditions: Conditions | None = None,
    ) -> None:
        """Stores an admission verdict (a transient one with its conditions)."""
        value = {**admission.to_dict(), "revision": ADMISSION_REVISION}
        if conditions is not None:
            value["conditions"] = conditions.to_dict()
        self._put(f"adm/{self.version}/{lab_digest}/{code_hash}", value)

    # per-task results ---------------------------------------------------------------

    def get_result(
        self, key: Hash, task_digest: str, lab_digest: str, seeds: int | None = None
    ) -> Stored | None:
        """Returns the cached result under `key` (behaviour or code hash) on a task, or None;
        with `seeds` (the task's), a successful result with another number of losses is
        unreadable (the task digest names its seed count: such an entry was edited)."""

        def parse(d: dict[str, Any]) -> Stored:
            producer = d.get("producer")
            result = TaskResult.from_dict(d)
            if seeds is not None and result.ok and len(result.ood) != seeds:
                raise ValueError(f"{len(result.ood)} losses for a task of {seeds} seeds")
            return Stored(result, Hash(str(producer)) if producer else None)

        return self._get(f"res/{self.version}/{lab_digest}/{task_digest}/{key}", parse)

    def put_result(
        self, key: Hash, task_digest: str, lab_digest: str, result: TaskResult, producer: Hash
    ) -> None:
        """Stores a result under `key` on a task, with the code hash that produced it."""
        value = {**result.to_dict(), "producer": producer}
        self._put(f"res/{self.version}/{lab_digest}/{task_digest}/{key}", value)

    def get_transient(
        self, code_hash: Hash, task_digest: str, lab_digest: str
    ) -> tuple[TaskResult, Conditions] | None:
        """Returns code's transient failure on a task and its conditions, or None."""
        key = f"trn/{self.version}/{lab_digest}/{task_digest}/{code_hash}"
        return self._get(
            key, lambda d: (TaskResult.from_dict(d), Conditions.from_dict(d["conditions"]))
        )

    def put_transient(
        self,
        code_hash: Hash,
        task_digest: str,
        lab_digest: str,
        result: TaskResult,
        conditions: Conditions,
    ) -> None:
        """Stores a transient failure of one code on a task, with its conditions."""
        value = {**result.to_dict(), "conditions": conditions.to_dict()}
        self._put(f"trn/{self.version}/{lab_digest}/{task_digest}/{code_hash}", value)

    def drop_transient(self, code_hash: Hash, task_digest: str, lab_digest: str) -> None:
        """Forgets a transient failure (the code has since trained)."""
        try:
            self._cache.delete(f"trn/{self.version}/{lab_digest}/{task_digest}/{code_hash}")
        except (sqlite3.Error, OSError) as e:
            self.warnings.append(f"could not drop a stale failure of {code_hash[:12]}: {e}")

    def verdicts(self, code_hash: Hash) -> list[tuple[str, str]]:
        """Returns (status, reason) of each admission of `code_hash` and each of its transient
        failures not since cleared, on any lab."""
        prefixes = (f"adm/{self.version}/", f"trn/{self.version}/")
        try:
            keys = [
                k
                for k in self._cache.iterkeys()
                if isinstance(k, str) and k.startswith(prefixes) and k.endswith(code_hash)
            ]
        except Exception as e:  # an unreadable store lists nothing rather than crash
            self.warnings.append(f"cannot list the cache ({type(e).__name__})")
            return []
        found = (self._get(k, lambda d: (str(d["status"]), str(d.get("reason", "")))) for k in keys)
        return [f for f in found if f is not None]

    def crashes(self, code_hash: Hash) -> list[str]:
        """Returns the reasons of the crashes recorded for `code_hash` and not since cleared."""
        return [reason for status, reason in self.verdicts(code_hash) if status == "crashed"]

    # verification of reuse ----------------------------------------------------------

    def get_verdict(
        self, code_hash: Hash, producer: Hash, lab_digest: str, task_digest: str
    ) -> tuple[bool, str] | None:
        """Returns whether code was verified to compute what `producer` did in its training
        on the task, and why not."""
        key = f"vfy/{self.version}/{lab_digest}/{task_digest}/{code_hash}/{producer}"
        return self._get(key, lambda d: (bool(d["match"]), str(d.get("reason", ""))))

    def put_verdict(
        self,
        code_hash: Hash,
        producer: Hash,
        lab_digest: str,
        task_digests: Iterable[str],
        match: bool,
        reason: str,
    ) -> None:
        """Stores the outcome of verifying code against `producer`'s training on the tasks."""
        for task in task_digests:
            key = f"vfy/{self.version}/{lab_digest}/{task}/{code_hash}/{producer}"
            self._put(key, {"match": match, "reason": reason})

    # sources ------------------------------------------------------------------------

    def put_source(self, code_hash: Hash, source: str) -> None:
        """Stores the normalised source of `code_hash`."""
        self._put(f"src/{code_hash}", {"source": source})

    def sources(self) -> Iterator[tuple[Hash, str]]:
        """Yields (code hash, normalised source) of every candidate the cache knows."""
        try:
            keys = [
                k for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith("src/")
            ]
        except Exception as e:  # an unreadable store lists nothing rather than crash
            self.warnings.append(f"cannot list the cache ({type(e).__name__})")
            return
        for key in keys:
            source = self.get_source(Hash(key[4:]))
            if source is not None:
                yield Hash(key[4:]), source

    def get_source(self, code_hash: Hash) -> str | None:
        """Returns the normalised source of `code_hash`, or None."""
        return self._get(f"src/{code_hash}", lambda d: str(d["source"]))

    # curves -------------------------------------------------------------------------

    def get_curve(self, code_hash: Hash, grid: tuple[float, float, int]) -> dict[str, Any] | None:
        """Returns the stored curve data of `code_hash` on `grid` (lo, hi, n), or None."""
        return self._get(self._curve_key(code_hash, grid), lambda d: d)

    def put_curve(
        self, code_hash: Hash, grid: tuple[float, float, int], data: dict[str, Any]
    ) -> None:
        """Stores curve data: {"x", "f", "df"} lists (null where not finite) or {"error"}."""
        self._put(self._curve_key(code_hash, grid), data)

    def _curve_key(self, code_hash: Hash, grid: tuple[float, float, int]) -> str:
        lo, hi, n = grid
        return f"crv/{self.version}/{code_hash}/{float(lo)!r}:{float(hi)!r}:{int(n)}"

    # ---------------------------------------------------------------------------------

    def _get(self, key: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
        try:
            raw = self._cache.get(key)
            if raw is None:
                return None
            if raw is PICKLED:
                self.warnings.append(
                    f"cache entry {key} unreadable (a pickle, which minact never writes; "
                    "not loaded); re-evaluating"
                )
                return None
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            if data.pop("key", key) != key:
                raise ValueError("an entry of another key")
            torch = data.pop("torch", None)
            parsed = parse(data)  # a malformed entry says so, whichever torch wrote it
            # Numbers of another torch are a miss, as are entries that do not say theirs.
            return parsed if torch == self.torch or key.startswith("src/") else None
        except Exception as e:  # a damaged entry can raise anything
            why = f": {str(e)[:80]}" if isinstance(e, ValueError) else ""
            self.warnings.append(
                f"cache entry {key} unreadable ({type(e).__name__}{why}); re-evaluating"
            )
            return None

    def _put(self, key: str, value: dict[str, Any]) -> None:
        try:
            self._reopen_if_replaced()
            stamped = {**value, "key": key, "torch": self.torch}
            self._cache.set(key, json.dumps(stamped, sort_keys=True))
        except (sqlite3.Error, OSError, CacheError) as e:
            # The result stays in memory for this command; only its reuse is lost.
            self.warnings.append(f"could not write cache entry {key}: {e}")
