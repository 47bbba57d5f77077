"""Tests for minact.fitness: the lab's fitness and its seed spread."""

from __future__ import annotations

import math

import pytest

from minact.fitness import aggregate
from minact.score import TaskResult


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
