"""A run's report from its directory: gather the data (`build`), write the files (`write`).

`build` reads run.json and events.jsonl, re-derives the ranking, the lineage of the
best candidates, the fitness over the run and the counters, and gets f and f' of the
best candidates and a few baselines through the evaluator (whose worker runs the
candidate code: never this process) or, without one, from the cache alone. `write`
draws the figures (plots.py, imported only then: matplotlib is slow to import) and
writes ranking.json, report.md with plots/*.svg beside it, and report.html.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minact.candidate import Candidate, Hash, Score
from minact.errors import ConfigError, MinactError
from minact.outcome import History
from minact.ranking import ranking_document
from minact.report import FIGURES, Lineage, ReportData, render_run_html, render_run_markdown
from minact.runlog import RunLog, write_atomic

if TYPE_CHECKING:
    from collections.abc import Iterator

    from minact.evaluate import Curve, Evaluator

__all__ = ["PLOT_BASELINES", "TOP", "EvaluatorFactory", "build", "evaluator_factory", "write"]

TOP = 8  # best new candidates shown with code, lineage and curves
PLOT_BASELINES = ("relu", "gelu", "silu", "gelusine", "gsp")
CURVE_GRID = (-6.0, 6.0, 241)

EvaluatorFactory = Callable[[], AbstractContextManager["Evaluator"]]


def build(
    run_dir: Path,
    evaluator_factory: EvaluatorFactory | None = None,
    *,
    cache_dir: Path | None = None,
    top: int = TOP,
) -> ReportData:
    """Returns what the report of the run in `run_dir` shows.

    Curves come from `evaluator_factory()` (cache first, then its worker); without a
    factory, from the cache at `cache_dir` only; without either, there are none. A
    curve that cannot be had is left out with a warning, never an exception.
    Raises ConfigError when `run_dir` is not a readable run directory.
    """
    log = RunLog.open(run_dir)
    run = log.read_run()
    if not isinstance(run.get("lab_summary"), dict):
        raise ConfigError(f"{log.run_json}: no lab_summary; the run predates reports")
    history = History.from_events(list(log.events()))
    scored = [
        (replace(s, baseline=True), lin) if lin["origin"] == "seed" else (s, lin)
        for s, lin in history.scored()
    ]
    extra = {s.code_hash: lin for s, lin in scored if s.code_hash}
    ranking = ranking_document([s for s, _ in scored], run["lab_summary"], run, extra)
    ok = [c for c in ranking["candidates"] if c["status"] == "ok"]
    best = [c["code_hash"] for c in ok if not c.get("baseline")][:top]
    by_name = {c["name"]: c["code_hash"] for c in ok if c.get("baseline")}
    baselines = [by_name[n] for n in PLOT_BASELINES if n in by_name]
    warnings: list[str] = []
    wanted = [s for s, _ in scored if s.code_hash in {*best, *baselines}]
    curves = _curves(wanted, evaluator_factory, cache_dir, warnings)
    return ReportData(
        ranking=ranking,
        top=best,
        baselines=baselines,
        lineage=_lineage(history),
        progress=_progress(history),
        counters={**_counters(history), **(run.get("counters") or {})},
        reasons=_reasons(history),
        latency=_latency(history),
        curves={h: (list(c.x), list(c.f), list(c.df)) for h, c in curves.items()},
        tasks=_lab_tasks(run),
        warnings=warnings,
    )


def write(run_dir: Path, data: ReportData) -> list[Path]:
    """Writes ranking.json, report.md, plots/*.svg and report.html; returns their paths."""
    figures = _figures(data)
    plots_dir = run_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    files: dict[str, str] = {}
    written: list[Path] = []
    for name in FIGURES:
        path = plots_dir / f"{name}.svg"
        if name in figures:
            write_atomic(path, figures[name])
            files[name] = f"plots/{name}.svg"
            written.append(path)
        else:
            path.unlink(missing_ok=True)  # a figure of an earlier report, now stale
    log = RunLog(run_dir)
    written.append(log.write_text("ranking.json", json.dumps(data.ranking, indent=2) + "\n"))
    written.append(log.write_text("report.md", render_run_markdown(data, files)))
    written.append(log.write_text("report.html", render_run_html(data, figures)))
    return written


def evaluator_factory(run_dir: Path, cache_dir: Path, device: str = "cpu") -> EvaluatorFactory:
    """Returns a factory of evaluators for `build`: the run's lab (or the built-in one when
    its file is gone: curves do not depend on it) and the cache at `cache_dir`."""

    @contextmanager
    def open_evaluator() -> Iterator[Evaluator]:
        from minact.cache import FitnessCache
        from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
        from minact.labfile import default_tasks_path, load_lab

        run = RunLog.open(run_dir).read_run()
        try:
            lab = load_lab(Path(str(run.get("tasks"))))
        except MinactError:
            lab = load_lab(default_tasks_path())
        with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
            with Evaluator(lab, cache, EvaluatorConfig(device=device)) as evaluator:
                yield evaluator

    return open_evaluator


# gathering --------------------------------------------------------------------------


def _curves(
    scores: list[Score],
    factory: EvaluatorFactory | None,
    cache_dir: Path | None,
    warnings: list[str],
) -> dict[Hash, Curve]:
    from minact.evaluate import EVALUATOR_VERSION, cached_curves

    cands = [Candidate(s.source, s.code_hash, s.name) for s in scores if s.code_hash]
    if not cands:
        return {}
    lo, hi, n = CURVE_GRID
    got: dict[Hash, Curve | None] = {}
    try:
        if factory is not None:
            with factory() as evaluator:
                got = dict(evaluator.curves(cands, lo, hi, n))
        elif cache_dir is not None:
            from minact.cache import FitnessCache

            with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
                got = dict(cached_curves(cache, cands, lo, hi, n))
    except MinactError as e:
        warnings.append(f"no activation curves: {e}")
        return {}
    missing = [c.name for c in cands if got.get(c.code_hash) is None]
    if missing and (factory is not None or cache_dir is not None):
        warnings.append(f"no curve for {', '.join(missing)}; they are not plotted")
    return {h: c for h, c in got.items() if c is not None}


def _lineage(history: History) -> dict[str, Lineage]:
    out: dict[str, Lineage] = {}
    for k, e in sorted(history.outcomes.items()):
        score = e.get("score") or {}
        h = score.get("code_hash")
        if e["kind"] != "evaluated" or not h:
            continue
        reply = history.replies.get(k)
        island = e.get("island")
        out[str(h)] = Lineage(
            index=k,
            origin=str(e.get("origin", "")),
            island=int(island) if isinstance(island, int) else None,
            parent=e.get("parent"),
            other=e.get("other"),
            note=str(e.get("note", "")),
            reply=reply.text if reply is not None else "",
        )
    return out


def _evaluated(history: History) -> Iterator[dict[str, Any]]:
    for _, e in sorted(history.outcomes.items()):
        if e["kind"] == "evaluated" and isinstance(e.get("score"), dict):
            yield e["score"]


def _progress(history: History) -> list[tuple[int, float | None]]:
    out: list[tuple[int, float | None]] = []
    for n, s in enumerate(_evaluated(history), 1):
        fitness = s.get("fitness") if s.get("status") == "ok" else None
        out.append((n, float(fitness) if isinstance(fitness, (int, float)) else None))
    return out


def _counters(history: History) -> dict[str, Any]:
    """Returns the counters re-counted from the events (for a run that never finished)."""
    kinds = Counter(str(e["kind"]) for e in history.outcomes.values())
    scores = list(_evaluated(history))
    replies = list(history.replies.values())
    return {
        "proposals": len(history.outcomes),
        "evaluated": kinds["evaluated"],
        "cache_hits": sum(1 for s in scores if s.get("cached")),
        "parse_failures": kinds["parse_failure"],
        "rejected": kinds["rejected"],
        "duplicates": kinds["duplicate"],
        "llm_errors": kinds["llm_error"],
        "calls": len(replies),
        "prompt_tokens": sum(r.prompt_tokens for r in replies),
        "completion_tokens": sum(r.completion_tokens for r in replies),
        "tokens_estimated": any(r.attempts > 0 and not r.usage_reported for r in replies),
        "llm_seconds": sum(r.latency for r in replies),
        "retries": sum(max(0, r.attempts - 1) for r in replies),
        "failures": dict(Counter(str(s["status"]) for s in scores if s.get("status") != "ok")),
    }


def _reasons(history: History) -> list[tuple[str, str, int]]:
    counts: Counter[tuple[str, str]] = Counter()
    for e in history.outcomes.values():
        score = e.get("score")
        if e["kind"] != "evaluated":
            counts[(str(e["kind"]), str(e.get("reason", ""))[:300])] += 1
        elif isinstance(score, dict) and score.get("status") != "ok":
            counts[(f"failed: {score.get('status')}", str(score.get("reason", ""))[:300])] += 1
    return [(k, r, n) for (k, r), n in counts.most_common()]


def _latency(history: History) -> dict[str, float]:
    seconds = [r.latency for r in history.replies.values() if r.attempts > 0]
    if not seconds:
        return {}
    return {
        "mean": statistics.fmean(seconds),
        "median": statistics.median(seconds),
        "max": max(seconds),
    }


def _lab_tasks(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns the run's tasks in full when its lab file still holds the same tasks."""
    from minact.labfile import load_lab

    try:
        lab = load_lab(Path(str(run.get("tasks"))))
    except (MinactError, OSError):
        return []
    if [t.digest() for t in lab.tasks] != run.get("task_digests"):
        return []
    return [t.to_dict() for t in lab.tasks]


# drawing ----------------------------------------------------------------------------


def _figures(data: ReportData) -> dict[str, str]:
    """Returns {figure name: SVG text} for the figures there is data for."""
    from minact import plots

    names = {c["code_hash"]: c["name"] for c in data.ranking["candidates"] if c["code_hash"]}
    out: dict[str, str] = {}
    shown = [h for h in [*data.top, *data.baselines] if h in data.curves]
    if shown:
        labels = {h: _unique(names.get(h, h[:10]), h, names) for h in shown}
        curves = {labels[h]: data.curves[h] for h in shown}
        out["activations"] = plots.activation_svg(
            curves, {labels[h] for h in data.baselines if h in labels}
        )
    rows = [c for h in [*data.top, *data.baselines] if (c := data.candidate(h))]
    if rows:
        tasks = [t["name"] for t in data.ranking["tasks"]]
        values = [[(c["tasks"].get(t) or {}).get("log_ratio") for t in tasks] for c in rows]
        out["tasks"] = plots.heatmap_svg([c["name"] for c in rows], tasks, values)
    if data.progress:
        base = [c["fitness"] for c in data.shown() if c.get("baseline")]
        out["fitness"] = plots.fitness_over_run_svg(data.progress, base[0] if base else None)
    return out


def _unique(name: str, code_hash: str, names: dict[str, str]) -> str:
    clash = sum(1 for v in names.values() if v == name) > 1
    return f"{name} ({code_hash[:6]})" if clash else name
