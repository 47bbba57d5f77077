"""The fitness cache on disk: the only module that imports diskcache.

Three kinds of entries, all JSON text (never pickles written by minact):

* `adm/{version}/{lab}/{code_hash}`: the worker's admission verdict for normalised
  code: behaviour hash and cost, or a failure with its reason. Known code is thus
  answered without starting the worker.
* `res/{version}/{lab}/{task}/{behaviour_hash}`: a behaviour trained on one task:
  losses per seed, or a failure. Keyed by behaviour, so equal functions share it, and
  by task digest, so any tasks file reuses the pairs it has in common with another.
* `src/{code_hash}`: the normalised source, so later commands can show and rescore it.
* `crv/{version}/{code_hash}/{lo}:{hi}:{n}`: f and f' of normalised code on a grid (or
  why they could not be computed), for the report's plots.

diskcache keeps each entry in SQLite, which is safe for several processes at once. A
corrupt or unreadable entry is a miss; a cache that cannot be opened is a CacheError.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import diskcache

from minact.candidate import Hash
from minact.errors import CacheError
from minact.score import Admission, TaskResult

__all__ = ["FitnessCache"]

T = TypeVar("T")


class FitnessCache:
    """Fitness results on disk, shared by every run that uses the same directory."""

    def __init__(self, directory: Path, version: str) -> None:
        self.directory = directory
        self.version = version
        self.warnings: list[str] = []
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # No eviction: a result is never dropped to make room; entries are small.
            self._cache = diskcache.Cache(
                str(directory), eviction_policy="none", timeout=60, statistics=False
            )
        except (sqlite3.Error, OSError) as e:
            raise CacheError(
                f"cannot open the cache at {directory}: {e}; pass --cache-dir DIR or fix its "
                "permissions (deleting a damaged cache folder is safe: it only costs re-evaluation)"
            ) from None

    def close(self) -> None:
        """Closes the underlying database."""
        self._cache.close()

    def __enter__(self) -> FitnessCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # admissions ---------------------------------------------------------------------

    def get_admission(self, code_hash: Hash, lab_digest: str) -> Admission | None:
        """Returns the cached admission of `code_hash`, or None."""
        return self._get(f"adm/{self.version}/{lab_digest}/{code_hash}", Admission.from_dict)

    def put_admission(self, code_hash: Hash, lab_digest: str, admission: Admission) -> None:
        """Stores an admission verdict."""
        self._put(f"adm/{self.version}/{lab_digest}/{code_hash}", admission.to_dict())

    # per-task results ---------------------------------------------------------------

    def get_result(self, behaviour: Hash, task_digest: str, lab_digest: str) -> TaskResult | None:
        """Returns the cached result of a behaviour on a task, or None."""
        key = f"res/{self.version}/{lab_digest}/{task_digest}/{behaviour}"
        return self._get(key, TaskResult.from_dict)

    def put_result(
        self, behaviour: Hash, task_digest: str, lab_digest: str, result: TaskResult
    ) -> None:
        """Stores the result of a behaviour on a task."""
        key = f"res/{self.version}/{lab_digest}/{task_digest}/{behaviour}"
        self._put(key, result.to_dict())

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
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return parse(data)
        except Exception as e:  # a damaged entry (or a foreign pickle) can raise anything
            self.warnings.append(
                f"cache entry {key} unreadable ({type(e).__name__}); re-evaluating"
            )
            return None

    def _put(self, key: str, value: dict[str, Any]) -> None:
        try:
            self._cache.set(key, json.dumps(value, sort_keys=True))
        except (sqlite3.Error, OSError) as e:
            # The result stays in memory for this command; only its reuse is lost.
            self.warnings.append(f"could not write cache entry {key}: {e}")
