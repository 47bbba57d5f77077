"""Tests for minact.claims: the paired bootstrap against the best baseline."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from minact.claims import (
    MIN_TASKS,
    _t_quantile,
    best_baseline,
    best_claim_sentence,
    claim_text,
    claims,
    expanded_tail,
    paired_claim,
    selection_note,
)


def test_a_candidate_better_on_every_task_beats_the_baseline() -> None:
    c = paired_claim([-0.5, -0.4, -0.6, -0.45, -0.5, -0.55], [0.0, 0.1, -0.1, 0.05, 0, 0], "gelu")
    assert c is not None and c.verdict == "yes" and c.against == "gelu"
    assert c.hi < 0 and c.lo <= c.difference <= c.hi and c.tasks == 6
    assert claim_text(c.to_dict()).startswith("yes (95% CI [-")


def test_worse_everywhere_is_no_and_mixed_is_inconclusive() -> None:
    worse = paired_claim([0.3, 0.4, 0.5, 0.35, 0.45, 0.4], [0.0] * 6, "relu")
    assert worse is not None and worse.verdict == "no" and worse.lo > 0
    mixed = paired_claim([-1.0, 1.0, -0.9, 1.1, -1.2, 0.8], [0.0] * 6, "relu")
    assert mixed is not None and mixed.verdict == "inconclusive" and mixed.lo < 0 < mixed.hi


def test_the_interval_is_seeded_and_needs_six_finite_tasks() -> None:
    a, b = [-0.2, 0.1, -0.3, 0.05, -0.1, -0.2], [0.0] * 6
    assert paired_claim(a, b, "x", seed=3) == paired_claim(a, b, "x", seed=3)
    # Better on all of five tasks happens by chance 1 time in 32: no 95% claim from that.
    assert MIN_TASKS == 6
    assert paired_claim([-1.0, -2.0, -0.5, -0.7, -1.5], [0.0] * 5, "x") is None
    assert paired_claim([-1.0, -2.0], [0.0, 0.0], "x") is None
    assert paired_claim([-1.0, -2.0, -1.0, math.nan, -1.0, -1.0], [0.0] * 6, "x") is None
    assert paired_claim([-1.0, -2.0, -1.0, -1.0, -1.0, -1.0], [0.0] * 5 + [math.inf], "x") is None
    assert claim_text(None) == "—"


def test_per_task_lists_of_different_lengths_are_refused() -> None:
    # numpy would compare each of six tasks with a one-element baseline's score.
    with pytest.raises(ValueError, match="different shapes"):
        paired_claim([-1.0] * 6, [0.0], "x")


def test_identical_scores_are_inconclusive_and_a_constant_gain_is_a_yes() -> None:
    same = paired_claim([0.1, -0.2, 0.3, 0.0, 0.5, -0.1], [0.1, -0.2, 0.3, 0.0, 0.5, -0.1], "x")
    assert same is not None and same.verdict == "inconclusive" and same.lo == same.hi == 0.0
    gain = paired_claim([-0.1] * 6, [0.0] * 6, "x")
    assert gain is not None and gain.verdict == "yes" and gain.hi == pytest.approx(-0.1)


def test_the_expanded_interval_widens_over_few_tasks_only() -> None:
    assert expanded_tail(6) < 0.5 < expanded_tail(20) < expanded_tail(200) < 2.5
    assert expanded_tail(10_000) == pytest.approx(2.5, abs=0.01)
    # Student's t quantiles (from tables) within 1e-3 from df 4 on.
    for df, t in ((4, 2.7764), (5, 2.5706), (10, 2.2281), (30, 2.0423)):
        assert _t_quantile(0.975, df) == pytest.approx(t, abs=1e-3)


def test_a_yes_by_chance_is_rare_over_few_tasks() -> None:
    # Nothing differs: per-task differences are pure noise. A 95% interval below 0 should
    # come about 2.5% of the time; the plain percentile interval gave 6-7% at 6-8 tasks.
    rng = np.random.default_rng(11)
    for n in (6, 8):
        trials = 1000
        yes = sum(
            paired_claim(list(rng.standard_normal(n)), [0.0] * n, "x", seed=i).verdict == "yes"  # type: ignore[union-attr]
            for i in range(trials)
        )
        assert yes / trials < 0.05, (n, yes)


def test_a_yes_by_chance_comes_no_more_often_than_the_level_allows_at_six_tasks() -> None:
    # Nothing differs. A "yes" (the 95% interval below 0) should come at most 2.5% of the
    # time; the expanded percentile interval alone said yes 3.3% of the time at 6 tasks of
    # normal noise and 3.5% of Laplace noise (its tails stay short over so few tasks).
    rng = np.random.default_rng(2024)
    trials = 3000
    for draw in (rng.standard_normal, rng.laplace):
        yes = sum(
            paired_claim(list(draw(size=6)), [0.0] * 6, "x", seed=i).verdict == "yes"  # type: ignore[union-attr]
            for i in range(trials)
        )
        assert yes / trials <= 0.028, (draw.__name__, yes)


def test_the_interval_is_at_least_as_wide_as_students_t_interval() -> None:
    # Better on five of six tasks by a lot, worse on one by a little: every resampled mean
    # of the expanded percentile interval lies below 0, but the mean, -31/30, is 0.176 short
    # of Student's t bound: mean + t(0.975, 5) * sd / sqrt(6), sd = 1.1518.
    diff = [-3.1, -1.4, -1.1, -0.4, -0.3, 0.1]
    c = paired_claim(diff, [0.0] * 6, "x")
    assert c is not None and c.verdict == "inconclusive"
    half = 2.5706 * float(np.std(diff, ddof=1)) / math.sqrt(6)
    assert c.hi == pytest.approx(-31 / 30 + half, abs=1e-3) and c.hi > 0.17
    assert c.lo <= -31 / 30 - half + 1e-3


@pytest.mark.parametrize("size", [1e300, 1e308])
def test_huge_differences_give_a_finite_interval_around_their_mean_or_no_claim(
    size: float,
) -> None:
    # Student's t bound squared the differences (its sd): past 1e154 that overflowed, and
    # the claim said [-inf, inf] (ranking.json wrote -Infinity, no JSON); a mean that
    # itself overflows (1e308 six times) is no number to claim about.
    c = paired_claim([size, size / 2, size, size / 3, size, size / 4], [0.0] * 6, "x")
    if size == 1e308:
        assert c is None
        return
    assert c is not None and all(map(math.isfinite, (c.lo, c.difference, c.hi)))
    assert 0 < c.lo <= c.difference <= c.hi and c.verdict == "no"


def _row(name: str, fitness: float, ratios: list[float], baseline: bool) -> dict[str, Any]:
    return {
        "name": name,
        "code_hash": name * 8,
        "status": "ok",
        "fitness": fitness,
        "baseline": baseline,
        "tasks": {f"t{i}": {"log_ratio": r} for i, r in enumerate(ratios)},
    }


def test_claims_pair_each_new_candidate_with_the_best_baseline() -> None:
    tasks = [f"t{i}" for i in range(6)]
    rows = [
        _row("new", -0.5, [-0.5, -0.6, -0.4, -0.5, -0.55, -0.45], False),
        _row("gelu", -0.2, [-0.2] * 6, True),
        _row("relu", 0.0, [0.0] * 6, True),
    ]
    assert best_baseline(rows) is rows[1]
    found = claims(rows, tasks)
    assert set(found) == {"new" * 8}
    claim = found["new" * 8]
    assert claim is not None and claim.against == "gelu" and claim.verdict == "yes"
    assert claim.compared == 1 and selection_note(claim.to_dict()) == ""
    assert claims([rows[0]], ["t0"]) == {}  # no baseline, nothing to claim


def test_each_claim_counts_the_candidates_it_was_picked_from() -> None:
    tasks = [f"t{i}" for i in range(6)]
    rows = [
        _row("new", -0.5, [-0.5, -0.6, -0.4, -0.5, -0.55, -0.45], False),
        _row("other", -0.3, [-0.3] * 6, False),
        _row("failed", 0.0, [0.0] * 6, False) | {"status": "error"},
        _row("gelu", -0.2, [-0.2] * 6, True),
    ]
    found = claims(rows, tasks)
    assert set(found) == {"new" * 8, "other" * 8}  # no claim for a failure or a baseline
    best = found["new" * 8]
    assert best is not None and best.compared == 2 and best.to_dict()["compared"] == 2
    assert "best of 2 candidates on these same tasks" in selection_note(best.to_dict())


def test_candidates_the_cascade_screened_out_count_among_those_picked_from() -> None:
    # Screened out on stage-1 tasks (some of these very tasks), they lost to the pick there:
    # "best of 1" would hide the choice among 3.
    tasks = [f"t{i}" for i in range(6)]
    screened = {"status": "screened", "fitness": None, "partial_fitness": 0.4}
    rows = [
        _row("new", -0.5, [-0.5, -0.6, -0.4, -0.5, -0.55, -0.45], False),
        _row("gelu", -0.2, [-0.2] * 6, True),
        _row("cut", 0.4, [0.4] * 2, False) | screened,
        _row("cut2", 0.5, [0.5] * 2, False) | screened,
    ]
    best = claims(rows, tasks)["new" * 8]
    assert best is not None and best.compared == 3
    assert "best of 3 candidates on these same tasks" in selection_note(best.to_dict())


def test_the_claim_tests_the_measure_the_fitness_averages() -> None:
    # Under fitness "mean_ood_mse" the best baseline is the one with the lowest mean OOD MSE,
    # and the claim pairs OOD MSEs: a candidate better in log-ratio on every task but worse
    # in MSE where the scale is largest is not declared a winner on another measure.
    tasks = [f"t{i}" for i in range(6)]
    scale = [100.0, 1.0, 1.0, 1.0, 1.0, 1.0]

    def row(name: str, ratios: list[float], mse: list[float], baseline: bool) -> dict[str, Any]:
        r = _row(name, sum(mse) / 6, ratios, baseline)
        for i, v in enumerate(mse):
            r["tasks"][f"t{i}"]["ood_loss"] = v
        return r

    base = row("gelu", [0.0] * 6, scale, True)
    new = row("new", [0.1, -0.5, -0.5, -0.5, -0.5, -0.5], [110.0] + [0.6] * 5, False)
    by_ratio = claims([base, new], tasks)["new" * 8]
    by_mse = claims([base, new], tasks, fitness="mean_ood_mse")["new" * 8]
    assert by_ratio is not None and by_ratio.difference < 0
    assert by_mse is not None and by_mse.difference == pytest.approx((10.0 - 0.4 * 5) / 6)
    assert by_mse.verdict != "yes"


def test_the_sentence_says_when_the_best_baseline_is_the_only_one_scored() -> None:
    # `score FILE` ranks it beside the reference alone: "the best baseline" is not the best
    # of the built-ins there.
    tasks = [f"t{i}" for i in range(6)]
    new = _row("new", -0.5, [-0.5, -0.6, -0.4, -0.5, -0.55, -0.45], False)
    relu, gelu = _row("relu", 0.0, [0.0] * 6, True), _row("gelu", -0.2, [-0.2] * 6, True)
    for rows, against, only in (([new, relu], "relu", True), ([new, gelu, relu], "gelu", False)):
        claim = claims(rows, tasks)["new" * 8]
        assert claim is not None
        ranked = [r | {"rank": i + 1} for i, r in enumerate(rows)]
        ranked[0]["claim"] = claim.to_dict()
        said = best_claim_sentence(ranked, 6)
        assert f"beat the best baseline ({against}" in said
        assert ("the only baseline scored here" in said) == only
