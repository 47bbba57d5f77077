"""Tests for what a run's checks say (minact.runs.checks): the validation flag under each
fitness kind ("beats the reference" is judged against the reference's own fitness), and the
confirmation's sentence."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from minact.candidate import Hash
from minact.lab.loader import load_lab
from minact.runs.checks import attach, check_event, check_text
from minact.runs.ranking import lab_summary, ranking_document
from minact.score import Score, TaskScore
from tests.conftest import ASSETS


def _score(name: str, ood: dict[str, float], baseline: bool) -> Score:
    tasks = {t: TaskScore(v, v, 0.0, 0.0) for t, v in ood.items()}  # log-ratios unused here
    mean = sum(ood.values()) / len(ood)
    return Score(
        name=name,
        code_hash=Hash(name * 8),
        source=f"# {name}",
        status="ok",
        fitness=mean,
        mean_ood_mse=mean,
        tasks=tasks,
        baseline=baseline,
    )


def _summary(path: str) -> dict[str, Any]:
    return lab_summary(replace(load_lab(ASSETS / path), fitness="mean_ood_mse"))


def test_the_flag_compares_with_the_reference_under_the_mean_ood_mse() -> None:
    # Under "mean_ood_mse" every fitness is a positive MSE: "fitness < 0" never held, so a
    # candidate better than relu on the lab and worse on the held-out task went unflagged.
    lab, other = _summary("tiny_tasks.toml"), _summary("other_tasks.toml")
    names = [t["name"] for t in lab["tasks"]]
    on_lab = [
        _score("relu", dict.fromkeys(names, 2.0), True),
        _score("newbie", dict.fromkeys(names, 1.0), False),
    ]
    doc = ranking_document(on_lab, lab)
    there = [
        _score("relu", {"sine": 1.0, "cube": 1.0}, True),
        _score("newbie", {"sine": 1.0, "cube": 3.0}, False),
    ]
    event = check_event("validation", other, there, suite="other", top=2, seconds=0.0)
    checked = attach(doc, [event])
    flags = {c["name"]: c["validation"]["flag"] for c in checked["candidates"]}
    assert flags == {"newbie": True, "relu": False}
    lines = check_text(checked["checks"], checked["lab"])
    assert (
        lines[-1].startswith("win the lab (fitness below the reference's)")
        and "newbie" in (lines[-1])
    )
    # With the reference not scored on the held-out tasks, there is nothing to lose to.
    event = check_event("validation", other, there[1:], suite="other", top=1, seconds=0.0)
    (row,) = [c for c in attach(doc, [event])["candidates"] if "validation" in c]
    assert row["validation"]["flag"] is False


def test_the_confirmed_best_new_candidate_is_not_called_the_winner() -> None:
    # The best *new* candidate with more seeds may trail the baselines: "winner c0 at -0.298"
    # read as the run's winner where gelu scored -0.356.
    claim = {"against": "gelu", "verdict": "inconclusive", "lo": -0.07, "hi": 0.19, "compared": 1}
    winner = {"name": "c0", "code_hash": "h", "fitness": -0.298, "fitness_spread": 0.19}
    checks = {"confirmation": {"seeds": 3, "winner": winner | {"claim": claim}}}
    (line,) = check_text(checks, {"fitness": "mean_log_ratio"})
    assert line.startswith("confirmed with 3 seeds per task: best new candidate c0 at -0.298;")
    assert "winner" not in line and "beats best baseline (gelu): inconclusive" in line


def test_under_mean_ood_mse_the_checks_print_fitness_as_the_ranking_does() -> None:
    # The checks' lines and table, and a claim's interval ends, printed an MSE of 28.38 with
    # a log-ratio's "+.3f": "+28.384" beside the ranking's 28.38.
    from minact.claims import best_claim_sentence
    from minact.report.checktable import check_table

    claim = {"against": "gelu", "verdict": "no", "lo": 0.00012, "hi": 1.5, "compared": 1}
    winner = {"name": "c0", "code_hash": "h", "fitness": 28.384, "fitness_spread": 0.5604}
    checks = {"confirmation": {"seeds": 3, "winner": winner | {"claim": claim}}}
    mse, ratio = {"fitness": "mean_ood_mse"}, {"fitness": "mean_log_ratio"}
    (line,) = check_text(checks, mse)
    assert "best new candidate c0 at 28.38;" in line
    assert "no (95% CI [+0.00012, +1.5])" in line and "+28.384" not in line
    (line,) = check_text(checks, ratio)  # a log-ratio keeps its digits
    assert "c0 at +28.384;" in line and "no (95% CI [+0.000, +1.500])" in line
    confirmed = {"fitness": 27.91, "fitness_spread": 0.5604, "claim": claim}
    row = {"rank": 2, "name": "c0", "baseline": False, "fitness": 28.384, "confirmation": confirmed}
    doc = {"lab": mse, "candidates": [row], "checks": {"confirmation": {"seeds": 3}}}
    _, (cells,) = check_table(doc)
    assert cells[2:] == ["28.38", "27.91 ± 0.5604", "no (95% CI [+0.00012, +1.5])"]
    best = {**row, "rank": 1, "claim": claim}
    assert "no (95% CI [+0.00012, +1.5])" in best_claim_sentence([best], 6, "+.4g")
