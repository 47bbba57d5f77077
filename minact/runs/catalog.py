"""Finding candidates again: by hash prefix across run directories and the cache.

A run's candidates come from its event log (the source of truth), ranked the same way
for every command. Lineage walks parent hashes inside the same run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from minact.errors import ConfigError
from minact.runs import checks
from minact.runs.history import History
from minact.runs.ranking import RankingDocument, RankingEntry, ranking_document
from minact.runs.rundir import RunLog

__all__ = ["Found", "all_runs", "find", "latest_run", "run_ranking"]

MIN_PREFIX = 4


@dataclass(frozen=True, slots=True)
class Found:
    """A candidate located by hash.

    Attributes:
        entry: its ranking entry (fitness, tasks, status, lineage fields); None when it was
            found in the cache only.
        run: the run directory it was found in, if any.
        lineage: its ancestors in that run, parent first.
    """

    code_hash: str
    source: str
    entry: RankingEntry | None = None
    run: Path | None = None
    lineage: tuple[RankingEntry, ...] = ()


def run_ranking(run: Path) -> tuple[RankingDocument, History]:
    """Returns a run's ranking document, rebuilt from its event log, and its history.

    The event log is the source of truth: ranking.json may be stale or missing (a killed
    run), so `show`, `export`, `rescore` and the report all rank from the log.
    Raises ConfigError when `run` is not a readable run directory.
    """
    log = RunLog.open(run)
    meta = log.read_run()
    summary = meta.get("lab_summary")
    if not isinstance(summary, dict):
        raise ConfigError(f"{log.run_json}: no lab summary; the run predates reports")
    events = list(log.events())
    history = History.from_events(events)
    scored = history.scored()
    extra = {s.code_hash: lineage.to_dict() for s, lineage in scored if s.code_hash}
    doc = ranking_document([s for s, _ in scored], summary, meta, extra)
    # The run's held-out validation and confirmation, when it made them.
    return checks.attach(doc, events), history


def _runs(runs_dir: Path) -> Iterator[Path]:
    if runs_dir.is_dir():
        for run in sorted(runs_dir.iterdir()):
            if (run / "run.json").is_file():
                yield run


def latest_run(runs_dir: Path) -> Path:
    """Returns the most recently created run under `runs_dir` that evaluated candidates
    (a run that failed before its first proposal has none); raises ConfigError if none."""
    runs = list(_runs(runs_dir))
    if not runs:
        raise ConfigError(f"no runs under {runs_dir}; pass --run RUN_DIR or --runs-dir")
    for run in sorted(runs, key=lambda r: (r / "run.json").stat().st_mtime, reverse=True):
        if History.from_events(RunLog.open(run).events()).evaluated():
            return run
    raise ConfigError(
        f"none of the {len(runs)} runs under {runs_dir} evaluated a candidate; "
        "pass --run RUN_DIR or --runs-dir"
    )


def _lineage(entry: RankingEntry, by_hash: dict[str, RankingEntry]) -> tuple[RankingEntry, ...]:
    chain: list[RankingEntry] = []
    parent = entry["parent"]
    while parent and parent in by_hash and len(chain) < 100:
        chain.append(by_hash[parent])
        parent = by_hash[parent]["parent"]
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
        doc, _ = run_ranking(run)
        by_hash = {h: c for c in doc["candidates"] if (h := c["code_hash"])}
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
