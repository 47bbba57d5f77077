"""Fitness: per-task OOD losses, relative to the reference activation, folded into one number.

Per task: the median over seeds of the OOD MSE, divided by the reference's (ReLU's)
median OOD MSE on the same task. `mean_log_ratio` (the default) is the mean over
tasks of log(ratio): lower is better, 0 is the reference, negative beats it, and
every task weighs the same whatever its scale. `mean_ood_mse` is the plain mean of
the medians, which the polynomial tasks (largest extrapolation errors) dominate; it
is always reported beside the fitness so users see both.

The spread is the standard deviation over seed indices of the fitness computed from
that seed's losses alone (against the reference's medians): would the number survive
another seed? With one seed per task (the default lab) there is none to compare, and the
spread is None rather than a misleading 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from minact.candidate import Status
from minact.score import TaskResult, TaskScore

__all__ = ["Aggregate", "aggregate", "family_means", "first_failure", "task_fitness"]

_FLOOR = 1e-12  # keeps log() finite for a perfect fit


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A candidate's fitness on a lab, with its per-task scores."""

    fitness: float
    fitness_spread: float | None  # None with a single seed per task
    mean_ood_mse: float
    tasks: dict[str, TaskScore]


def first_failure(results: Sequence[tuple[str, TaskResult]]) -> tuple[Status, str] | None:
    """Returns (status, reason) of the first failed task, or None if all succeeded."""
    for name, r in results:
        if not r.ok:
            return r.status, f"task {name!r}: {r.reason}"
    return None


def _log_ratio(value: float, reference: float) -> float:
    return math.log(max(value, _FLOOR) / max(reference, _FLOOR))


def aggregate(
    results: Sequence[tuple[str, TaskResult]],
    reference: Mapping[str, TaskResult],
    kind: str = "mean_log_ratio",
) -> Aggregate:
    """Returns the fitness of successful per-task `results` against the reference's."""
    if not results:
        raise ValueError("no task results to aggregate")
    tasks: dict[str, TaskScore] = {}
    per_seed: list[list[float]] = []
    for name, r in results:
        ref = statistics.median(reference[name].ood)
        ood = statistics.median(r.ood)
        tasks[name] = TaskScore(
            ood_loss=ood,
            id_loss=statistics.median(r.id),
            ood_spread=(max(r.ood) - min(r.ood)) / 2,
            log_ratio=_log_ratio(ood, ref),
        )
        if kind == "mean_log_ratio":
            per_seed.append([_log_ratio(v, ref) for v in r.ood])
        else:
            per_seed.append(list(r.ood))
    fitness, mean_ood = task_fitness(tasks, kind)
    n_seeds = min(len(s) for s in per_seed)
    seed_fitness = [statistics.fmean(s[i] for s in per_seed) for i in range(n_seeds)]
    spread = statistics.stdev(seed_fitness) if n_seeds > 1 else None
    return Aggregate(fitness, spread, mean_ood, tasks)


def task_fitness(
    tasks: Mapping[str, TaskScore], kind: str = "mean_log_ratio"
) -> tuple[float, float]:
    """Returns the fitness of (non-empty) per-task scores under fitness `kind`, and their
    mean OOD MSE; raises ValueError for an unknown kind."""
    mean_ood = statistics.fmean(t.ood_loss for t in tasks.values())
    if kind == "mean_log_ratio":
        return statistics.fmean(t.log_ratio for t in tasks.values()), mean_ood
    if kind == "mean_ood_mse":
        return mean_ood, mean_ood
    raise ValueError(f"unknown fitness kind {kind!r}")


def family_means(
    tasks: Mapping[str, TaskScore], families: Mapping[str, str], kind: str = "mean_log_ratio"
) -> dict[str, float]:
    """Returns, per family in the order families first appear, the mean of the per-task
    measure whose mean over tasks is the fitness `kind`: the log-ratio, or the OOD MSE
    under "mean_ood_mse" (so a family's column is in the fitness's own units)."""
    by_family: dict[str, list[float]] = {}
    for name, score in tasks.items():
        value = score.ood_loss if kind == "mean_ood_mse" else score.log_ratio
        by_family.setdefault(families[name], []).append(value)
    return {f: statistics.fmean(v) for f, v in by_family.items()}
