"""The evaluation cascade's settings (a lab's `[lab.cascade]` table) and its stage-1 tasks.

Stage 1 trains a candidate on a fixed part of the lab's tasks; the candidate goes on to
the rest of the lab only while its stage-1 fitness could still reach the run's top K
(minact.search.cascade decides). Stage 1 is a subset of tasks, not fewer steps or seeds,
because per-task results are cached by task: a candidate that goes on trains only the
tasks it has not trained yet, so stage 1 costs nothing extra for the candidates that pass.
The subset is stratified by family (each family keeps its share of the lab) and drawn by
a seeded rule, so it is the same on every machine and for every run of the lab.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # task.py holds a Cascade in its Lab
    from minact.lab.task import Task

__all__ = ["CASCADE_KEYS", "Cascade", "stage_tasks"]

CASCADE_KEYS = ("tasks", "seed", "top", "margin")  # the keys of [lab.cascade]


@dataclass(frozen=True, slots=True)
class Cascade:
    """How `minact evolve` screens candidates before the full lab.

    Attributes:
        tasks: how many of the lab's tasks stage 1 trains (fewer than the lab holds).
        seed: the seed of the rule that picks them (stage_tasks).
        top: K; a candidate goes on while its stage-1 fitness could reach the run's K best.
        margin: how far below its stage-1 fitness a candidate's full fitness may still land
            (lower is better): it goes on when stage-1 fitness <= K-th best + margin.
    """

    tasks: int
    seed: int = 0
    top: int = 10
    margin: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict (run.json keeps the cascade a run used)."""
        return {"tasks": self.tasks, "seed": self.seed, "top": self.top, "margin": self.margin}


def stage_tasks(tasks: tuple[Task, ...], n: int, seed: int) -> tuple[Task, ...]:
    """Returns `n` of `tasks`, each family keeping its share, in the lab's order.

    Shares are rounded by largest remainder (ties to the family listed first), and each
    family's tasks are drawn with random.Random(f"{seed}:{family}"), so adding a family
    does not change the draw within the others.
    """
    if not 0 < n <= len(tasks):
        raise ValueError(f"stage 1 needs 1..{len(tasks)} tasks, got {n}")
    by_family: dict[str, list[Task]] = {}
    for t in tasks:
        by_family.setdefault(t.family, []).append(t)
    exact = {f: n * len(ts) / len(tasks) for f, ts in by_family.items()}
    counts = {f: int(v) for f, v in exact.items()}
    order = sorted(by_family, key=lambda f: -(exact[f] - counts[f]))  # stable: file order on ties
    for f in order[: n - sum(counts.values())]:
        counts[f] += 1
    chosen: set[str] = set()
    for f, ts in by_family.items():
        rng = random.Random(f"{seed}:{f}")
        chosen.update(t.name for t in rng.sample(ts, counts[f]))
    return tuple(t for t in tasks if t.name in chosen)
