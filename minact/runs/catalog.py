"""Finding candidates again: by hash prefix across run directories and the cache.

A run's candidates come from its event log (the source of truth), ranked the same way
for every command. Lineage walks parent hashes inside the same run.

A lookup reads a run's ranking.json instead while its index says that the file is what
the log gives (minact.runs.index), and parses it only in a run that holds the prefix.

A runs folder holds what users copied, edited and interrupted: a run that cannot be
ranked (run.json unreadable, of the wrong shape, or from before reports) is skipped with
a one-line warning when the folder is searched (`all_runs`, `latest_run`), and is an
error only where it is named (`run_ranking`, or `find` given it). Warnings go to a `warn`
callable; by default to the "minact" logger, which Python prints on stderr as it is when
nothing configured logging.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minact.errors import ConfigError, UsageError
from minact.runs import checks, index
from minact.runs.history import History
from minact.runs.ranking import RankingDocument, RankingEntry, ranking_document
from minact.runs.rundir import RunLog, recorded_nothing

__all__ = [
    "Found",
    "Warn",
    "all_runs",
    "check_prefix",
    "find",
    "latest_run",
    "log_warning",
    "run_ranking",
    "skipped_warning",
]

MIN_PREFIX = 4
HASH_DIGITS = 64  # a code hash is a sha256 digest in hex

Warn = Callable[[str], None]  # takes one line, "warning: ..."

_log = logging.getLogger("minact")


def log_warning(text: str) -> None:
    """Reports one line through the "minact" logger (printed on stderr as it is, when
    nothing configured logging)."""
    _log.warning(text)


def skipped_warning(events: Path, skipped: int) -> str:
    """Returns the line saying how many of a run's events were skipped for their shape."""
    lines = "event" if skipped == 1 else "events"
    return (
        f"warning: {events}: skipped {skipped} {lines} of the wrong shape "
        "(valid JSON that is not what minact wrote)"
    )


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


def _summary(log: RunLog, meta: dict[str, Any]) -> dict[str, Any]:
    summary = meta.get("lab_summary")
    if not isinstance(summary, dict):  # its shape is checked by read_run (runs.schema)
        raise ConfigError(f"{log.run_json}: no lab summary; the run predates reports")
    return summary


def run_ranking(
    run: Path, warn: Warn | None = log_warning, *, meta: Mapping[str, Any] | None = None
) -> tuple[RankingDocument, History]:
    """Returns a run's ranking document, rebuilt from its event log, and its history.

    The event log is the source of truth: ranking.json may be stale or missing (a killed
    run), so `show`, `export`, `rescore` and the report all rank from the log. Events of
    the wrong shape are skipped, and `warn` (None: silence) is told how many, once.
    `meta`: run.json's content as the caller is about to write it (a run writes its
    report before it marks how it ended); None: run.json as it is.
    Raises ConfigError when `run` is not a readable run directory.
    """
    log = RunLog.open(run)
    meta = dict(meta) if meta is not None else _as_ended(log, log.read_run())
    summary = _summary(log, meta)
    events = list(log.events())
    history = History.from_events(events)
    if history.skipped and warn is not None:
        warn(skipped_warning(log.events_path, history.skipped))
    if (damage := log.damage()) is not None and warn is not None:
        warn(damage)
    scored = history.scored()
    extra = {s.code_hash: lineage.to_dict() for s, lineage in scored if s.code_hash}
    doc = ranking_document([s for s, _ in scored], summary, meta, extra)
    # The run's held-out validation and confirmation, when it made them.
    return checks.attach(doc, events), history


_GONE = (
    "its process ended without marking the run (killed, or the machine stopped); "
    "evaluated candidates are kept: --resume the run to continue it"
)


def _as_ended(log: RunLog, meta: dict[str, Any]) -> dict[str, Any]:
    """Returns run.json's content as rankings and reports show it: a run marked "running"
    that no process holds ended without a word (kill -9, a power cut), so it is shown
    interrupted, never as alive."""
    if meta.get("status") == "running" and not log.in_use():
        return {**meta, "status": "interrupted", "message": _GONE}
    return meta


def _runs(runs_dir: Path) -> Iterator[Path]:
    """Yields the folders of `runs_dir` that hold a run, or that a run left: a run.json of
    any kind (a folder, a FIFO: `_usable` says why it is skipped), or none where its run
    recorded nothing. Other folders (a rescore's, a user's) are not runs: passed in silence.
    Raises ConfigError when `runs_dir` is a file: its runs would otherwise be taken for none,
    and a lookup would answer from the cache alone."""
    if os.path.lexists(runs_dir) and not runs_dir.is_dir():
        raise ConfigError(
            f"--runs-dir {runs_dir}: a file, not a folder of runs; give the folder the runs "
            "are in (or --run RUN_DIR)"
        )
    if runs_dir.is_dir():
        for run in sorted(runs_dir.iterdir()):
            if os.path.lexists(run / "run.json") or recorded_nothing(run):
                yield run


def _usable(run: Path) -> RunLog:
    """Returns the log of `run` if it can be ranked: run.json readable, of the right shape
    and with a lab summary, and events.jsonl readable; raises ConfigError otherwise."""
    log = RunLog.open(run)
    _summary(log, log.read_run())
    for _ in log.events():
        break  # readable (a file it cannot read raises ConfigError)
    return log


def _mtime(run: Path) -> float:
    try:
        return (run / "run.json").stat().st_mtime
    except OSError:
        return 0.0  # gone since it was listed: _usable says so


def _skipping(run: Path, e: ConfigError) -> str:
    return f"warning: skipping run {run}: {e}"


def latest_run(runs_dir: Path, warn: Warn = log_warning) -> Path:
    """Returns the latest run under `runs_dir` that evaluated candidates (a run that failed
    before its first proposal has none): the one whose run.json was written last, so a run
    just resumed is the latest, whenever it started; raises ConfigError if none.
    A run that cannot be ranked is skipped, and `warn` told why."""
    runs = list(_runs(runs_dir))
    if not runs:
        raise ConfigError(f"no runs under {runs_dir}; pass --run RUN_DIR or --runs-dir")
    broken = 0
    for run in sorted(runs, key=_mtime, reverse=True):
        try:
            evaluated = History.from_events(_usable(run).events()).evaluated()
        except ConfigError as e:
            warn(_skipping(run, e))
            broken += 1
            continue
        if evaluated:
            return run
    skipped = f" ({broken} could not be read)" if broken else ""
    raise ConfigError(
        f"none of the {len(runs)} runs under {runs_dir} evaluated a candidate{skipped}; "
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
    warn: Warn | None = log_warning,
    where: str = "the runs",
) -> Found:
    """Returns the candidate whose code hash starts with `prefix`; raises UsageError when
    `prefix` is not of a hash prefix's form (`check_prefix`), else ConfigError, also when
    one of `runs` cannot be ranked (`all_runs` leaves such runs out). `where`: what
    `runs` are, as the error for a prefix none holds says."""
    prefix = check_prefix(prefix, runs)
    hits: dict[str, Found] = {}
    for run in runs:
        for h, found in _matches(run, prefix, warn).items():
            hits.setdefault(h, found)  # the first run that holds it
    for h, source in cached_sources:
        if h.startswith(prefix) and h not in hits:
            hits[h] = Found(h, source)
    if not hits:
        raise ConfigError(f"no candidate's hash starts with {prefix!r} (in {where} or the cache)")
    if len(hits) > 1:
        listed = ", ".join(sorted(h[:12] for h in hits)[:10])
        raise ConfigError(
            f"{prefix!r} is ambiguous: {len(hits)} candidates match ({listed}); give more digits"
        )
    return next(iter(hits.values()))


def check_prefix(prefix: str, runs: Iterable[Path] = ()) -> str:
    """Returns `prefix` as the lowercase start of a code hash; raises UsageError (HASH)
    unless it is 4 to 64 hex digits, naming the hashes of the candidates `runs` call
    `prefix` (the names a ranking's table shows). `runs` is read only then."""
    given = prefix.strip()
    prefix = given.lower()
    if MIN_PREFIX <= len(prefix) <= HASH_DIGITS and all(c in "0123456789abcdef" for c in prefix):
        return prefix
    raise UsageError(
        "HASH",
        f"{given!r} is not a hash prefix: give the first {MIN_PREFIX} to {HASH_DIGITS} hex "
        "digits (0-9, a-f) of a candidate's code hash, as a ranking's code column shows them"
        + _named(given, runs),
    )


def _matches(run: Path, prefix: str, warn: Warn | None) -> dict[str, Found]:
    """Returns the candidates of `run` whose code hash starts with `prefix`: from its
    ranking.json while its index says the file is current, else ranked from its log."""
    kept = index.read(run)
    if kept is not None:
        if kept.skipped and warn is not None:  # as ranking its log would say
            warn(skipped_warning(run / "events.jsonl", kept.skipped))
        if not any(h.startswith(prefix) for h, _ in kept.names):
            return {}  # the run holds no match: its ranking is not even read
        rows = index.candidates(run, kept)
        found = _found(run, rows, prefix) if rows is not None else {}
        # Only the rows shown are checked in full: checking thousands costs what replaying does.
        shown = [e for f in found.values() for e in (f.entry, *f.lineage) if e is not None]
        if found and all(index.well_formed(e) for e in shown):
            return found
        warn = None  # said above; the file changed or was edited: the log decides
    return _found(run, run_ranking(run, warn)[0]["candidates"], prefix)


def _found(run: Path, rows: list[RankingEntry], prefix: str) -> dict[str, Found]:
    by_hash = {h: c for c in rows if (h := c["code_hash"])}
    return {
        h: Found(h, entry["source"], entry, run, _lineage(entry, by_hash))
        for h, entry in by_hash.items()
        if h.startswith(prefix)
    }


def _named(name: str, runs: Iterable[Path]) -> str:
    """Returns " (c23 is 5798dd395b in run R)" for the candidates the runs call `name`,
    else "": a ranking's table shows names, and a name is what a user types first."""
    hashes: dict[str, Path] = {}
    for run in runs:
        kept = index.read(run)
        if kept is not None:
            names = kept.names
        else:
            try:
                doc, _ = run_ranking(run, None)
            except ConfigError:  # the lookup fails anyway: an unreadable run adds nothing
                continue
            names = tuple((h, c["name"]) for c in doc["candidates"] if (h := c["code_hash"]))
        for h, called in names:
            if called == name:
                hashes.setdefault(h, run)
    said = [f"{name} is {h[:10]} in run {run}" for h, run in list(hashes.items())[:5]]
    return f" ({'; '.join(said)}{'; ...' if len(hashes) > 5 else ''})" if said else ""


def all_runs(runs_dir: Path, warn: Warn = log_warning) -> list[Path]:
    """Returns the run directories under `runs_dir` that can be ranked; each other one is
    skipped, and `warn` told why in one line."""
    usable: list[Path] = []
    for run in _runs(runs_dir):
        try:
            _usable(run)
        except ConfigError as e:
            warn(_skipping(run, e))
            continue
        usable.append(run)
    return usable
