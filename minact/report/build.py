"""A run's report data from its directory (`build`); files.py writes the files.

`build` reads run.json and events.jsonl, ranks the run as every command does
(minact.runs.catalog.run_ranking), and gathers the lineage of the best candidates, the
fitness over the run, the counters, and f and f' of the best candidates and a few
baselines. Curves come from a `CurveSource` the caller passes in (the evaluator, whose
worker runs the candidate code, or the cache alone): this package never runs candidate
code and never imports the evaluator.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from minact.candidate import Candidate, Hash
from minact.curves import Curve
from minact.errors import MinactError
from minact.report.data import ReportData
from minact.runs import index
from minact.runs.catalog import Warn, log_warning, run_ranking
from minact.runs.history import History
from minact.runs.rundir import RunLog

__all__ = ["PLOT_BASELINES", "TOP", "CurveSource", "build"]

TOP = 8  # best new candidates shown with code, lineage and curves
PLOT_BASELINES = ("relu", "gelu", "silu", "gelusine", "gsp")

# Returns f and f' on curves.GRID for each candidate it can (None or absent: no curve).
CurveSource = Callable[[Sequence[Candidate]], Mapping[Hash, Curve | None]]


def build(
    run_dir: Path,
    curves: CurveSource | None = None,
    *,
    top: int = TOP,
    warn: Warn | None = log_warning,
    meta: Mapping[str, Any] | None = None,
) -> ReportData:
    """Returns what the report of the run in `run_dir` shows.

    Curves come from `curves` (without it there are none). A curve that cannot be had is
    left out with a warning, never an exception. Events of the wrong shape are skipped,
    and `warn` (None: silence) told how many. `meta`: run.json's content as the caller is
    about to write it (None: as it is). Raises ConfigError when `run_dir` is not a
    readable run directory.
    """
    taken = index.stamp(run_dir)  # before the log is read: see minact.runs.index
    ranking, history = run_ranking(run_dir, warn, meta=meta)
    run = dict(meta) if meta is not None else RunLog.open(run_dir).read_run()
    ok = [c for c in ranking["candidates"] if c["status"] == "ok"]
    best = [h for c in ok if not c["baseline"] and (h := c["code_hash"])][:top]
    by_name = {c["name"]: h for c in ok if c["baseline"] and (h := c["code_hash"])}
    baselines = [by_name[n] for n in PLOT_BASELINES if n in by_name]
    warnings: list[str] = []
    wanted = [
        Candidate(s.source, s.code_hash, s.name)
        for s, _ in history.scored()
        if s.code_hash in {*best, *baselines}
    ]
    got = _curves(wanted, curves, warnings)
    # The counters run.json holds are the loop's own; a run that never finished has none, and
    # the log is recounted the way the loop counts (Counters.add_outcome).
    counters = {**history.counters().to_dict(), **(run.get("counters") or {})}
    return ReportData(
        ranking=ranking,
        top=best,
        baselines=baselines,
        lineage={s.code_hash: lin for s, lin in history.scored() if s.code_hash},
        replies=_replies(history),
        progress=_progress(history),
        counters=counters,
        reasons=_reasons(history),
        latency=_latency(history),
        retries=_retries(history),
        curves={h: (list(c.x), list(c.f), list(c.df)) for h, c in got.items()},
        tasks=_lab_tasks(run),
        warnings=warnings,
        stamp=taken,
        skipped=history.skipped,
    )


def _curves(
    cands: list[Candidate], source: CurveSource | None, warnings: list[str]
) -> dict[Hash, Curve]:
    if not cands or source is None:
        return {}
    try:
        got = dict(source(cands))
    except MinactError as e:
        warnings.append(f"no activation curves: {e}")
        return {}
    missing = [c.name for c in cands if got.get(c.code_hash) is None]
    if missing:
        warnings.append(f"no curve for {', '.join(missing)}; they are not plotted")
    return {h: c for h, c in got.items() if c is not None}


def _replies(history: History) -> dict[str, str]:
    """Returns {code hash: the reply or mutation text that made it} for evaluated candidates."""
    out: dict[str, str] = {}
    for o in history.evaluated():
        reply = history.replies.get(o.index)
        if o.score is not None and o.score.code_hash and reply is not None:
            out[o.score.code_hash] = reply.text
    return out


def _progress(history: History) -> list[tuple[int, float | None]]:
    out: list[tuple[int, float | None]] = []
    for n, o in enumerate(history.evaluated(), 1):
        assert o.score is not None
        out.append((n, o.score.fitness if o.score.ok else None))
    return out


def _reasons(history: History) -> list[tuple[str, str, int]]:
    counts: Counter[tuple[str, str]] = Counter()
    for o in history.outcomes.values():
        if o.kind != "evaluated":
            counts[(o.kind, o.reason[:300])] += 1
        # A screened candidate did not fail: the report lists it apart.
        elif o.score is not None and not o.score.ok and o.score.status != "screened":
            counts[(f"failed: {o.score.status}", o.score.reason[:300])] += 1
    return [(k, r, n) for (k, r), n in counts.most_common()]


def _latency(history: History) -> dict[str, float]:
    """Returns seconds per LLM reply and to its first token (mean, median, max)."""
    replies = [r for r in history.turns.values() if r.attempts > 0]  # follow-ups included
    if not replies:
        return {}
    seconds = [r.latency for r in replies]
    out = {
        "mean": statistics.fmean(seconds),
        "median": statistics.median(seconds),
        "max": max(seconds),
    }
    first = [r.first_token for r in replies if r.first_token is not None]
    if first:
        out["first_token_median"] = statistics.median(first)
    return out


def _retries(history: History) -> list[tuple[str, int]]:
    """Returns (reason, count) of the failed attempts that LLM calls retried."""
    counts = Counter(r[:300] for reply in history.replies.values() for r in reply.retry_reasons)
    return counts.most_common()


def _lab_tasks(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns the run's tasks in full when its lab file still holds the same tasks."""
    from minact.lab.loader import load_lab

    try:
        lab = load_lab(Path(str(run.get("tasks"))))
    except (MinactError, OSError):
        return []
    if [t.digest() for t in lab.tasks] != run.get("task_digests"):
        return []
    return [t.to_dict() for t in lab.tasks]
