"""Finding candidates again: by hash prefix across run directories and the cache.

A run's candidates come from its ranking.json when present, else from its event log
(the source of truth). Lineage walks parent hashes inside the same run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minact.errors import ConfigError
from minact.outcome import History
from minact.ranking import ranking_document
from minact.runlog import RunLog

__all__ = ["Found", "find", "latest_run", "run_candidates"]

MIN_PREFIX = 4


@dataclass(frozen=True, slots=True)
class Found:
    """A candidate located by hash.

    Attributes:
        entry: its ranking entry (fitness, tasks, status, lineage fields); {} from the cache.
        run: the run directory it was found in, if any.
        lineage: its ancestors in that run, parent first.
    """

    code_hash: str
    source: str
    entry: dict[str, Any] = field(default_factory=dict)
    run: Path | None = None
    lineage: tuple[dict[str, Any], ...] = ()


def run_candidates(run: Path) -> dict[str, Any]:
    """Returns a run's ranking document (ranking.json, else rebuilt from its events)."""
    ranking = run / "ranking.json"
    if ranking.is_file():
        try:
            doc = json.loads(ranking.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and isinstance(doc.get("candidates"), list):
                return doc
        except (OSError, UnicodeDecodeError, ValueError):
            pass  # damaged: rebuild from the log below
    log = RunLog.open(run)
    meta = log.read_run()
    if "lab_summary" not in meta:
        raise ConfigError(f"{run}: run.json has no lab summary; re-run `minact report {run}`")
    scored = History.from_events(list(log.events())).scored()
    extra = {s.code_hash: lineage for s, lineage in scored if s.code_hash}
    return ranking_document([s for s, _ in scored], meta["lab_summary"], meta, extra)


def _runs(runs_dir: Path) -> Iterator[Path]:
    if runs_dir.is_dir():
        for run in sorted(runs_dir.iterdir()):
            if (run / "run.json").is_file():
                yield run


def latest_run(runs_dir: Path) -> Path:
    """Returns the most recently created run under `runs_dir`; raises ConfigError if none."""
    runs = list(_runs(runs_dir))
    if not runs:
        raise ConfigError(f"no runs under {runs_dir}; pass --run RUN_DIR or --runs-dir")
    return max(runs, key=lambda r: (r / "run.json").stat().st_mtime)


def _lineage(
    entry: dict[str, Any], by_hash: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], ...]:
    chain: list[dict[str, Any]] = []
    parent = entry.get("parent")
    while parent and parent in by_hash and len(chain) < 100:
        chain.append(by_hash[parent])
        parent = by_hash[parent].get("parent")
    return tuple(chain)


def find(
    prefix: str,
    runs: Iterable[Path],
    cached_sources: Iterable[tuple[str, str]] = (),
) -> Found:
    """Returns the candidate whose code hash starts with `prefix`; raises ConfigError."""
    prefix = prefix.strip().lower()
    if len(prefix) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in prefix):
        raise ConfigError(f"{prefix!r} is not a hash prefix: give at least {MIN_PREFIX} hex digits")
    hits: dict[str, Found] = {}
    for run in runs:
        doc = run_candidates(run)
        by_hash = {c["code_hash"]: c for c in doc["candidates"] if c.get("code_hash")}
        for h, entry in by_hash.items():
            if h.startswith(prefix) and h not in hits:
                hits[h] = Found(h, entry["source"], entry, run, _lineage(entry, by_hash))
    for h, source in cached_sources:
        if h.startswith(prefix) and h not in hits:
            hits[h] = Found(h, source)
    if not hits:
        raise ConfigError(f"no candidate's hash starts with {prefix!r} (in the runs or the cache)")
    if len(hits) > 1:
        listed = ", ".join(sorted(h[:12] for h in hits)[:10])
        raise ConfigError(
            f"{prefix!r} is ambiguous: {len(hits)} candidates match ({listed}); give more digits"
        )
    return next(iter(hits.values()))


def all_runs(runs_dir: Path) -> list[Path]:
    """Returns the run directories under `runs_dir`."""
    return list(_runs(runs_dir))
