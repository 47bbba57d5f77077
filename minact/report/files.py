"""Writing a run's report files: ranking.json, report.md with plots/*.svg, report.html."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from minact.errors import ConfigError
from minact.report.data import FIGURES, ReportData
from minact.report.html import render_run_html
from minact.report.markdown import render_run_markdown
from minact.runs import index
from minact.runs.ranking import reference_fitness, task_value
from minact.runs.rundir import RunLog, write_atomic
from minact.runs.writes import cannot

__all__ = ["write"]


def write(run_dir: Path, data: ReportData) -> list[Path]:
    """Writes ranking.json, report.md, plots/*.svg and report.html; returns their paths.

    A figure that cannot be drawn is left out, and why is added to `data.warnings` (which
    both reports show, and the caller may print): the ranking is written regardless.
    """
    figures, left_out = _figures(data)
    plots_dir = _plots_dir(run_dir)
    files: dict[str, str] = {}
    written: list[Path] = []
    for name in FIGURES:
        path = plots_dir / f"{name}.svg"
        if name in figures:
            write_atomic(path, figures[name])
            files[name] = f"plots/{name}.svg"
            written.append(path)
        else:
            try:
                path.unlink(missing_ok=True)  # a figure of an earlier report, now stale
            except OSError as e:
                raise cannot("remove", path, e) from None
    log = RunLog(run_dir)
    written.append(log.write_text("ranking.json", json.dumps(data.ranking, indent=2) + "\n"))
    if data.stamp is not None:  # lookups then read ranking.json instead of the log
        index.write(run_dir, data.ranking, data.stamp, data.skipped)
    written.append(log.write_text("report.md", render_run_markdown(data, files)))
    written.append(log.write_text("report.html", render_run_html(data, figures, left_out)))
    return written


def _plots_dir(run_dir: Path) -> Path:
    """Returns the run's plots folder, made if missing; raises ConfigError (one line that
    names it) when it cannot be, a file in its place included."""
    path = run_dir / "plots"
    try:
        path.mkdir(exist_ok=True)
    except FileExistsError:
        raise ConfigError(
            f"{path} is a file, not a folder; the report puts its figures there: move the "
            "file away and write the report again"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot create {path}: {e.strerror or e}") from None
    return path


def _figures(data: ReportData) -> tuple[dict[str, str], list[str]]:
    """Returns {figure name: SVG text} for the figures there is data for and that could be
    drawn, and the names of those that could not (each explained in `data.warnings`)."""
    from minact.report import plots

    names = {h: c["name"] for c in data.ranking["candidates"] if (h := c["code_hash"])}
    draw: dict[str, Callable[[], str]] = {}
    shown = [h for h in [*data.top, *data.baselines] if h in data.curves]
    if shown:
        labels = {h: _unique(names.get(h, h[:10]), h, names) for h in shown}
        curves = {labels[h]: data.curves[h] for h in shown}
        plotted = {labels[h] for h in data.baselines if h in labels}
        draw["activations"] = lambda: plots.activation_svg(curves, plotted)
    rows = [c for h in [*data.top, *data.baselines] if (c := data.candidate(h))]
    if rows:
        tasks = [t["name"] for t in data.ranking["tasks"]]
        values = [[task_value(c, t, "log_ratio") for t in tasks] for c in rows]
        draw["tasks"] = lambda: plots.heatmap_svg([c["name"] for c in rows], tasks, values)
    if data.progress:
        base = [c["fitness"] for c in data.shown() if c.get("baseline")]
        best = base[0] if base else None
        ref = reference_fitness(data.ranking)
        draw["fitness"] = lambda: plots.fitness_over_run_svg(data.progress, best, ref)
    out: dict[str, str] = {}
    left_out: list[str] = []
    for name, svg in draw.items():
        try:
            out[name] = svg()
        # Broad on purpose: matplotlib raises many unrelated types from deep inside
        # (LinAlgError, OverflowError, ValueError, RuntimeError, ...) on values that come
        # from candidate code. A figure is decoration; the ranking is the product, and
        # must not be lost with it.
        except Exception as e:
            left_out.append(name)
            note = f"the {name} figure is left out: it could not be drawn ({_short(e)})"
            if note not in data.warnings:  # the same data written twice says it once
                data.warnings.append(note)
    return out, left_out


def _short(e: Exception) -> str:
    """Returns an exception as "Type: message" on one line of at most 160 characters."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= 160 else text[:159] + "…"


def _unique(name: str, code_hash: str, names: dict[str, str]) -> str:
    clash = sum(1 for v in names.values() if v == name) > 1
    return f"{name} ({code_hash[:6]})" if clash else name
