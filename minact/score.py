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

__all__ = ["TIMED_COST", "TRANSIENT", "Admission", "Conditions", "Score", "TaskResult", "TaskScore"]
__all__ += ["BUSY_LOAD", "MAX_ATTEMPTS", "failed_again"]

# Failures that say more about the machine than about the code: stored under the code hash
# only, with the conditions they happened under, and retried once by a later call.
TRANSIENT: frozenset[Status] = frozenset({"timeout", "crashed"})
BUSY_LOAD = 1.5  # a 1-minute load average per usable core above this: oversubscribed
MAX_ATTEMPTS = 4  # a failure that recurs in this many calls stands, whatever they ran under
# How a too_costly reason measured with a clock starts (one counted by operations does not):
# a load spike can slow a timing, so such a verdict is provisional, as a timeout is.
TIMED_COST = "takes "


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

    @property
    def provisional(self) -> bool:
        """Returns whether the verdict may say more about the machine than about the code: a
        timeout, a crash, or too_costly by a timing. It is stored with its conditions and
        probed again by later calls until it stands (Conditions.final)."""
        timed = self.status == "too_costly" and self.reason.startswith(TIMED_COST)
        return self.status in TRANSIENT or timed

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
        cost = float(d["cost"]) if d.get("cost") is not None else None
        # A cost is a count of operations: never negative nor NaN, even in an edited cache.
        if cost is not None and not 0 <= cost < math.inf:
            raise ValueError(f"a cost of {cost!r}")
        if verdict == "ok" and not bh:
            raise ValueError("an admitted candidate needs a behaviour hash")
        return cls(
            status=verdict,
            reason=str(d.get("reason", "")),
            behaviour_hash=Hash(str(bh)) if bh is not None else None,
            cost=cost,
        )


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a transient failure (timeout, crash) happened under.

    Attributes:
        timeout: the wall-clock limit in force, in seconds.
        device: the worker's device ("cpu", "cuda"; "" when unknown).
        load: the machine's 1-minute load average at the time (None where unknown).
        attempts: how many calls have failed this way in a row.
        clean: how many of those failures say something about the code: on a machine that
            was not oversubscribed, and not caused from outside (a signal from a user or the
            kernel's out-of-memory killer, memory taken by other work).
    """

    timeout: float
    device: str = ""
    load: float | None = None
    attempts: int = 1
    clean: int = 0

    def final(self, timeout: float, device: str) -> bool:
        """Returns whether the failure stands: retried once already, under no longer a limit
        and on the same device (an unknown device counts as the same), and seen once where
        nothing else could explain it; or failed MAX_ATTEMPTS times, whatever the conditions
        (a load spike is never frozen into the cache; a machine always busy does not pay
        for a slow candidate in every call)."""
        same_device = not device or not self.device or device == self.device
        seen = self.attempts >= 2 and (self.clean >= 1 or self.attempts >= MAX_ATTEMPTS)
        return seen and timeout <= self.timeout and same_device

    def describe(self) -> str:
        """Returns e.g. "timeout 120 s, cpu, load 3.2"."""
        load = f", load {self.load:.1f}" if self.load is not None else ""
        return f"timeout {self.timeout:g} s, {self.device or 'device unknown'}{load}"

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict."""
        return {
            "timeout": self.timeout,
            "device": self.device,
            "load": self.load,
            "attempts": self.attempts,
            "clean": self.clean,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Conditions:
        """Builds Conditions from `to_dict` output; raises KeyError/TypeError/ValueError."""
        load = d.get("load")
        return cls(
            float(d["timeout"]),
            str(d.get("device", "")),
            float(load) if load is not None else None,
            int(d.get("attempts", 1)),
            int(d.get("clean", 0)),
        )


def failed_again(
    previous: Conditions | None,
    timeout: float,
    device: str,
    load: float | None,
    cores: int,
    outside: bool = False,
) -> Conditions:
    """Returns the conditions of a transient failure after `previous` (None: the first).

    It counts as clean unless it was caused from `outside` or the load average was above
    BUSY_LOAD per core (an unknown load counts as calm: nothing says otherwise).
    """
    busy = load is not None and load > BUSY_LOAD * max(1, cores)
    attempts = (previous.attempts if previous is not None else 0) + 1
    clean = (previous.clean if previous is not None else 0) + (not outside and not busy)
    return Conditions(timeout, device, load, attempts, clean)


_FLOAT32_MAX = 3.4028234663852886e38


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
        trace: a sample of the pre-activations the activation saw in training (float32
            values, seed 0's, and the other seeds' lowest and highest where they reach
            further), against which other code with the same behaviour hash is
            verified before it may reuse this result (minact.sandbox.trace).
        traced: how many seeds' inputs the trace covers: all of them since the trace took
            the other seeds' ends; 1 in a result an older minact cached (seed 0's only),
            which other code may not reuse where it trained more seeds (minact.reuse).
    """

    status: Status
    reason: str = ""
    ood: tuple[float, ...] = ()
    id: tuple[float, ...] = ()
    seconds: float = 0.0
    trace: tuple[float, ...] = ()
    traced: int = 1

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
            "trace": list(self.trace),
            "traced": self.traced,
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
            # Mean squared errors of float32 training: never negative, never past float32's
            # largest (it would be inf, a failure). Such a loss from an edited cache was
            # ranked, or broke the fitness's logarithm with a traceback.
            if not all(0.0 <= v <= _FLOAT32_MAX for v in (*ood, *id_)):
                raise ValueError("an ok result's losses are squared errors of float32 training")
        trace = _floats(d.get("trace", []))
        seconds = float(d.get("seconds", 0.0))
        traced = d.get("traced", 1)  # absent: written before the trace took every seed's
        if isinstance(traced, bool) or not isinstance(traced, int) or traced < 1:
            raise ValueError(f"traced is a positive number of seeds, not {traced!r}")
        return cls(verdict, str(d.get("reason", "")), ood, id_, seconds, trace, traced)


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
        behaviour_hash: the key its results are stored under: the behaviour hash of f and f'
            (shared by equal functions), or its code hash after a collision or where the
            shared entry was another code's failure (minact.reuse).
        cached: True when no training ran for it in this call.
        cached_tasks: how many of its tasks' results came from the cache (or from verified
            equal code) rather than training in this call; None where no task was scored
            (a failure before training) or not recorded (a log of an older minact).
        collision: set when its behaviour hash matched other code whose results its own code
            did not reproduce (minact.evaluate verifies before reusing): that hash. Its
            results are then its own, trained under its code hash.
        partial_fitness: for a "screened" candidate, its fitness on the cascade's stage-1
            tasks (the tasks it has scores for); `fitness` stays None, since the lab's
            fitness was never measured.
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
    cached_tasks: int | None = None
    baseline: bool = False
    parent: Hash | None = None
    seconds: float = 0.0
    collision: Hash | None = None
    partial_fitness: float | None = None

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
            "cached_tasks": self.cached_tasks,
            "baseline": self.baseline,
            "parent": self.parent,
            "seconds": self.seconds,
            "collision": self.collision,
            "partial_fitness": self.partial_fitness,
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
            cached_tasks=None if d.get("cached_tasks") is None else int(d["cached_tasks"]),
            baseline=bool(d.get("baseline", False)),
            parent=opt_hash("parent"),
            seconds=float(d.get("seconds", 0.0)),
            collision=opt_hash("collision"),
            partial_fitness=opt("partial_fitness"),
        )
