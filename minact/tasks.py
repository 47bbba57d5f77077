"""The micro-lab's records (Task, Lab), their digests, and each task's synthetic data.

A task trains tiny MLPs on points from an inner *train* box and scores them on the *OOD* region, the
outer *test* box minus the train box, so OOD points are disjoint from training by construction.
labfile.py reads tasks.toml into these records.

A task's kind says what is learned (lab.py owns the matching model and loss):
- "regression" (the default): y = target(x), standardised with the training statistics; MSE.
- "classification": label = 1 where target(x) > 0, else 0; binary cross-entropy on logits.
- "set": length generalisation (in the spirit of CLRS-30): y = aggregate over a set of `size`
  elements of element(x), standardised; the OOD sets have `test_size` elements, drawn from the
  train box, or from the test box minus the train box when the task's test box differs from its
  train box. A DeepSets model; MSE.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from minact.expression import Expression, ExpressionError, parse_expression

__all__ = ["AGGREGATES", "DATA_VERSION", "FITNESS_KINDS", "KINDS", "Lab", "SetSpec", "Settings"]
__all__ += ["TargetError", "Task", "TaskData", "ood_fraction", "sample"]

# Part of every Task.digest(): bump it when sampling or standardisation changes, so fitness cached
# on the old data is never served for the new.
DATA_VERSION = 1
FITNESS_KINDS = ("mean_log_ratio", "mean_ood_mse")
KINDS = ("regression", "classification", "set")  # the first is the default
# How a set task pools its per-element values (numpy reductions over the element axis).
AGGREGATES: Mapping[str, Callable[..., Any]] = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
}
FloatArray = npt.NDArray[np.float64]
Box = tuple[tuple[float, float], ...]  # (lo, hi) per variable


@dataclass(frozen=True, slots=True)
class Settings:
    """Training and data settings of one task: lab defaults merged with the task's overrides.

    Attributes:
        width, depth: hidden units per layer and hidden layers.  steps, lr: full-batch Adam.
        seeds: networks per task.  n_train: training points.  n_test: points in each of the ID
        and OOD test sets.  noise: std of Gaussian noise added to the standardised y_train.
        data_seed: seed of the data (the networks' seeds belong to the evaluator).
    """

    width: int = 32
    depth: int = 2
    steps: int = 400
    lr: float = 0.01
    seeds: int = 3
    n_train: int = 256
    n_test: int = 256
    noise: float = 0.0
    data_seed: int = 0


@dataclass(frozen=True, slots=True)
class SetSpec:
    """What a set task learns: `aggregate` of the element expression over sets of `size`.

    Attributes:
        aggregate: one of AGGREGATES.  size: elements per training (and ID) set.
        test_size: elements per OOD set (at least `size`: longer sets are the point).
    """

    aggregate: str
    size: int
    test_size: int


@dataclass(frozen=True, slots=True)
class Task:
    """One task of the micro-lab (a regression unless `kind` says otherwise).

    Attributes:
        name: unique in its lab.  family: e.g. "harmonic", "polynomial", "feynman".
        target: the checked expression (for a set task, the per-element expression).
        variables: input order (the columns of x).  train: (lo, hi) per variable.
        test: (lo, hi) per variable, the outer box; the OOD region is test minus train (a set task
        with test == train draws its OOD elements from the train box).  settings: lab defaults
        merged with overrides.  kind: one of KINDS.  sets: the set shape, for kind "set" only.
    """

    name: str
    family: str
    target: Expression
    variables: tuple[str, ...]
    train: Box
    test: Box
    settings: Settings
    kind: str = "regression"
    sets: SetSpec | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.kind == "set") != (self.sets is not None):
            raise ValueError(f"task kind {self.kind!r} with set spec {self.sets!r}")
        if self.kind == "classification" and self.settings.noise:
            raise ValueError("noise applies to real-valued targets, not classification labels")

    def digest(self) -> str:
        """Returns the sha256 of all that affects this task's numbers (not its name or family)."""
        numbers = {k: v for k, v in self.to_dict().items() if k not in ("name", "family")}
        return _sha256({"data_version": DATA_VERSION, **numbers})

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict from which `Task.from_dict` rebuilds this task."""
        d = {
            "name": self.name,
            "family": self.family,
            "target": self.target.source,
            "variables": list(self.variables),
            "train": [list(r) for r in self.train],
            "test": [list(r) for r in self.test],
            "settings": asdict(self.settings),
        }
        # Only what differs from a regression: the digests of regression tasks stay as they were.
        if self.kind != KINDS[0]:
            d["kind"] = self.kind
        if self.sets is not None:
            d |= asdict(self.sets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        """Returns the task `d` came from via `to_dict` (trusted: only the target is re-checked)."""
        train, test = (tuple((float(lo), float(hi)) for lo, hi in d[k]) for k in ("train", "test"))
        variables = tuple(str(v) for v in d["variables"])
        target, settings = parse_expression(d["target"]), Settings(**d["settings"])
        sets = None
        if "aggregate" in d:
            sets = SetSpec(str(d["aggregate"]), int(d["size"]), int(d["test_size"]))
        kind = str(d.get("kind", KINDS[0]))
        return cls(d["name"], d["family"], target, variables, train, test, settings, kind, sets)


@dataclass(frozen=True, slots=True)
class Lab:
    """A loaded tasks file: its tasks and the lab-wide settings.

    Attributes:
        path: the file.  tasks: in file order.  reference: activation the ratios are taken
        against.  fitness: one of FITNESS_KINDS.  max_cost: admission FLOP budget relative to
        GELU.  timeout: seconds per candidate in the worker.  probe: activation probe range.
    """

    path: Path
    tasks: tuple[Task, ...]
    reference: str = "relu"
    fitness: str = "mean_log_ratio"
    max_cost: float = 16.0
    timeout: float = 120.0
    probe: tuple[float, float] = (-10.0, 10.0)

    def digest(self) -> str:
        """Returns the sha256 of the lab-wide settings that affect scores (not timeout, fitness)."""
        return _sha256({k: self.to_dict()[k] for k in ("reference", "max_cost", "probe")})

    def families(self) -> tuple[str, ...]:
        """Returns the task families in order of first appearance."""
        return tuple(dict.fromkeys(t.family for t in self.tasks))

    def task(self, name: str) -> Task:
        """Returns the task called `name`, or raises KeyError listing the known names."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"unknown task {name!r}; known: {', '.join(t.name for t in self.tasks)}")

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict from which `Lab.from_dict` rebuilds this lab."""
        rest = {k: getattr(self, k) for k in ("reference", "fitness", "max_cost", "timeout")}
        tasks = [t.to_dict() for t in self.tasks]
        return {"path": str(self.path), "tasks": tasks, "probe": list(self.probe), **rest}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lab:
        """Returns the lab `d` came from via `to_dict` (trusted input)."""
        lo, hi = d["probe"]
        tasks = tuple(Task.from_dict(t) for t in d["tasks"])
        rest = {k: d[k] for k in ("reference", "fitness", "max_cost", "timeout")}
        return cls(path=Path(d["path"]), tasks=tasks, probe=(float(lo), float(hi)), **rest)


@dataclass(frozen=True, slots=True)
class TaskData:
    """One task's float64 data; all targets standardised with the raw training mean and std.

    Attributes:
        x_train (n_train, d), y_train (n_train,): training set, noise already added.
        x_id (n_test, d), y_id: fresh points from the train box.
        x_ood (n_test, d), y_ood: points from the test box minus the train box.
        y_mean, y_std: the raw training targets' mean and std used to standardise.
    Classification: the y are labels 0.0 or 1.0, not standardised (y_mean 0, y_std 1).
    Set tasks: each x is (sets, elements, d), with `size` elements in x_train and x_id and
    `test_size` in x_ood; y is one target per set.
    """

    x_train: FloatArray
    y_train: FloatArray
    x_id: FloatArray
    y_id: FloatArray
    x_ood: FloatArray
    y_ood: FloatArray
    y_mean: float
    y_std: float


class TargetError(ValueError):
    """A target that is not finite or constant on its sampled data (reason in the message)."""


def ood_fraction(test: Box, train: Box) -> float:
    """Returns the share of the test box's volume that lies outside the train box."""
    inside = math.prod((h - lo) / (th - tl) for (lo, h), (tl, th) in zip(train, test, strict=True))
    return 1.0 - inside


def _sha256(payload: object) -> str:
    """Returns the sha256 hex of `payload`'s canonical JSON."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def sample(task: Task) -> TaskData:
    """Returns the task's deterministic data; raises TargetError if it is not finite or constant."""
    s = task.settings
    seed_fields = {k: v for k, v in task.to_dict().items() if k not in ("name", "family")}
    seed_fields["settings"] = [s.data_seed, s.n_train, s.n_test, s.noise]
    # 128 bits of a hash: the same task gives the same arrays on any machine.
    rng = np.random.default_rng(int(_sha256(seed_fields)[:32], 16))
    # The draw order is part of DATA_VERSION: x_train, x_id, x_ood, then noise.
    if task.sets is None:
        x_train = _uniform(rng, task.train, s.n_train)
        x_id = _uniform(rng, task.train, s.n_test)
        x_ood = _uniform_shell(rng, task.test, task.train, s.n_test)
    else:
        x_train, x_id, x_ood = _sets(rng, task, task.sets)
    y_train, y_id, y_ood = (_target(task, x) for x in (x_train, x_id, x_ood))
    for label, y in (("training box", y_train), ("training box", y_id), ("OOD region", y_ood)):
        if not np.all(np.isfinite(y)):
            raise TargetError(f"is not finite on the {label} (nan or inf at sampled points)")
    if task.kind == "classification":
        share = float(np.mean(y_train > 0))
        if share in (0.0, 1.0):
            raise TargetError(f"gives labels that are all {share:.0f} on the training box")
        labels = [(y > 0).astype(np.float64) for y in (y_train, y_id, y_ood)]
        return TaskData(x_train, labels[0], x_id, labels[1], x_ood, labels[2], 0.0, 1.0)
    mean, std = float(np.mean(y_train)), float(np.std(y_train))
    if not std > 1e-12 * max(1.0, abs(mean)):
        raise TargetError(f"is constant on the training points (value {mean:g})")
    y_train = (y_train - mean) / std
    if s.noise > 0:
        y_train = y_train + s.noise * rng.standard_normal(s.n_train)
    y_id, y_ood = (y_id - mean) / std, (y_ood - mean) / std
    return TaskData(x_train, y_train, x_id, y_id, x_ood, y_ood, y_mean=mean, y_std=std)


def _uniform(rng: np.random.Generator, box: Box, n: int) -> FloatArray:
    """Returns `n` points uniform in `box`."""
    lo, hi = np.array(box, dtype=np.float64).T
    points: FloatArray = lo + (hi - lo) * rng.random((n, len(box)))  # (n, d)
    return points


def _sets(rng: np.random.Generator, task: Task, spec: SetSpec) -> tuple[FloatArray, ...]:
    """Returns x_train, x_id and x_ood of a set task, each (sets, elements, d)."""
    n_train, n_test, d = task.settings.n_train, task.settings.n_test, len(task.variables)
    x_train = _uniform(rng, task.train, n_train * spec.size).reshape(n_train, spec.size, d)
    x_id = _uniform(rng, task.train, n_test * spec.size).reshape(n_test, spec.size, d)
    n_ood = n_test * spec.test_size
    if task.test == task.train:  # length generalisation only
        x_ood = _uniform(rng, task.train, n_ood)
    else:  # longer sets of values from outside the train box
        x_ood = _uniform_shell(rng, task.test, task.train, n_ood)
    return x_train, x_id, x_ood.reshape(n_test, spec.test_size, d)


def _uniform_shell(rng: np.random.Generator, outer: Box, inner: Box, n: int) -> FloatArray:
    """Returns `n` points uniform in `outer` minus the closed box `inner`, by rejection."""
    lo, hi = np.array(inner, dtype=np.float64).T
    share = ood_fraction(outer, inner)
    chunks: list[FloatArray] = []
    have = 0
    while have < n:
        # Enough for the remainder with margin; capped so memory stays bounded.
        x = _uniform(rng, outer, min(int(1.2 * (n - have) / share) + 64, 1 << 20))
        chunks.append(x[~np.all((x >= lo) & (x <= hi), axis=1)])
        have += len(chunks[-1])
    return np.concatenate(chunks)[:n]


def _target(task: Task, x: FloatArray) -> FloatArray:
    """Returns the raw target at points `x` (last axis in `task.variables` order)."""
    try:
        y = task.target.evaluate({v: x[..., i] for i, v in enumerate(task.variables)})
    except ExpressionError as exc:
        raise TargetError(str(exc)) from None
    if task.sets is None:
        return y
    with np.errstate(all="ignore"):  # inf - inf becomes nan: the caller checks finiteness
        pooled: FloatArray = AGGREGATES[task.sets.aggregate](y, axis=1)  # (sets,)
    return pooled
