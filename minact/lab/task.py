"""The micro-lab's records (Task, Lab) and their digests.

A task trains tiny MLPs on points from an inner *train* box and scores them on the *OOD* region, the
outer *test* box minus the train box, so OOD points are disjoint from training by construction.
loader.py reads tasks.toml into these records; sampling.py draws each task's data.

A task's kind says what is learned (minact.sandbox.trainer owns the matching model and loss):
- "regression" (the default): y = target(x), standardised with the training statistics; MSE.
- "classification": label = 1 where target(x) > 0, else 0; binary cross-entropy on logits.
- "set": length generalisation (in the spirit of CLRS-30): y = aggregate over a set of `size`
  elements of element(x), standardised; the OOD sets have `test_size` elements, drawn from the
  train box, or from the test box minus the train box when the task's test box differs from its
  train box. A DeepSets model; MSE.
- "graph": a graph algorithm (GraphSpec; graphs.py draws the graphs and computes the exact
  targets), one target per node, learned by a message-passing network trained on graphs of
  `nodes` nodes and scored on graphs of `test_nodes`; MSE on standardised targets, or binary
  cross-entropy for yes/no algorithms (BINARY_ALGORITHMS).

A regression or classification task may take its data from a bundled dataset (DatasetSpec;
datasets.py) instead of a target expression. Graph and dataset tasks have no target expression,
no variables and no boxes: their OOD data is defined by the spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from minact.lab.cascade import Cascade
from minact.lab.expression import Expression, parse_expression

__all__ = ["AGGREGATES", "DATA_VERSION", "FITNESS_KINDS", "KINDS", "Box", "Lab", "SetSpec"]
__all__ += ["BINARY_ALGORITHMS", "GRAPH_AGGREGATES", "GRAPH_ALGORITHMS", "DatasetSpec"]
__all__ += ["GraphSpec", "Settings", "Task", "sha256_json"]

# Part of every Task.digest(): bump it when sampling or standardisation changes, so fitness cached
# on the old data is never served for the new.
DATA_VERSION = 1
FITNESS_KINDS = ("mean_log_ratio", "mean_ood_mse")
KINDS = ("regression", "classification", "set", "graph")  # the first is the default
# How a set task pools its per-element values (numpy reductions over the element axis).
AGGREGATES: Mapping[str, Callable[..., Any]] = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
}
Box = tuple[tuple[float, float], ...]  # (lo, hi) per variable
# What each graph algorithm computes per node, after `rounds` steps of the algorithm (graphs.py).
GRAPH_ALGORITHMS: Mapping[str, str] = {
    "bfs": "hop distance from the source (rounds + 1 if not reached)",
    "bellman_ford": "weighted distance from the source (rounds + 1 if not reached)",
    "degree": "number of neighbours",
    "max_neighbour": "largest value among the node and its neighbours",
    "max_reachable": "largest value within `rounds` hops",
    "reachability": "1 if reached from the source within `rounds` hops, else 0",
}
BINARY_ALGORITHMS = ("reachability",)  # yes/no targets: binary cross-entropy
GRAPH_AGGREGATES = ("sum", "max")  # how a node pools its incoming messages


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
        test_size: elements per OOD set (more than `size` unless the task has its own `test`).
    """

    aggregate: str
    size: int
    test_size: int


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """What a graph task learns and on which graphs.

    Attributes:
        algorithm: one of GRAPH_ALGORITHMS.  nodes: nodes per training (and ID) graph.
        test_nodes: nodes per OOD graph, more than `nodes`.  edge_prob: Erdős–Rényi edge
        probability, the same at both sizes (as CLRS-30 does), so the OOD graphs are larger
        and denser.  rounds:
        message-passing rounds, with weights shared across rounds.  aggregate: GRAPH_AGGREGATES.
    """

    algorithm: str
    nodes: int
    test_nodes: int
    edge_prob: float
    rounds: int
    aggregate: str


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """A bundled dataset and the documented shift that makes its OOD set (datasets.py).

    Attributes:
        name: the dataset.  label: how classes become a yes/no label ("" if not needed).
        shift: how the OOD set differs.  amount: the shift's size.  feature: the feature a
        "top" shift sorts by ("" otherwise).
    """

    name: str
    label: str
    shift: str
    amount: float
    feature: str = ""


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
        graph: the algorithm and graphs, for kind "graph" only.  dataset: a bundled dataset
        instead of a target, for kinds "regression" and "classification".
    """

    name: str
    family: str
    target: Expression | None
    variables: tuple[str, ...]
    train: Box
    test: Box
    settings: Settings
    kind: str = "regression"
    sets: SetSpec | None = None
    graph: GraphSpec | None = None
    dataset: DatasetSpec | None = None
    # digest() is asked for hundreds of times per candidate (cache keys, grouping): kept.
    _digest: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.kind == "set") != (self.sets is not None):
            raise ValueError(f"task kind {self.kind!r} with set spec {self.sets!r}")
        if (self.kind == "graph") != (self.graph is not None):
            raise ValueError(f"task kind {self.kind!r} with graph spec {self.graph!r}")
        if self.dataset is not None and self.kind not in KINDS[:2]:
            raise ValueError(
                f"a dataset task must be a regression or classification, not {self.kind}"
            )
        if (self.target is None) != (self.graph is not None or self.dataset is not None):
            raise ValueError("a task has a target expression unless it is a graph or dataset task")
        if self.kind == "classification" and self.settings.noise:
            raise ValueError("noise applies to real-valued targets, not classification labels")

    @property
    def loss(self) -> str:
        """Returns "bce" for yes/no targets (binary cross-entropy on logits), else "mse"."""
        binary = self.graph is not None and self.graph.algorithm in BINARY_ALGORITHMS
        return "bce" if self.kind == "classification" or binary else "mse"

    def describe(self) -> str:
        """Returns one line saying what the task learns (for prompts, reports and listings)."""
        if self.graph is not None:
            g = self.graph
            return (
                f"{g.algorithm}: {GRAPH_ALGORITHMS[g.algorithm]}; {g.rounds} rounds of "
                f"{g.aggregate} message passing, {g.nodes}-node graphs (tested on "
                f"{g.test_nodes}), p = {g.edge_prob:g}"
            )
        if self.dataset is not None:
            d = self.dataset
            label = f", label {d.label}" if d.label else ""
            on = f" of {d.feature}" if d.feature else ""
            return f"{d.name}{label}; OOD: {d.shift} {d.amount:g}{on}"
        assert self.target is not None
        if self.sets is not None:
            return f"{self.sets.aggregate} of {self.target.source} over a set of {self.sets.size}"
        return self.target.source

    def digest(self) -> str:
        """Returns the sha256 of all that affects this task's numbers (not its name or family)."""
        if not self._digest:
            numbers = {k: v for k, v in self.to_dict().items() if k not in ("name", "family")}
            # A frozen record: set once, from its own fields, which never change.
            object.__setattr__(
                self, "_digest", sha256_json({"data_version": DATA_VERSION, **numbers})
            )
        return self._digest

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict from which `Task.from_dict` rebuilds this task."""
        d: dict[str, Any] = {"name": self.name, "family": self.family}
        if self.target is not None:
            d["target"] = self.target.source
        d |= {
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
        if self.graph is not None:
            d["graph"] = asdict(self.graph)
        if self.dataset is not None:
            d["dataset"] = asdict(self.dataset)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        """Returns the task `d` came from via `to_dict` (trusted: only the target is re-checked)."""
        train, test = (tuple((float(lo), float(hi)) for lo, hi in d[k]) for k in ("train", "test"))
        variables = tuple(str(v) for v in d["variables"])
        target = parse_expression(d["target"]) if "target" in d else None
        settings = Settings(**d["settings"])
        sets = None
        if "aggregate" in d:
            sets = SetSpec(str(d["aggregate"]), int(d["size"]), int(d["test_size"]))
        graph = GraphSpec(**d["graph"]) if "graph" in d else None
        dataset = DatasetSpec(**d["dataset"]) if "dataset" in d else None
        kind = str(d.get("kind", KINDS[0]))
        return cls(
            d["name"],
            d["family"],
            target,
            variables,
            train,
            test,
            settings,
            kind,
            sets,
            graph,
            dataset,
        )


@dataclass(frozen=True, slots=True)
class Lab:
    """A loaded tasks file: its tasks and the lab-wide settings.

    Attributes:
        path: the file.  tasks: in file order.  reference: activation the ratios are taken
        against.  fitness: one of FITNESS_KINDS.  max_cost: admission FLOP budget relative to
        GELU.  timeout: seconds per candidate in the worker.  probe: activation probe range.
        cascade: how `minact evolve` screens candidates on part of the tasks first (None:
        every candidate trains on every task); it changes no score, so no digest holds it.
    """

    path: Path
    tasks: tuple[Task, ...]
    reference: str = "relu"
    fitness: str = "mean_log_ratio"
    max_cost: float = 16.0
    timeout: float = 120.0
    probe: tuple[float, float] = (-10.0, 10.0)
    cascade: Cascade | None = None

    def digest(self) -> str:
        """Returns the sha256 of the lab-wide settings that affect scores (not timeout, fitness)."""
        return sha256_json({k: self.to_dict()[k] for k in ("reference", "max_cost", "probe")})

    def with_seeds(self, seeds: int) -> Lab:
        """Returns this lab with `seeds` networks per task (each task's digest, and so its
        cache key, changes with it: results with other seed counts are never mixed)."""
        tasks = tuple(replace(t, settings=replace(t.settings, seeds=seeds)) for t in self.tasks)
        return replace(self, tasks=tasks)

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
        cascade = self.cascade.to_dict() if self.cascade is not None else None
        probe = list(self.probe)
        return {"path": str(self.path), "tasks": tasks, "probe": probe, "cascade": cascade, **rest}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lab:
        """Returns the lab `d` came from via `to_dict` (trusted input)."""
        lo, hi = d["probe"]
        tasks = tuple(Task.from_dict(t) for t in d["tasks"])
        rest = {k: d[k] for k in ("reference", "fitness", "max_cost", "timeout")}
        cascade = Cascade(**d["cascade"]) if d.get("cascade") else None
        return cls(
            path=Path(d["path"]), tasks=tasks, probe=(float(lo), float(hi)), cascade=cascade, **rest
        )


def sha256_json(payload: object) -> str:
    """Returns the sha256 hex of `payload`'s canonical JSON."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()
