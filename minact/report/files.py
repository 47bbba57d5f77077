"""Writing a run's report files: ranking.json, report.md with plots/*.svg, report.html."""

from __future__ import annotations

import json
from pathlib import Path

from minact.report.data import FIGURES, ReportData
from minact.report.html import render_run_html
from minact.report.markdown import render_run_markdown
from minact.runs.ranking import task_value
from minact.runs.rundir import RunLog, write_atomic

__all__ = ["write"]


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


def _figures(data: ReportData) -> dict[str, str]:
    """Returns {figure name: SVG text} for the figures there is data for."""
    from minact.report import plots

    names = {h: c["name"] for c in data.ranking["candidates"] if (h := c["code_hash"])}
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
        values = [[task_value(c, t, "log_ratio") for t in tasks] for c in rows]
        out["tasks"] = plots.heatmap_svg([c["name"] for c in rows], tasks, values)
    if data.progress:
        base = [c["fitness"] for c in data.shown() if c.get("baseline")]
        out["fitness"] = plots.fitness_over_run_svg(data.progress, base[0] if base else None)
    return out


def _unique(name: str, code_hash: str, names: dict[str, str]) -> str:
    clash = sum(1 for v in names.values() if v == name) > 1
    return f"{name} ({code_hash[:6]})" if clash else name
