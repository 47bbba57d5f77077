"""Tests for run reports: curves from the worker, build and files.write, report.md and .html."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from minact import seeds
from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash
from minact.curves import GRID, Curve, cached_curves
from minact.errors import ConfigError
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import load_lab
from minact.lab.task import Lab
from minact.report import files
from minact.report.build import CurveSource, build
from minact.runs.ranking import lab_summary
from minact.score import Score, TaskScore
from tests.browser import needs_chromium, screenshot
from tests.conftest import TINY_TASKS, candidate

HOSTILE = "<script>alert(1)</script>"
TERMINAL = "\x1b]0;retitled\x07\x1b[2J"  # retitles the window, clears the screen


def _from_cache(directory: Path) -> CurveSource:
    """Returns a curve source that reads the cache in `directory` and runs nothing."""

    def curves(cands: Sequence[Candidate]) -> dict[Hash, Curve]:
        with FitnessCache(directory, EVALUATOR_VERSION) as cache:
            return cached_curves(cache, cands)

    return curves


BAD_REASON = "f(x) is not finite at x = 3 <img src=x onerror=alert(1)>"


# a run directory written event by event ----------------------------------------------


def _score(c: Candidate, fitness: float | None, status: str = "ok", **kw: Any) -> Score:
    tasks = {}
    if fitness is not None:
        tasks = {
            "sine": TaskScore(1.0 + fitness, 0.1, 0.05, 2 * fitness),
            "product": TaskScore(2.0, 0.2, 0.1, 0.0),
        }
    return Score(
        name=c.name,
        code_hash=c.code_hash,
        source=c.source,
        status=status,
        behaviour_hash=Hash("b" + c.code_hash[1:]),
        fitness=fitness,
        fitness_spread=0.05 if fitness is not None else None,
        mean_ood_mse=1.5 + (fitness or 0.0) if fitness is not None else None,
        tasks=tasks,
        cost=2.0,
        **kw,
    )


SEED_FITNESS = {"relu": 0.0, "gelu": -0.1, "silu": 0.05, "gelusine": -0.2, "gsp": -0.15}
C0 = candidate("F.gelu(x) + 0.2 * torch.sin(x)", "c0")
C1 = candidate("torch.exp(x) ** 3", "c1")
C4 = candidate("F.gelu(x) + 0.3 * torch.sin(x)", "c4")


def _reply(text: str, note: str = "stop", latency: float = 1.0) -> dict[str, Any]:
    return {
        "text": text,
        "note": note,
        "error": None,
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "usage_reported": True,
        "latency": latency,
        "attempts": 1,
    }


def _outcome(
    k: int, kind: str, parent: Candidate, score: Score | None = None, reason: str = ""
) -> dict[str, Any]:
    return {
        "event": "outcome",
        "index": k,
        "kind": kind,
        "reason": reason,
        "island": k % 2,
        "parent": parent.code_hash,
        "other": None,
        "origin": "llm",
        "note": "stop",
        "source": "",
        "score": score.to_dict() if score else None,
    }


def write_run(run_dir: Path, lab: Lab, counters: dict[str, Any] | None = None) -> None:
    """Writes a finished LLM run: five seeds, two good candidates, one failure, two rejects."""
    run_dir.mkdir(parents=True)
    run: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": "finished",
        "message": "evaluated 3 candidates",
        "budget": 3,
        "seed": 7,
        "concurrency": 2,
        "islands": 2,
        "max_calls": 12,
        "tasks": str(lab.path),
        "lab_digest": lab.digest(),
        "task_digests": [t.digest() for t in lab.tasks],
        "lab_summary": lab_summary(lab),
        "proposer": "llm",
        "llm": {"url": "http://127.0.0.1:9/v1", "model": "tiny-model"},
        "seconds": 12.5,
        "device": "cpu",
        "minact": "0.1.0",
        "created": 1.8e9,
        "worker": {"device": "cpu", "device_name": "cpu", "torch": "2.x"},
    }
    if counters is not None:
        run["counters"] = counters
    (run_dir / "run.json").write_text(json.dumps(run))
    gelu = seeds.seed_candidate("gelu")
    events: list[dict[str, Any]] = [{"event": "start", "proposer": "llm", "time": 1.8e9}]
    for name, fitness in SEED_FITNESS.items():
        events.append(
            {
                "event": "seed",
                "score": _score(seeds.seed_candidate(name), fitness, baseline=True).to_dict(),
            }
        )
    hostile = f"Here you go {HOSTILE}{TERMINAL}\n```python\n{C0.source}\n```"
    events += [
        {"event": "reply", "index": 0, "reply": _reply(hostile, latency=2.0)},
        {"event": "reply", "index": 1, "reply": _reply(f"```python\n{C1.source}\n```")},
        {"event": "reply", "index": 2, "reply": _reply("no code, sorry")},
        {"event": "reply", "index": 3, "reply": _reply("```python\nopen('x')\n```")},
        {
            "event": "reply",
            "index": 4,
            "reply": _reply(f"```python\n{C4.source}\n```", latency=6.0),
        },
        _outcome(0, "evaluated", gelu, _score(C0, -0.3, parent=gelu.code_hash)),
        _outcome(1, "evaluated", gelu, _score(C1, None, "nonfinite", reason=BAD_REASON)),
        _outcome(2, "parse_failure", gelu, reason="the reply holds no ```python block"),
        _outcome(3, "rejected", gelu, reason="calls open, which is not allowed"),
        _outcome(4, "evaluated", C0, _score(C4, -0.4, parent=C0.code_hash)),
        {"event": "end", "status": "finished", "time": 1.8e9 + 12.5},
    ]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def put_curves(cache_dir: Path, cands: list[Candidate]) -> None:
    """Stores made-up curves for `cands`, as the worker would have."""
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        for i, c in enumerate(cands):
            lo, hi, n = GRID
            x = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
            f = [math.tanh((i + 1) * v) for v in x]
            df = [(i + 1) / math.cosh((i + 1) * v) ** 2 for v in x]
            cache.put_curve(c.code_hash, GRID, {"x": x, "f": f, "df": df})


@pytest.fixture
def run_dir(tmp_path: Path, tiny_lab: Lab) -> Path:
    d = tmp_path / "runs" / "r1"
    write_run(d, tiny_lab)
    put_curves(tmp_path / "cache", [C0, C4, *(seeds.seed_candidate(n) for n in SEED_FITNESS)])
    return d


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.cells: list[str] = []
        self._in_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "td":
            self._in_td = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_td = self._in_td and tag != "td"

    def handle_data(self, data: str) -> None:
        if self._in_td:
            self.cells[-1] += data


def _page(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    p.close()
    return p


# the report ---------------------------------------------------------------------------


def test_html_report_is_self_contained_and_escapes_what_candidates_and_llms_wrote(
    run_dir: Path, tmp_path: Path
) -> None:
    data = build(run_dir, _from_cache(tmp_path / "cache"))
    assert data.warnings == []
    files.write(run_dir, data)
    text = (run_dir / "report.html").read_text()
    page = _page(text)
    tags = [t for t, _ in page.tags]
    assert tags.count("svg") >= 3
    assert "script" not in tags and "img" not in tags and "link" not in tags
    for tag, attrs in page.tags:
        assert "src" not in attrs, tag
        for key, value in attrs.items():
            if key.endswith("href"):
                assert value is not None and value.startswith("#"), (tag, key, value)
    assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    # The ranking shows every baseline, the candidates, and the failure with its reason.
    cells = page.cells
    for name in SEED_FITNESS:
        assert f"{name} (baseline)" in cells
    assert "c4" in cells and "c0" in cells and "nonfinite" in cells and BAD_REASON in cells
    assert "-0.400 ± 0.050" in cells
    # Each top candidate's code, lineage and the reply that made it.
    assert "return F.gelu(x) + 0.3 * torch.sin(x)" in text
    assert "gelu → c0 → c4" in text.replace("&gt;", ">")
    assert "<details><summary>the reply that made it</summary>" in text
    # The run's counters, re-counted from the events (run.json has none here).
    for key, value in [
        ("proposals", 5),
        ("evaluated", 3),
        ("unparsable replies", 1),
        ("rejected by validation", 1),
        ("evaluated but failed", 1),
    ]:
        assert f"<tr><th>{key}</th><td>{value}</td></tr>" in text
    assert "tiny-model" in text and "500 prompt + 200 completion" in text
    assert "mean 2.20 s, median 1.00 s, max 6.00 s" in text


def test_markdown_reads_as_text_and_links_plot_files_that_exist(
    run_dir: Path, tmp_path: Path
) -> None:
    files.write(run_dir, build(run_dir, _from_cache(tmp_path / "cache")))
    md = (run_dir / "report.md").read_text()
    for name in ("activations", "tasks", "fitness"):
        assert f"(plots/{name}.svg)" in md
        svg = (run_dir / "plots" / f"{name}.svg").read_text()
        assert svg.startswith("<svg")
    assert "| 1 | c4 | -0.400 | 0.050 |" in md
    assert "- ancestry: gelu → c0 → c4" in md
    # Raw HTML in a name or reason would be rendered by a Markdown viewer: it reads as text.
    assert "- c1: nonfinite — f(x) is not finite at x = 3 &lt;img src=x onerror=alert(1)&gt;" in md
    assert "| parse_failure | 1 | the reply holds no ```python block |" in md
    assert "- LLM latency per reply: mean 2.20 s, median 1.00 s, max 6.00 s" in md
    # The hostile reply is quoted inside a fence that its own backticks cannot close.
    block = md[md.index("The reply that made it:") :]
    assert block.split("\n")[2] == "````text" and HOSTILE in block
    # `cat report.md` shows a model's ESC sequences; it does not run them.
    assert "\x1b" not in md and "\x07" not in md and "\\x1b]0;retitled\\x07\\x1b[2J" in md
    assert "<" not in md.replace(HOSTILE, "")  # only inside the reply's fence


def test_reports_say_the_best_is_not_judged_against_the_baselines_over_two_tasks(
    run_dir: Path, tmp_path: Path
) -> None:
    # A ranking table alone reads as if its first row had won: the reports say whether it
    # beat the best baseline beyond noise, and here that 2 tasks are too few to tell.
    files.write(run_dir, build(run_dir, _from_cache(tmp_path / "cache")))
    said = (
        "whether c4, the best new candidate, beats the best baseline beyond noise is not "
        "judged: a claim needs at least 6 tasks, this ranking has 2"
    )
    for report in ("report.md", "report.html"):
        assert said in " ".join((run_dir / report).read_text().split()), report


def test_ranking_is_rederived_with_lineage_fields(run_dir: Path) -> None:
    data = build(run_dir)
    files.write(run_dir, data)
    doc = json.loads((run_dir / "ranking.json").read_text())
    by_name = {c["name"]: c for c in doc["candidates"]}
    assert [c["name"] for c in doc["candidates"]][:3] == ["c4", "c0", "gelusine"]
    assert by_name["c4"]["rank"] == 1 and by_name["c4"]["parent"] == C0.code_hash
    assert by_name["c4"]["index"] == 4 and by_name["c4"]["origin"] == "llm"
    assert by_name["gelu"]["baseline"] and by_name["gelu"]["origin"] == "seed"
    assert by_name["c1"]["rank"] is None and by_name["c1"]["status"] == "nonfinite"
    assert doc["run"]["run_id"] == "r1" and doc["tasks"][0]["name"] == "sine"
    assert data.top == [C4.code_hash, C0.code_hash]
    names = [by_name_hash["name"] for h in data.baselines if (by_name_hash := data.candidate(h))]
    assert names == ["relu", "gelu", "silu", "gelusine", "gsp"]


def test_counters_progress_and_reasons_come_from_the_events(run_dir: Path) -> None:
    data = build(run_dir)
    c = data.counters
    assert (c["proposals"], c["evaluated"], c["parse_failures"], c["rejected"]) == (5, 3, 1, 1)
    assert c["failures"] == {"nonfinite": 1} and c["calls"] == 5
    assert (c["prompt_tokens"], c["completion_tokens"]) == (500, 200)
    assert data.progress == [(1, -0.3), (2, None), (3, -0.4)]
    kinds = {k for k, _, _ in data.reasons}
    assert kinds == {"parse_failure", "rejected", "failed: nonfinite"}
    assert data.lineage[C4.code_hash].parent == C0.code_hash
    assert HOSTILE in data.replies[C0.code_hash]
    assert data.curves == {}  # no evaluator and no cache: nothing to plot


def test_run_json_counters_win_over_recounted_ones(tmp_path: Path, tiny_lab: Lab) -> None:
    write_run(tmp_path / "r", tiny_lab, counters={"proposals": 9, "cache_hits": 4})
    c = build(tmp_path / "r").counters
    assert c["proposals"] == 9 and c["cache_hits"] == 4 and c["evaluated"] == 3


def test_missing_curves_are_left_out_and_stale_figures_removed(run_dir: Path) -> None:
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "activations.svg").write_text("<svg>old</svg>")
    files.write(run_dir, build(run_dir))
    assert not (run_dir / "plots" / "activations.svg").exists()
    text = (run_dir / "report.html").read_text()
    assert [t for t, _ in _page(text).tags].count("svg") == 2
    assert "plots/activations.svg" not in (run_dir / "report.md").read_text()


def test_a_stale_figure_that_cannot_be_removed_is_one_error_naming_it(run_dir: Path) -> None:
    # A folder where the stale figure was: the removal fails as it would on a read-only disk.
    (run_dir / "plots" / "activations.svg").mkdir(parents=True)
    (run_dir / "plots" / "activations.svg" / "keep").write_text("")
    with pytest.raises(ConfigError, match=r"cannot remove .*activations\.svg"):
        files.write(run_dir, build(run_dir))


def _put_curve(cache_dir: Path, c: Candidate, f: list[float], df: list[float]) -> None:
    """Stores the curve `c` would have had from the worker: f and f' on the grid."""
    lo, hi, n = GRID
    x = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        cache.put_curve(c.code_hash, GRID, {"x": x, "f": f, "df": df})


def test_curves_at_1e308_and_constant_ones_are_plotted_on_the_baselines_scale(
    run_dir: Path, tmp_path: Path
) -> None:
    # c0 is torch.where(flag > 0.5, torch.sign(x) * 1e308, F.gelu(x)), flag 1 in float64:
    # f is ±1e308 and f' is 0 everywhere. c4 is the constant 1e300.
    lo, hi, n = GRID
    x = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
    _put_curve(
        tmp_path / "cache", C0, [math.copysign(1e308, v) if v else 0.0 for v in x], [0.0] * n
    )
    _put_curve(tmp_path / "cache", C4, [1e300] * n, [0.0] * n)
    data = build(run_dir, _from_cache(tmp_path / "cache"))
    assert max(data.curves[C0.code_hash][1]) == 1e308
    written = files.write(run_dir, data)
    assert data.warnings == []
    for name in ("ranking.json", "report.md", "report.html"):
        assert run_dir / name in written
    svg = (run_dir / "plots" / "activations.svg").read_text()
    assert svg.startswith("<svg") and "c0" in svg and "gelu (baseline)" in svg
    labels = re.findall(r"<text\b[^>]*>([^<]*)", svg)
    assert "c4" in labels and not [t for t in labels if "e30" in t]  # the baselines' scale
    assert "(plots/activations.svg)" in (run_dir / "report.md").read_text()
    assert [t for t, _ in _page((run_dir / "report.html").read_text()).tags].count("svg") == 3
    assert json.loads((run_dir / "ranking.json").read_text())["candidates"][0]["name"] == "c4"


def test_a_figure_that_cannot_be_drawn_is_left_out_and_the_report_says_why(
    run_dir: Path, tmp_path: Path
) -> None:
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "activations.svg").write_text("<svg>old</svg>")
    data = build(run_dir, _from_cache(tmp_path / "cache"))
    x, f, df = data.curves[C0.code_hash]
    data.curves[C0.code_hash] = (x, f[:10], df)  # matplotlib cannot plot 241 x against 10 y
    files.write(run_dir, data)
    files.write(run_dir, data)  # written again, it says so once
    note = "the activations figure is left out: it could not be drawn (ValueError: x and y"
    assert len(data.warnings) == 1 and data.warnings[0].startswith(note)
    assert not (run_dir / "plots" / "activations.svg").exists()
    md = (run_dir / "report.md").read_text()
    assert f"- warning: {note}" in md and "plots/activations.svg" not in md
    assert "(plots/tasks.svg)" in md and "(plots/fitness.svg)" in md
    html = (run_dir / "report.html").read_text()
    assert f'<p class="warn">warning: {note}' in html
    assert "(no figure: it could not be drawn; the warning above says why)" in html
    assert [t for t, _ in _page(html).tags].count("svg") == 2
    doc = json.loads((run_dir / "ranking.json").read_text())
    assert [c["name"] for c in doc["candidates"]][:2] == ["c4", "c0"]


def test_a_folder_that_is_not_a_run_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run directory"):
        build(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(ConfigError, match="no lab summary"):
        build(tmp_path)


@needs_chromium
def test_report_renders_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    files.write(run_dir, build(run_dir, _from_cache(tmp_path / "cache")))
    png = tmp_path / "report.png"
    screenshot(run_dir / "report.html", png, tmp_path / "chromium", "1400,3000")
    assert png.exists() and png.stat().st_size > 50_000


# curves from the worker ---------------------------------------------------------------

RAISES = Candidate("def activation(x):\n    return x.reshape(2, 3)\n", Hash("e" * 64), "raises")
HANGS = Candidate("def activation(x):\n    while True:\n        pass\n", Hash("d" * 64), "hangs")


def test_curves_match_torch_and_a_raising_candidate_gives_none(
    tiny_lab: Lab, cache: FitnessCache
) -> None:
    import torch
    import torch.nn.functional as F

    gelu = seeds.seed_candidate("gelu")
    with Evaluator(tiny_lab, cache) as ev:
        curves = ev.curves([gelu, RAISES, gelu])
        assert ev.info["device"] == "cpu"
    assert set(curves) == {gelu.code_hash, RAISES.code_hash} and curves[RAISES.code_hash] is None
    curve = curves[gelu.code_hash]
    assert curve is not None and len(curve.x) == GRID[2] and curve.x[0] == GRID[0]
    x = torch.tensor(curve.x, dtype=torch.float64, requires_grad=True)
    y = F.gelu(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(torch.tensor(curve.f, dtype=torch.float64), y.detach(), atol=1e-12)
    assert torch.allclose(torch.tensor(curve.df, dtype=torch.float64), dy, atol=1e-12)
    # The second time, the cache answers for both: no worker is started.
    with Evaluator(tiny_lab, cache) as ev:
        again = ev.curves([gelu, RAISES])
        assert ev.info == {}
    assert again == curves


def test_a_hanging_candidate_is_killed_and_the_others_retried_alone(
    tiny_lab: Lab, cache: FitnessCache
) -> None:
    silu = seeds.seed_candidate("silu")
    with Evaluator(tiny_lab, cache, EvaluatorConfig(admit_timeout=1.0)) as ev:
        curves = ev.curves([HANGS, silu])
    assert curves[HANGS.code_hash] is None and curves[silu.code_hash] is not None
    # A timeout says nothing about the code: it is not cached, a later call tries again.
    assert cache.get_curve(HANGS.code_hash, GRID) is None
    assert cache.get_curve(silu.code_hash, GRID) is not None


# end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_report_of_a_real_evolve_run_matches_its_ranking(tmp_path: Path) -> None:
    args = [
        "evolve",
        "--budget",
        "3",
        "--tasks",
        str(TINY_TASKS),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--run-id",
        "e2e",
    ]
    from typer.testing import CliRunner

    from minact.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    run_dir = tmp_path / "runs" / "e2e"
    before = json.loads((run_dir / "ranking.json").read_text())

    def from_worker(cands: Sequence[Candidate]) -> Mapping[Hash, Curve | None]:
        lab = load_lab(TINY_TASKS)
        with FitnessCache(tmp_path / "cache", EVALUATOR_VERSION) as cache:
            with Evaluator(lab, cache, EvaluatorConfig(device="cpu")) as evaluator:
                return evaluator.curves(cands)

    data = build(run_dir, from_worker)
    assert data.warnings == [] and set(data.curves) == {*data.top, *data.baselines}
    files.write(run_dir, data)
    assert json.loads((run_dir / "ranking.json").read_text()) == before
    page = _page((run_dir / "report.html").read_text())
    assert [t for t, _ in page.tags].count("svg") == 3
    # The lab file is still there: its tasks are shown in full.
    assert (
        data.tasks
        and data.tasks[0]["settings"]["steps"] == load_lab(TINY_TASKS).tasks[0].settings.steps
    )
    shutil.rmtree(tmp_path / "cache")  # curves now come from nowhere: the report still works
    assert build(run_dir).curves == {}


def test_long_lists_are_capped_and_counted(run_dir: Path) -> None:
    # A run of thousands of proposals has as many distinct reasons (a duplicate's names the
    # function it copies) and may have hundreds of failures: the report shows LIST_ROWS of
    # each and counts the rest.
    from dataclasses import replace

    from minact.report.data import LIST_ROWS
    from minact.report.html import render_run_html
    from minact.report.markdown import render_run_markdown

    data = build(run_dir)
    failed = data.failed()[0]
    many = [{**failed, "name": f"f{i}", "code_hash": f"{i:064x}"} for i in range(LIST_ROWS + 7)]
    ranking = {**data.ranking, "candidates": [*data.ranking["candidates"], *many]}
    reasons = [("duplicate", f"same as c{i}", 1) for i in range(LIST_ROWS + 20)]
    data = replace(data, ranking=ranking, reasons=reasons)  # type: ignore[arg-type]
    text = render_run_markdown(data, {})
    assert f"- … and {len(data.failed()) - LIST_ROWS} more (ranking.json" in text
    assert "| … | 20 | 20 other reasons |" in text
    assert f"same as c{LIST_ROWS - 1} " in text and f"same as c{LIST_ROWS} " not in text
    page = render_run_html(data, {})
    assert f"… and {len(data.failed()) - LIST_ROWS} more" in page
    assert "20 other reasons" in page and f"same as c{LIST_ROWS}<" not in page
