"""Tests for minact.agreement: rank correlations and lab stability on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minact.agreement import (
    cross_agreement,
    family_agreement,
    kendall_tau,
    lab_agreement,
    score_matrix,
    spearman_rho,
    split_half,
)


@pytest.mark.parametrize(
    ("a", "b", "tau"),
    [
        ([1, 2, 3], [1, 2, 3], 1.0),
        ([1, 2, 3], [3, 2, 1], -1.0),
        # pairs (1,2) and (1,3) concordant, (2,3) discordant: (2 - 1) / 3
        ([1, 2, 3], [1, 3, 2], 1 / 3),
        # tau-b: one pair tied in a; 2 concordant of sqrt(2 untied in a * 3 untied in b)
        ([1, 1, 2], [1, 2, 3], 2 / math.sqrt(6)),
        # ties in both: (0,1) tied in both, (0,2) and (1,2) concordant: 2 / sqrt(2 * 2)
        ([1, 1, 2], [5, 5, 7], 1.0),
        # 4 items, one swap of neighbours: 5 concordant, 1 discordant
        ([1, 2, 3, 4], [1, 3, 2, 4], 4 / 6),
    ],
)
def test_kendall_tau_b_on_hand_computed_cases(a: list[float], b: list[float], tau: float) -> None:
    assert kendall_tau(a, b) == pytest.approx(tau)
    assert kendall_tau(b, a) == pytest.approx(tau)


def test_kendall_tau_is_nan_for_a_constant_list_and_refuses_bad_shapes() -> None:
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="one length"):
        kendall_tau([1, 2], [1, 2, 3])


def test_spearman_rho_with_and_without_ties() -> None:
    # 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman_rho([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # average ranks: a -> (1.5, 1.5, 3), b -> (1, 2, 3); Pearson of those ranks
    assert spearman_rho([5, 5, 9], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman_rho([2, 2], [1, 2]))


def _consistent(candidates: int, tasks: int, seed: int = 0) -> np.ndarray:
    """Every task ranks the candidates alike (candidate i scores i, plus a task offset)."""
    rng = np.random.default_rng(seed)
    return np.arange(candidates)[:, None] + 10 * rng.random(tasks)[None, :]


def test_split_half_of_a_lab_whose_tasks_agree_is_one() -> None:
    spread = split_half(_consistent(6, 8), splits=50)
    assert (spread.median, spread.lo, spread.hi, spread.samples) == (1.0, 1.0, 1.0, 50)


def test_split_half_of_two_opposed_tasks_is_minus_one() -> None:
    scores = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])  # task 2 reverses task 1
    assert split_half(scores, splits=10).median == -1.0
    with pytest.raises(ValueError, match="two disjoint sets of 2 tasks out of 2"):
        split_half(scores, size=2)


def test_split_half_is_seeded_and_takes_a_size() -> None:
    scores = np.random.default_rng(1).random((8, 12))
    assert split_half(scores, seed=3) == split_half(scores, seed=3)
    assert split_half(scores, size=2, splits=30).samples == 30


def test_family_agreement_compares_each_family_with_the_rest() -> None:
    up = np.array([1.0, 2.0, 3.0, 4.0])
    down = up[::-1]
    scores = np.stack([up, up, down, up + 0.5], axis=1)  # a, a, b, c
    out = family_agreement(scores, ["a", "a", "b", "c"])
    # a alone: up; the rest: mean(down, up + 0.5) is constant -> nan (no order to agree with)
    assert math.isnan(out["a"])
    assert out["b"] == -1.0  # b alone is down; the rest is up
    assert out["c"] == 1.0  # c alone is up; the rest (up, up, down) is up
    assert family_agreement(scores, ["x"] * 4) == {}


def test_cross_agreement_of_two_consistent_task_sets() -> None:
    tau, spread = cross_agreement(_consistent(5, 6, 1), _consistent(5, 9, 2), resamples=20)
    assert tau == 1.0 and spread.median == 1.0 and spread.samples == 20
    tau, _ = cross_agreement(_consistent(5, 6), -_consistent(5, 3), resamples=5)
    assert tau == -1.0


def test_score_matrix_keeps_ok_rows_and_shared_tasks() -> None:
    rows = [
        {
            "name": "a",
            "status": "ok",
            "tasks": {"t1": {"log_ratio": 0.1}, "t2": {"log_ratio": 1.0}},
        },
        {
            "name": "b",
            "status": "ok",
            "tasks": {"t1": {"log_ratio": 0.2}, "t2": {"log_ratio": None}},
        },
        {"name": "c", "status": "nonfinite", "tasks": {}},
    ]
    names, tasks, matrix = score_matrix(rows)
    assert names == ["a", "b"] and tasks == ["t1"]
    assert matrix.tolist() == [[0.1], [0.2]]
    assert score_matrix([])[2].shape == (0, 0)


def test_lab_agreement_says_when_there_is_too_little_to_measure() -> None:
    out = lab_agreement(_consistent(4, 10), ["f"] * 10)
    assert out.split_half is None and "not enough" in out.verdict
    assert "4 candidates and 10 tasks" in out.verdict
    assert lab_agreement(_consistent(8, 5), ["f"] * 5).split_half is None
    # `minact score relu` ranks one activation: "1 candidate", not "1 candidates".
    assert "(1 candidate and 1 task; " in lab_agreement(_consistent(1, 1), ["f"]).verdict


def test_candidates_that_all_tie_are_not_called_unstable() -> None:
    # Five names of one behaviour score alike on every task: every split's tau is nan, which
    # the verdict read as "unstable ... Kendall tau nan".
    for scores in (np.zeros((5, 6)), np.tile(np.arange(6.0), (5, 1))):
        out = lab_agreement(scores, ["a"] * 3 + ["b"] * 3)
        assert out.split_half is None and out.families == {}
        assert out.verdict.startswith("not measurable: the 5 candidates score alike")
        assert "nan" not in out.verdict and "unstable" not in out.verdict


def test_lab_agreement_of_a_stable_and_of_a_split_lab() -> None:
    families = ["a"] * 4 + ["b"] * 4
    stable = lab_agreement(_consistent(6, 8), families, splits=50)
    assert stable.verdict.startswith("stable:") and stable.families == {"a": 1.0, "b": 1.0}
    assert stable.to_dict()["split_half"] == {"median": 1.0, "lo": 1.0, "hi": 1.0}
    # family b ranks the candidates in reverse: halves disagree, and b is named
    split = np.concatenate([_consistent(6, 4), -_consistent(6, 4, 1)], axis=1)
    out = lab_agreement(split, families, splits=50)
    assert out.split_half is not None and out.split_half.median < 0.3
    assert out.verdict.startswith("unstable:") and "do not trust it" in out.verdict
    assert "the a, b tasks rank them against the rest" in out.verdict


def test_an_odd_lab_is_split_into_two_disjoint_sets_of_the_smaller_half() -> None:
    even = lab_agreement(_consistent(6, 8), ["f"] * 8, splits=20)
    assert "two random halves of the 8 tasks rank the 6 candidates" in even.verdict
    odd = lab_agreement(_consistent(6, 7), ["f"] * 7, splits=20)
    assert "two random disjoint sets of 3 of the 7 tasks rank the 6 candidates" in odd.verdict


def test_fitness_agreement_of_a_consistent_and_a_reversed_ranking() -> None:
    from minact.agreement import fitness_agreement

    original = [0.0, 1.0, 2.0, 3.0]
    same = np.array([[0.0, 0.1, 0.2], [1.0, 1.2, 1.1], [2.0, 2.1, 2.3], [3.0, 3.3, 3.1]])
    got = fitness_agreement(original, same, resamples=50)
    assert got is not None and got["kendall_tau"]["value"] == 1.0
    assert got["spearman_rho"]["value"] == 1.0 and got["candidates"] == 4 and got["tasks"] == 3
    reversed_ = fitness_agreement(original, -same, resamples=50)
    assert reversed_ is not None and reversed_["kendall_tau"]["value"] == -1.0
    assert reversed_["kendall_tau"]["hi"] == -1.0
    assert fitness_agreement([0.0, 1.0], same[:2]) is None


def test_fitness_agreement_over_too_few_tasks_has_no_interval() -> None:
    from minact.agreement import fitness_agreement
    from minact.report.agreement import agreement_text

    # One task resampled is always that task: an interval [v, v] would look precise.
    got = fitness_agreement([0.1, 0.2, 0.3, 0.4], np.array([[0.3], [0.1], [0.2], [0.5]]))
    assert got is not None and got["kendall_tau"]["value"] == pytest.approx(1 / 3)
    for stat in ("kendall_tau", "spearman_rho"):
        assert got[stat]["lo"] is None and got[stat]["hi"] is None and got[stat]["median"] is None
    assert got["interval"].startswith("none")
    text = agreement_text(got)
    assert "Kendall tau +0.33 and" in text and "no interval: 1 task here" in text
    assert "5-95%" not in text


def test_the_agreement_names_shared_tasks_and_gives_it_without_them() -> None:
    from minact.agreement import fitness_agreement
    from minact.report.agreement import agreement_text

    rng = np.random.default_rng(3)
    new = rng.normal(size=(6, 9))
    original = new[:, :7].mean(axis=1)  # 7 of the 9 tasks here ranked the candidates before
    got = fitness_agreement(original, new)
    assert got is not None
    got["shared_tasks"] = [f"t{i}" for i in range(7)]
    got["held_out"] = fitness_agreement(original, new[:, 7:])
    text = agreement_text(got)
    assert "7 of the 9 tasks here (t0, t1, t2, t3, t4 and 2 more) are tasks of the lab" in text
    tau = got["held_out"]["kendall_tau"]["value"]
    assert f"on the other 2 tasks alone: Kendall tau {tau:+.2f} and" in text
    got["held_out"] = None  # too few candidates with a fitness on the other tasks
    assert "too few candidates to measure the agreement on the other tasks alone" in (
        agreement_text(got)
    )
    del got["shared_tasks"]  # candidates from hashes: their lab is not known
    assert "tasks of the lab" not in agreement_text(got)


def test_tau_and_rho_match_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(3, 12))
        a = rng.integers(0, 4, n).astype(float)
        b = rng.integers(0, 4, n).astype(float)
        if len(set(a)) < 2 or len(set(b)) < 2:
            continue
        assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)
        assert spearman_rho(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
