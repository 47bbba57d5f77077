"""report.html: one self-contained page (inline CSS and SVG, no scripts, nothing fetched).

The page is a Jinja2 template (templates/run.html.j2) rendered with autoescape on, so
every candidate name, source, reason and LLM reply is escaped unless marked otherwise;
only the figures' SVG text is inserted as it is. Every value the template writes, marked
safe or not, first passes `_visible` (the environment's `finalize`): control, bidi and
zero-width characters (an ESC sequence or an RLO in a reply, a run's note or a path) are
shown escaped, as report.md and the terminal show them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from minact.claims import best_claim_sentence, claim_text
from minact.report.agreement import agreement_text
from minact.report.checktable import check_table
from minact.report.data import (
    FIGURES,
    MODEL_HEADER,
    ReportData,
    ancestry,
    capped,
    display_name,
    fmt,
    made_by,
    model_rows,
    partner,
    run_facts,
    uses_llm,
)
from minact.runs.checks import check_text
from minact.runs.ranking import (
    RankingDocument,
    cache_state,
    difference_spec,
    failed,
    fitness_specs,
    fitness_words,
    original_lab_text,
)
from minact.untrusted import printable_text

__all__ = ["render_ranking_html", "render_run_html"]

SECTIONS = (
    ("ranking", "Ranking"),
    ("checks", "Checks"),
    ("curves", "Activations"),
    ("tasks", "Per task"),
    ("progress", "Fitness over the run"),
    ("run", "The run"),
    ("lab", "The lab"),
)


def _visible(value: Any) -> Any:
    """Returns a value the template writes with its unsafe characters escaped (line breaks
    kept). Markup too: a filter such as `join` returns escaped text as Markup, and escaping
    adds only backslashes and hex digits, never markup."""
    if isinstance(value, Markup):
        return Markup(printable_text(str(value)))
    if value is None or isinstance(value, (int, float)):
        return value
    return printable_text(str(value))


@cache
def _environment() -> jinja2.Environment:
    templates = resources.files("minact.report") / "templates"
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (templates / name).read_text("utf-8")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the tests, not the page
        trim_blocks=False,
        keep_trailing_newline=True,
        finalize=_visible,  # once for every {{ value }}, not per field
    )
    env.globals.update(
        fmt=fmt,
        display_name=display_name,
        ancestry=ancestry,
        made_by=made_by,
        partner=partner,
        claim_text=claim_text,
        cache_state=cache_state,
        capped=capped,
        fitness_words=fitness_words,
    )
    return env


def _css() -> str:
    return (resources.files("minact.report") / "templates" / "style.css").read_text("utf-8")


def _lab_rows(data: ReportData) -> list[tuple[str, ...]]:
    """Returns (task, family, target, train, test, net) per task of the lab."""
    rows: list[tuple[str, ...]] = []
    for t in data.tasks or data.ranking["tasks"]:
        s = t.get("settings") or {}
        train = "; ".join(f"{lo:g}…{hi:g}" for lo, hi in t.get("train", []))
        test = "; ".join(f"{lo:g}…{hi:g}" for lo, hi in t.get("test", []))
        net = f"{s['width']}×{s['depth']}, {s['steps']} steps, {s['seeds']} seeds" if s else ""
        rows.append((t["name"], t["family"], t["target"], train, test, net))
    return rows


def _specs(doc: RankingDocument) -> dict[str, str]:
    """Returns the templates' format specs: fitness and family columns (`spec`), their seed
    spread (`spread`), a rescore's "was" column, on the lab the candidates came from, and a
    claim's interval ends (`diff`)."""
    spec, spread = fitness_specs(doc["lab"])
    was_spec, _ = fitness_specs((doc.get("run") or {}).get("from_lab") or doc["lab"])
    return {
        "spec": spec,
        "spread": spread,
        "was_spec": was_spec,
        "diff": difference_spec(doc["lab"]),
    }


def render_run_html(
    data: ReportData, figures: Mapping[str, str], left_out: Collection[str] = ()
) -> str:
    """Returns report.html for a run; `figures` maps FIGURES names to SVG text, and
    `left_out` names those that could not be drawn (data.warnings says why)."""
    run: Mapping[str, Any] = data.ranking["run"] or {}
    best = next((c for h in data.top if (c := data.candidate(h))), None)
    base = next((c for c in data.shown() if c["baseline"]), None)
    families = list(data.ranking["lab"]["families"])
    template = _environment().get_template("run.html.j2")
    return template.render(
        data=data,
        run=run,
        title=f"minact run {run.get('run_id', '')}",
        css=_css(),
        best=best,
        base=base,
        figures=dict(figures),
        left_out=set(left_out),
        captions=FIGURES,
        sections=SECTIONS,
        families=families,
        ranking_header=[
            "#",
            "name",
            "fitness ± seed sd",
            *families,
            "mean OOD MSE",
            "cost",
            "beats best baseline",
            "status",
            "cache",
            "parent",
        ],
        tasks=[t["name"] for t in data.ranking["tasks"]],
        plotted=[c for h in data.baselines if (c := data.candidate(h))],
        facts=run_facts(data),
        model_header=list(MODEL_HEADER),
        models=model_rows(data),
        retries=data.retries if uses_llm(run) else [],
        lab_tasks=_lab_rows(data),
        check_lines=check_text(data.ranking.get("checks") or {}, data.ranking["lab"]),
        verdict=best_claim_sentence(
            data.ranking["candidates"],
            len(data.ranking["tasks"]),
            difference_spec(data.ranking["lab"]),
        ),
        checks=check_table(data.ranking),
        **_specs(data.ranking),
    )


def render_ranking_html(doc: RankingDocument, top: int = 30) -> str:
    """Returns report.html for a ranking without a run (rescore): the agreement with the lab
    the candidates came from, its scatter plot, and the ranking."""
    from minact.report import plots

    run: Mapping[str, Any] = doc["run"] or {}
    shown = [c for c in doc["candidates"] if c["status"] == "ok"][:top]
    shown += [c for c in doc["candidates"] if c["baseline"] and c not in shown]
    points = [
        (c["name"], float(was), float(c["fitness"]), c["baseline"])
        for c in doc["candidates"]
        if (was := c.get("original_fitness")) is not None and c["fitness"] is not None
    ]
    # The reference's point: (0, 0) under the mean log-ratio, its own fitnesses otherwise.
    ref = doc["lab"].get("reference")
    mark = next(((x, y) for name, x, y, base in points if base and name == ref), None)
    scatter = (
        plots.agreement_svg(points, "fitness on the original lab", "fitness here", mark)
        if points
        else ""
    )
    families = list(doc["lab"]["families"])
    header = ["#", "name", "fitness ± seed sd", "was", "beats best baseline", *families]
    return (
        _environment()
        .get_template("ranking.html.j2")
        .render(
            doc=doc,
            run=run,
            title=f"minact {run.get('command', 'ranking')}: {doc['lab']['path']}",
            css=_css(),
            agreement=agreement_text(doc.get("agreement")),
            scatter=scatter,
            header=[*header, "mean OOD MSE", "status"],
            families=families,
            rows=shown,
            # A failed new candidate had no row, and a failed baseline no reason.
            failed=failed(doc["candidates"]),
            verdict=best_claim_sentence(
                doc["candidates"], len(doc["tasks"]), difference_spec(doc["lab"])
            ),
            was=original_lab_text(doc),
            **_specs(doc),
        )
    )
