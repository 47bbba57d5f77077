"""Tests for minact.fitness: the aggregation, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from minact.fitness import aggregate, family_means, first_failure
from minact.score import TaskResult

L = math.log(2.0)

# The reference's OOD losses per seed: medians 2.0 on "a" and 0.5 on "b".
REFERENCE = {
    "a": TaskResult("ok", "", (1.0, 2.0, 4.0), (0.1, 0.1, 0.1)),
    "b": TaskResult("ok", "", (0.5, 0.5, 0.5), (0.1, 0.1, 0.1)),
}
# A candidate with medians 1.0 on "a" (half the reference's) and 0.5 on "b" (the same).
CANDIDATE = [
    ("a", TaskResult("ok", "", (0.5, 1.0, 8.0), (0.3, 0.1, 0.2))),
    ("b", TaskResult("ok", "", (1.0, 0.25, 0.5), (0.05, 0.07, 0.06))),
]


def test_mean_log_ratio_by_hand() -> None:
    agg = aggregate(CANDIDATE, REFERENCE)
    a, b = agg.tasks["a"], agg.tasks["b"]
    assert a.log_ratio == pytest.approx(math.log(1.0 / 2.0))  # -L
    assert b.log_ratio == pytest.approx(0.0)
    assert agg.fitness == pytest.approx(-L / 2)
    # Medians over seeds, and half the range of the OOD losses.
    assert (a.ood_loss, a.id_loss, a.ood_spread) == (1.0, 0.2, 3.75)
    assert (b.ood_loss, b.id_loss, b.ood_spread) == (0.5, 0.06, 0.375)
    assert agg.mean_ood_mse == pytest.approx(0.75)
    # Seed by seed against the reference's medians: seed 0 (log(0.25/2) + log(1/0.5)) / 2 =
    # -L/2, seed 1 (log(1/2) + log(0.25/0.5)) / 2 = -L, seed 2 (log(8/2) + log(1)) / 2 = L.
    # Their sample standard deviation: mean -L/6, squared deviations (1/9 + 25/36 + 49/36) L²,
    # over 2: L * sqrt(39) / 6.
    assert agg.fitness_spread == pytest.approx(L * math.sqrt(39) / 6)


def test_mean_ood_mse_by_hand() -> None:
    agg = aggregate(CANDIDATE, REFERENCE, kind="mean_ood_mse")
    assert agg.fitness == pytest.approx(0.75) and agg.mean_ood_mse == pytest.approx(0.75)
    # Seed means of the raw losses: 0.75, 0.625, 4.25.
    mean = (0.75 + 0.625 + 4.25) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in (0.75, 0.625, 4.25)) / 2)
    assert agg.fitness_spread == pytest.approx(sd)
    assert agg.tasks["a"].log_ratio == pytest.approx(-L)  # per-task ratios are kept


def test_the_reference_scores_zero_and_a_uniform_factor_gives_its_log() -> None:
    ref = aggregate(list(REFERENCE.items()), REFERENCE)
    assert ref.fitness == 0.0
    doubled = [
        (name, TaskResult("ok", "", tuple(2 * v for v in r.ood), r.id))
        for name, r in REFERENCE.items()
    ]
    agg = aggregate(doubled, REFERENCE)
    assert agg.fitness == pytest.approx(L)
    # Every seed's loss doubled: the per-seed fitness spread is the reference's own.
    assert agg.fitness_spread == pytest.approx(ref.fitness_spread)


def test_a_perfect_fit_stays_finite() -> None:
    perfect = [("a", TaskResult("ok", "", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))]
    agg = aggregate(perfect, REFERENCE)
    assert agg.fitness == pytest.approx(math.log(1e-12 / 2.0))
    assert math.isfinite(agg.fitness_spread) and agg.fitness_spread == 0.0


def test_one_seed_has_no_spread_and_uneven_seeds_use_the_common_ones() -> None:
    one = {"a": TaskResult("ok", "", (2.0,), (0.1,))}
    assert aggregate([("a", TaskResult("ok", "", (1.0,), (0.1,)))], one).fitness_spread is None
    uneven = [("a", TaskResult("ok", "", (1.0, 4.0), (0.1, 0.1))), CANDIDATE[1]]
    agg = aggregate(uneven, REFERENCE)
    # Seeds 0 and 1 only: (log(1/2) + log(2)) / 2 = 0 and (log(4/2) + log(1/2)) / 2 = 0.
    assert agg.fitness_spread == pytest.approx(0.0)
    assert agg.fitness == pytest.approx((math.log(2.5 / 2.0) + 0.0) / 2)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="no task results"):
        aggregate([], REFERENCE)
    with pytest.raises(ValueError, match="unknown fitness kind 'best'"):
        aggregate(CANDIDATE, REFERENCE, kind="best")


def test_family_means_in_order_of_first_appearance() -> None:
    agg = aggregate(CANDIDATE, REFERENCE)
    families = {"a": "waves", "b": "powers"}
    assert list(family_means(agg.tasks, families)) == ["waves", "powers"]
    assert family_means(agg.tasks, families) == pytest.approx({"waves": -L, "powers": 0.0})
    both = family_means(agg.tasks, {"a": "all", "b": "all"})
    assert both == pytest.approx({"all": -L / 2})


def test_first_failure_names_the_first_failed_task() -> None:
    failed = TaskResult("nonfinite", "loss is nan for seed 1")
    assert first_failure(CANDIDATE) is None
    results = [CANDIDATE[0], ("b", failed), ("c", TaskResult("timeout", "late"))]
    assert first_failure(results) == ("nonfinite", "task 'b': loss is nan for seed 1")


def _ok(*ood: float) -> TaskResult:
    return TaskResult("ok", ood=ood, id=tuple(0.1 for _ in ood))


def test_fitness_is_the_mean_log_ratio_and_the_spread_is_over_seeds() -> None:
    reference = {"a": _ok(1.0, 1.0), "b": _ok(2.0, 2.0)}
    agg = aggregate([("a", _ok(0.5, 2.0)), ("b", _ok(2.0, 8.0))], reference)
    # medians: a 1.25 against 1, b 5 against 2
    assert agg.fitness == pytest.approx((math.log(1.25) + math.log(2.5)) / 2)
    # per seed: (log 0.5 + log 1) / 2 and (log 2 + log 4) / 2
    seed_fitness = [math.log(0.5) / 2, (math.log(2) + math.log(4)) / 2]
    spread = abs(seed_fitness[1] - seed_fitness[0]) / math.sqrt(2)  # stdev of two values
    assert agg.fitness_spread == pytest.approx(spread)


def test_one_seed_per_task_has_no_seed_spread() -> None:
    agg = aggregate([("a", _ok(0.5))], {"a": _ok(1.0)})
    assert agg.fitness == pytest.approx(math.log(0.5)) and agg.fitness_spread is None
