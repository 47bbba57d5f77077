"""What report tables show, from ranking documents built in-process (no training)."""

from __future__ import annotations

from dataclasses import replace

from minact.candidate import Hash
from minact.report.data import ReportData
from minact.report.html import render_run_html
from minact.report.markdown import render_markdown, render_run_markdown
from minact.runs.ranking import RankingDocument, ranking_document
from minact.score import Score, TaskScore

NAMES = ("sine", "cube")
LAB = {
    "lab": {"path": "lab.toml", "digest": "d", "reference": "relu", "fitness": "mean_log_ratio",
            "families": ["waves", "powers"]},
    "tasks": [{"name": "sine", "family": "waves", "target": "sin(x)"},
              {"name": "cube", "family": "powers", "target": "x**3"}],
}  # fmt: skip


def _ok(name: str, fitness: float, mse: float, *, baseline: bool = False) -> Score:
    tasks = {t: TaskScore(mse, 0.1, 0.0, fitness) for t in NAMES}
    return Score(name, Hash(f"h-{name}"), f"src {name}", "ok", "", Hash(f"b-{name}"), fitness,
                 0.1, mse, tasks, cost=2.0, baseline=baseline)  # fmt: skip


def _data(doc: RankingDocument, top: list[str], baselines: list[str]) -> ReportData:
    return ReportData(doc, top, baselines, {}, {}, [], {})


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_the_per_task_tables_hold_the_best_baseline_and_the_reference() -> None:
    # The per-task tables listed a fixed set of plotted baselines: sigmoid, the best
    # baseline every claim compares against, and the reference were missing.
    scores = [
        _ok("new", -0.5, 0.25),
        _ok("sigmoid", -0.3, 0.375, baseline=True),
        _ok("relu", 0.0, 0.5, baseline=True),
        _ok("gelu", 0.1, 0.625, baseline=True),
    ]
    doc = ranking_document(scores, LAB, {"run_id": "r"})
    data = _data(doc, ["h-new"], ["h-gelu"])
    md = render_run_markdown(data, {})
    for heading in ("## OOD MSE per task", "## ID MSE per task"):
        table = _section(md, heading)
        assert all(f"\n| {n} | " in table for n in ("new", "gelu", "sigmoid", "relu"))
    html = render_run_html(data, {}).split('id="tasks"', 1)[1]
    assert all(f"<td>{n}</td>" in html for n in ("sigmoid", "relu"))
    assert [c["name"] for c in data.per_task()] == ["new", "gelu", "sigmoid", "relu"]
    # No row twice when the best baseline is the reference, or is plotted anyway.
    again = _data(doc, ["h-new"], ["h-relu", "h-sigmoid"])
    assert [c["name"] for c in again.per_task()] == ["new", "relu", "sigmoid"]
    assert _section(render_run_markdown(again, {}), "## OOD MSE per task").count("| sigmoid |") == 1
    assert replace(data, top=[]).per_task()[0]["name"] == "gelu"


def test_a_score_report_lists_its_failed_candidates_with_their_reasons() -> None:
    # `score` and `rescore` wrote no line for a failed new candidate (the terminal showed
    # it), and a failed baseline's row gave its status without the reason.
    failed = Score("broken", Hash("h-broken"), "src", "nonfinite", "f(x) is nan at x=3")
    base = replace(failed, name="softsign", code_hash=Hash("h-softsign"), baseline=True)
    base = replace(base, status="too_costly", reason="cost 40x GELU over budget")
    scores = [_ok("new", -0.5, 0.25), _ok("relu", 0.0, 0.5, baseline=True), failed, base]
    for command in ("score", "rescore"):
        md = render_markdown(ranking_document(scores, LAB, {"command": command}))
        section = _section(md, "## Failed candidates")
        assert "- broken: nonfinite — f(x) is nan at x=3" in section
        assert "- softsign: too_costly — cost 40x GELU over budget" in section
        assert "new" not in section and "relu" not in section
    assert "## Failed candidates" not in render_markdown(ranking_document(scores[:2], LAB, {}))


def test_under_mean_ood_mse_a_screened_candidates_stage_1_fitness_is_an_mse() -> None:
    # Its stage-1 fitness printed with a log-ratio's "+.3f": "+28.384" beside 28.38 elsewhere.
    mse = {**LAB, "lab": {**LAB["lab"], "fitness": "mean_ood_mse"}}
    cut = Score("cut", Hash("h-cut"), "src", "screened", "screened after stage 1")
    cut = replace(cut, partial_fitness=28.384)
    doc = ranking_document([_ok("relu", 0.5, 0.5, baseline=True), cut], mse, {"run_id": "r"})
    data = _data(doc, [], ["h-relu"])
    assert "| cut | 28.38 | screened after stage 1 |" in render_run_markdown(data, {})
    page = render_run_html(data, {})
    assert '<td class="n">28.38</td>' in page and "+28.384" not in page


def test_a_score_page_lists_its_failed_candidates_with_their_reasons() -> None:
    # report.html of `score` and `rescore` had no row for a failed new candidate, and a
    # failed baseline's row gave its status without the reason.
    from minact.report.html import render_ranking_html

    failed = Score("broken", Hash("h-broken"), "src", "nonfinite", "f(x) is nan at x=3")
    base = Score("softsign", Hash("h-softsign"), "src", "too_costly", "over budget")
    base = replace(base, baseline=True)
    doc = ranking_document([_ok("relu", 0.0, 0.5, baseline=True), failed, base], LAB, {})
    page = render_ranking_html(doc).split("<h3>Failed candidates (2)</h3>", 1)[1]
    assert '<td>broken</td><td class="bad">nonfinite</td><td>f(x) is nan at x=3</td>' in page
    assert '<td>softsign</td><td class="bad">too_costly</td><td>over budget</td>' in page
    none = ranking_document([_ok("a", 0.1, 0.5)], LAB, {})
    assert "Failed candidates" not in render_ranking_html(none)
