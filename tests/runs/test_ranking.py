"""Tests for minact.runs.ranking: order, ties, failures, missing numbers, the JSON shape."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest

from minact.candidate import Hash, Rejection
from minact.runs.ranking import cache_state, ranked, ranking_document, rejection_score
from minact.score import Score, TaskScore

LAB = {
    "lab": {"path": "lab.toml", "digest": "d", "reference": "relu", "fitness": "mean_log_ratio",
            "families": ["waves", "powers"]},
    "tasks": [{"name": "sine", "family": "waves"}, {"name": "cube", "family": "powers"}],
}  # fmt: skip


def _ok(name: str, fitness: float | None, tasks: dict[str, TaskScore] | None = None) -> Score:
    return Score(name, Hash(f"h-{name}"), f"src {name}", "ok", "", Hash(f"b-{name}"), fitness,
                 0.1, 1.0, tasks or {}, cost=2.0)  # fmt: skip


def _failed(name: str, status: str) -> Score:
    return Score(name, Hash(f"h-{name}"), f"src {name}", status, f"why {name}")  # type: ignore[arg-type]


def _order(scores: list[Score]) -> list[tuple[int | None, str]]:
    return [(rank, s.name) for rank, s in ranked(scores)]


def test_best_first_and_ties_share_a_rank_then_the_next_rank_skips() -> None:
    scores = [_ok("c", 0.0), _ok("b", -0.5), _ok("a", -0.5), _ok("d", 0.25), _ok("e", 0.0)]
    assert _order(scores) == [(1, "a"), (1, "b"), (3, "c"), (3, "e"), (5, "d")]


def test_failures_follow_unranked_by_kind_then_name() -> None:
    scores = [
        _failed("z", "timeout"),
        _ok("good", 0.1),
        _failed("y", "nonfinite"),
        _failed("x", "timeout"),
        _failed("w", "invalid"),
    ]
    assert _order(scores) == [
        (1, "good"),
        (None, "w"),
        (None, "y"),
        (None, "x"),
        (None, "z"),
    ]


def test_an_ok_score_without_a_finite_fitness_is_listed_unranked_not_misordered() -> None:
    scores = [
        _ok("nan", math.nan),
        _ok("b", 0.5),
        _ok("inf", math.inf),
        _ok("a", -1.0),
        _ok("none", None),
        _ok("c", 0.0),
        _failed("f", "crashed"),
    ]
    assert _order(scores) == [
        (1, "a"),
        (2, "c"),
        (3, "b"),
        (None, "inf"),
        (None, "nan"),
        (None, "none"),
        (None, "f"),
    ]


def test_the_order_does_not_depend_on_the_input_order() -> None:
    scores = [_ok("a", 0.2), _ok("b", math.nan), _ok("c", 0.2), _failed("d", "error")]
    assert _order(scores) == _order(scores[::-1])


def test_the_document_is_json_with_nulls_for_missing_numbers_and_extra_fields() -> None:
    tasks = {
        "sine": TaskScore(0.5, 0.1, 0.05, -0.7),
        "cube": TaskScore(math.inf, 0.2, math.nan, 0.3),
    }
    refused = rejection_score(Rejection("calls open", name="bad"), "open('x')")
    scores = [_ok("nan", math.nan), _ok("a", -0.2, tasks), refused]
    doc = ranking_document(scores, LAB, {"run_id": "r"}, {Hash("h-a"): {"index": 3}})
    text = json.dumps(doc, allow_nan=False)  # no NaN or Infinity anywhere
    assert json.loads(text) == doc
    a, nan, bad = doc["candidates"]
    assert (a["rank"], a["name"], a["index"], a["fitness"]) == (1, "a", 3, -0.2)
    assert a["tasks"]["cube"] == {"ood_loss": None, "id_loss": 0.2, "ood_spread": None,
                                  "log_ratio": 0.3}  # fmt: skip
    assert a["families"] == {"waves": -0.7, "powers": 0.3}
    assert (nan["rank"], nan["fitness"], nan["status"]) == (None, None, "ok")
    assert (bad["rank"], bad["status"], bad["reason"], bad["code_hash"]) == (
        None,
        "invalid",
        "calls open",
        None,
    )
    # A refused file trained nothing and read nothing from the cache: "—", not "hit".
    assert (bad["cached"], bad["cached_tasks"], cache_state(bad)) == (False, None, "—")
    assert doc["run"] == {"run_id": "r"} and doc["tasks"] == LAB["tasks"]


def test_a_candidates_tasks_follow_the_labs_order() -> None:
    # A score read back from the cache holds its tasks alphabetically; the ranking (and
    # `minact show`, which prints them) lists them as the lab does, unknown ones last.
    alphabetical = {n: TaskScore(0.5, 0.1, 0.0, 0.0) for n in ("cube", "extra", "sine")}
    doc = ranking_document([_ok("a", -0.2, alphabetical)], LAB)
    assert list(doc["candidates"][0]["tasks"]) == ["sine", "cube", "extra"]


def test_every_row_has_a_claim_key() -> None:
    # A consumer reads c["claim"] on every row: null on baselines, failures and screened rows.
    doc = ranking_document(
        [
            Score("relu", Hash("a" * 64), "", "ok", fitness=0.0, baseline=True),
            Score("bad", Hash("b" * 64), "", "error", "raised"),
        ],
        {"lab": {"path": "x", "digest": "d", "reference": "relu", "fitness": "f",
                 "families": []}, "tasks": []},
    )  # fmt: skip
    assert [c["claim"] for c in doc["candidates"]] == [None, None]


def test_a_ranking_under_mean_ood_mse_claims_on_ood_mse() -> None:
    # The lab's fitness kind picks the measure the claim pairs (the one the ranking sorts by).
    names = [f"t{i}" for i in range(6)]
    lab = {
        "lab": {**LAB["lab"], "fitness": "mean_ood_mse", "families": ["f"]},
        "tasks": [{"name": n, "family": "f"} for n in names],
    }

    def scored(name: str, baseline: bool, mse: list[float], ratio: float) -> Score:
        tasks = {n: TaskScore(v, 0.1, 0.0, ratio) for n, v in zip(names, mse, strict=True)}
        return Score(name, Hash(f"h-{name}"), "", "ok", "", Hash(f"b-{name}"), sum(mse) / 6,
                     None, sum(mse) / 6, tasks, baseline=baseline)  # fmt: skip

    base = scored("gelu", True, [100.0] + [1.0] * 5, 0.0)
    new = scored("new", False, [110.0] + [0.6] * 5, -0.5)

    def claim(fitness: str) -> dict[str, object]:
        lab["lab"]["fitness"] = fitness
        rows = ranking_document([base, new], lab)["candidates"]
        found = next(c["claim"] for c in rows if c["name"] == "new")
        assert found is not None
        return dict(found)

    by_mse = claim("mean_ood_mse")
    assert by_mse["difference"] == pytest.approx(8 / 6) and by_mse["verdict"] != "yes"
    assert claim("mean_log_ratio")["difference"] == -0.5


def test_a_long_ranking_prints_its_best_new_rows_and_every_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from minact.cli._shared import ROWS, TOP_ROWS, print_ranking

    scores = [_ok(f"n{i}", i / 100) for i in range(2000)] + [_failed("f", "timeout")]
    baselines = [replace(_ok(f"b{i}", 5.0 + i), baseline=True) for i in range(3)]
    doc = ranking_document([*scores, *baselines], LAB, {"run_id": "r"})
    print_ranking(doc)
    out = capsys.readouterr().out
    rows = re.findall(r"^│ +\d+ │ (\w+)", out, re.MULTILINE)
    assert rows == [f"n{i}" for i in range(TOP_ROWS)] + ["b0", "b1", "b2"]
    assert "1971 more candidates not shown" in out and "ranking.json lists every one" in out
    short = ranking_document([*scores[: ROWS - 1], scores[-1]], LAB, {"run_id": "r"})
    print_ranking(short)
    out = capsys.readouterr().out
    assert "more candidates" not in out and "timeout" in out  # a short one: every row


def test_the_cache_column_says_what_is_known_and_no_more() -> None:
    assert cache_state({"cached": True, "cached_tasks": 4}) == "hit"
    assert cache_state({"cached": False, "cached_tasks": 2}) == "part"
    assert cache_state({"cached": False, "cached_tasks": 0}) == "new"
    # A log of an older minact has no count: some tasks may have come from the cache.
    assert cache_state({"cached": False}) == "—"
    assert cache_state({"cached": False, "cached_tasks": None}) == "—"


def test_a_familys_column_is_the_measure_the_fitness_averages() -> None:
    # Under "mean_ood_mse" the fitness is a mean OOD MSE: family columns of mean log-ratios
    # beside it were another measure under the same kind of header.
    tasks = {"sine": TaskScore(0.5, 0.1, 0.0, -0.7), "cube": TaskScore(4.0, 0.2, 0.0, 0.3)}
    mse = {**LAB, "lab": {**LAB["lab"], "fitness": "mean_ood_mse"}}
    (row,) = ranking_document([_ok("a", 2.25, tasks)], mse)["candidates"]
    assert row["families"] == {"waves": 0.5, "powers": 4.0}
    (row,) = ranking_document([_ok("a", -0.2, tasks)], LAB)["candidates"]
    assert row["families"] == {"waves": -0.7, "powers": 0.3}


def test_a_number_that_rounds_to_zero_is_never_printed_as_negative_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "-0.000" reads as "better than the reference" with no digit to back it.
    from minact.cli._shared import print_ranking
    from minact.numbers import number_text
    from minact.report.html import render_ranking_html
    from minact.report.markdown import render_markdown

    assert number_text(-0.0004, "+.3f") == "+0.000" and number_text(-0.0004, ".3f") == "0.000"
    assert number_text(-0.5, "+.3f") == "-0.500" and number_text(float("nan"), ".3f") == "—"
    tasks = {"sine": TaskScore(0.5, 0.1, 0.0, -0.0003), "cube": TaskScore(4.0, 0.2, 0.0, -0.0002)}
    doc = ranking_document([_ok("a", -0.00025, tasks)], LAB, {"command": "score"})
    print_ranking(doc)
    for text in (render_markdown(doc), render_ranking_html(doc), capsys.readouterr().out):
        assert "+0.000" in text and "-0.000" not in text


def test_a_rescores_was_column_names_its_lab_and_kind_in_every_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "was" held a mean log-ratio on the run's lab beside a mean OOD MSE on this one, and
    # no output said which lab, or which measure, either number came from.
    from minact.cli._shared import print_ranking
    from minact.report.html import render_ranking_html
    from minact.report.markdown import render_markdown

    mse = {**LAB, "lab": {**LAB["lab"], "path": "other.toml", "fitness": "mean_ood_mse"}}
    came_from = {"path": "home.toml", "reference": "relu", "fitness": "mean_log_ratio"}
    run = {"command": "rescore", "from": "runs/r1", "from_lab": came_from}
    doc = ranking_document([_ok("a", 3.0)], mse, run, {Hash("h-a"): {"original_fitness": -0.2}})
    print_ranking(doc)
    outputs = (render_markdown(doc), render_ranking_html(doc), capsys.readouterr().out)
    for text in (" ".join(t.split()).replace("&#34;", '"') for t in outputs):
        assert "the candidates came from, home.toml (mean_log_ratio" in text
        assert "every other number: on other.toml (mean_ood_mse" in text
        assert "the two fitness kinds differ" in text
    plain = ranking_document([_ok("a", 3.0)], mse, {"command": "score"})
    assert "came from" not in render_markdown(plain)


def test_under_mean_ood_mse_the_fitness_prints_as_the_mean_ood_mse_column_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "+.3f" printed an MSE of 0.0003 as "+0.000" (every small one tied) beside "0.0003".
    from minact.cli._shared import print_ranking
    from minact.report.html import render_ranking_html
    from minact.report.markdown import render_markdown

    tasks = {"sine": TaskScore(0.0002, 0.1, 0.0, -0.7), "cube": TaskScore(0.0004, 0.2, 0.0, 0.3)}
    mse = {**LAB, "lab": {**LAB["lab"], "fitness": "mean_ood_mse"}}
    score = replace(_ok("a", 0.0003, tasks), mean_ood_mse=0.0003, fitness_spread=0.00011)
    doc = ranking_document([score], mse, {"command": "score"})
    print_ranking(doc)
    for text in (render_markdown(doc), render_ranking_html(doc), capsys.readouterr().out):
        assert "+0.000" not in text and "0.0003" in text and "0.00011" in text
        assert "0.0002" in text and "0.0004" in text  # the families' columns: MSE too
    assert "| -0.250 |" in render_markdown(ranking_document([_ok("a", -0.25)], LAB, {}))
