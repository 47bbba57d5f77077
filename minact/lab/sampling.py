"""Each task's synthetic data: deterministic points in the train box and the OOD region.

The data of a task depends only on what its digest covers (never on its name), drawn by a
generator seeded from a hash of those fields, so the same task gives the same arrays on
any machine. Targets are standardised with the training statistics only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from minact.lab.expression import ExpressionError
from minact.lab.task import AGGREGATES, Box, SetSpec, Task, sha256_json

__all__ = ["FloatArray", "TargetError", "TaskData", "check_edges", "ood_fraction", "sample"]

FloatArray = npt.NDArray[np.float64]


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
    Graph tasks (graphs.py): each x is (graphs, nodes, d), y (graphs, nodes) one target per
    node, and e_train, e_id, e_ood (graphs, nodes, nodes) the edge weights (0: no edge).
    """

    x_train: FloatArray
    y_train: FloatArray
    x_id: FloatArray
    y_id: FloatArray
    x_ood: FloatArray
    y_ood: FloatArray
    y_mean: float
    y_std: float
    e_train: FloatArray | None = None
    e_id: FloatArray | None = None
    e_ood: FloatArray | None = None


class TargetError(ValueError):
    """A target that is not finite or constant on its sampled data (reason in the message)."""


def ood_fraction(test: Box, train: Box) -> float:
    """Returns the share of the test box's volume that lies outside the train box."""
    inside = math.prod((h - lo) / (th - tl) for (lo, h), (tl, th) in zip(train, test, strict=True))
    return 1.0 - inside


def sample(task: Task) -> TaskData:
    """Returns the task's deterministic data; raises TargetError if it is not finite or constant."""
    s = task.settings
    seed_fields = {k: v for k, v in task.to_dict().items() if k not in ("name", "family")}
    seed_fields["settings"] = [s.data_seed, s.n_train, s.n_test, s.noise]
    # 128 bits of a hash: the same task gives the same arrays on any machine.
    rng = np.random.default_rng(int(sha256_json(seed_fields)[:32], 16))
    # Imported here: each needs this module's records, and datasets needs scikit-learn.
    if task.graph is not None:
        from minact.lab.graphs import sample_graphs

        return sample_graphs(task, rng)
    if task.dataset is not None:
        from minact.lab.datasets import sample_dataset

        return sample_dataset(task, rng)
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


# The edge check's grid has at most this many points (5 values per variable: 5 variables).
MAX_EDGE_POINTS = 5**5


def check_edges(task: Task) -> None:
    """Raises TargetError if the target is not finite at a special point of its boxes.

    Sampled points miss the points where targets such as 1/x or log(x) are infinite: the
    grid of each variable's bounds (train and test) and 0 where the test box holds it is
    checked too. A target of more variables than the grid allows is checked on its samples.
    """
    if task.target is None or not task.variables:
        return
    values = []
    for (lo, hi), (tlo, thi) in zip(task.train, task.test, strict=True):
        values.append(sorted({lo, hi, tlo, thi} | ({0.0} if tlo <= 0.0 <= thi else set())))
    if math.prod(len(v) for v in values) > MAX_EDGE_POINTS:
        return
    grid = np.stack(np.meshgrid(*values, indexing="ij"), axis=-1).reshape(-1, len(values))
    y = task.target.evaluate({v: grid[:, i] for i, v in enumerate(task.variables)})
    bad = ~np.isfinite(y)
    if bool(bad.any()):
        point = grid[int(np.argmax(bad))]
        inside = all(lo <= c <= hi for c, (lo, hi) in zip(point, task.train, strict=True))
        at = ", ".join(f"{v} = {c:g}" for v, c in zip(task.variables, point, strict=True))
        region = "training box" if inside else "OOD region"
        raise TargetError(
            f"is not finite at {at} on the {region} (e.g. a division by zero or the log of "
            f"0 there): choose boxes without it or rewrite the target"
        )


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
    assert task.target is not None  # graph and dataset tasks are sampled elsewhere
    try:
        y = task.target.evaluate({v: x[..., i] for i, v in enumerate(task.variables)})
    except ExpressionError as exc:
        raise TargetError(str(exc)) from None
    if task.sets is None:
        return y
    with np.errstate(all="ignore"):  # inf - inf becomes nan: the caller checks finiteness
        pooled: FloatArray = AGGREGATES[task.sets.aggregate](y, axis=1)  # (sets,)
    return pooled
