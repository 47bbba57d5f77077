"""What evaluating a candidate gave: admission, per-task results, per-task scores, the score.

Frozen records with JSON round trips (`to_dict`/`from_dict`), checked on the way in, so
that nothing malformed from the worker or the cache becomes a result. No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minact.candidate import Hash, Status, parse_status

__all__ = ["Admission", "Score", "TaskResult", "TaskScore"]


@dataclass(frozen=True, slots=True)
class Admission:
    """The worker's verdict on a candidate before training: behaviour hash or a failure.

    Attributes:
        status: "ok" or a failure kind.
        behaviour_hash: hash of f and f' on the probe grid (None when not admitted).
        cost: elementwise operations per input element, relative to GELU.
    """

    status: Status
    reason: str = ""
    behaviour_hash: Hash | None = None
    cost: float | None = None

    @property
    def ok(self) -> bool:
        """Returns whether the candidate may be trained."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict."""
        return {
            "status": self.status,
            "reason": self.reason,
            "behaviour_hash": self.behaviour_hash,
            "cost": self.cost,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Admission:
        """Builds an Admission from `to_dict` output; raises ValueError/KeyError/TypeError."""
        verdict = parse_status(str(d["status"]))
        bh = d.get("behaviour_hash")
        cost = d.get("cost")
        return cls(
            status=verdict,
            reason=str(d.get("reason", "")),
            behaviour_hash=Hash(str(bh)) if bh is not None else None,
            cost=float(cost) if cost is not None else None,
        )


def _floats(values: Any) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"expected a list of numbers, got {type(values).__name__}")
    return tuple(float(v) for v in values)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One candidate trained on one task: a loss per seed, or a failure.

    Attributes:
        ood: OOD mean squared error per seed (standardised targets).
        id: in-distribution test MSE per seed.
        seconds: training wall time attributed to this (candidate, task).
    """

    status: Status
    reason: str = ""
    ood: tuple[float, ...] = ()
    id: tuple[float, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Returns whether every seed trained to finite losses."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict."""
        return {
            "status": self.status,
            "reason": self.reason,
            "ood": list(self.ood),
            "id": list(self.id),
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskResult:
        """Builds a TaskResult from `to_dict` output; raises on malformed input."""
        verdict = parse_status(str(d["status"]))
        ood, id_ = _floats(d.get("ood", [])), _floats(d.get("id", []))
        if verdict == "ok":
            if not ood or len(ood) != len(id_):
                raise ValueError("an ok result needs one OOD and one ID loss per seed")
            if not all(math.isfinite(v) for v in (*ood, *id_)):
                raise ValueError("an ok result has finite losses only")
        return cls(verdict, str(d.get("reason", "")), ood, id_, float(d.get("seconds", 0.0)))


@dataclass(frozen=True, slots=True)
class TaskScore:
    """A candidate's summary on one task, as the ranking shows it.

    Attributes:
        ood_loss: median OOD MSE over seeds.
        id_loss: median ID MSE over seeds.
        ood_spread: (max - min) / 2 of the per-seed OOD MSE.
        log_ratio: log(ood_loss / reference's ood_loss); negative beats the reference.
    """

    ood_loss: float
    id_loss: float
    ood_spread: float
    log_ratio: float


@dataclass(frozen=True, slots=True)
class Score:
    """A candidate's outcome on a lab: fitness and per-task scores, or a failure.

    Attributes:
        fitness: the lab's selection score (lower is better; 0 = reference), or None.
        fitness_spread: standard deviation of the per-seed fitness.
        mean_ood_mse: plain mean over tasks of the median OOD MSE.
        cached: True when no training ran for it in this call.
    """

    name: str
    code_hash: Hash | None
    source: str
    status: Status
    reason: str = ""
    behaviour_hash: Hash | None = None
    fitness: float | None = None
    fitness_spread: float | None = None
    mean_ood_mse: float | None = None
    tasks: Mapping[str, TaskScore] = field(default_factory=dict)
    cost: float | None = None
    cached: bool = False
    baseline: bool = False
    parent: Hash | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Returns whether the candidate has a fitness."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict from which `Score.from_dict` rebuilds this score."""
        return {
            "name": self.name,
            "code_hash": self.code_hash,
            "source": self.source,
            "status": self.status,
            "reason": self.reason,
            "behaviour_hash": self.behaviour_hash,
            "fitness": self.fitness,
            "fitness_spread": self.fitness_spread,
            "mean_ood_mse": self.mean_ood_mse,
            "tasks": {
                name: [t.ood_loss, t.id_loss, t.ood_spread, t.log_ratio]
                for name, t in self.tasks.items()
            },
            "cost": self.cost,
            "cached": self.cached,
            "baseline": self.baseline,
            "parent": self.parent,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Score:
        """Builds a Score from `to_dict` output; raises KeyError/TypeError/ValueError."""

        def opt(key: str) -> float | None:
            v = d.get(key)
            return None if v is None else float(v)

        def opt_hash(key: str) -> Hash | None:
            v = d.get(key)
            return None if v is None else Hash(str(v))

        tasks = {str(k): TaskScore(*(float(x) for x in v)) for k, v in d.get("tasks", {}).items()}
        return cls(
            name=str(d["name"]),
            code_hash=opt_hash("code_hash"),
            source=str(d["source"]),
            status=parse_status(str(d["status"])),
            reason=str(d.get("reason", "")),
            behaviour_hash=opt_hash("behaviour_hash"),
            fitness=opt("fitness"),
            fitness_spread=opt("fitness_spread"),
            mean_ood_mse=opt("mean_ood_mse"),
            tasks=tasks,
            cost=opt("cost"),
            cached=bool(d.get("cached", False)),
            baseline=bool(d.get("baseline", False)),
            parent=opt_hash("parent"),
            seconds=float(d.get("seconds", 0.0)),
        )
