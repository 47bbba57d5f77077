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

__all__ = [
    "FloatArray",
    "TargetError",
    "TaskData",
    "check_edges",
    "check_poles",
    "ood_fraction",
    "sample",
]

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
    for label, x, y in (
        ("training box", x_train, y_train),
        ("training box", x_id, y_id),
        ("OOD region", x_ood, y_ood),
    ):
        if not np.all(np.isfinite(y)):
            i = int(np.argmax(~np.isfinite(y)))
            at = _at(task, x[i]) if task.sets is None else f"set #{i + 1} of the sampled sets"
            raise TargetError(
                f"is not finite on the {label}: {y[i]} at {at} (a sampled point); choose "
                f"boxes without it or rewrite the target"
            )
    if task.kind == "classification":
        share = float(np.mean(y_train > 0))
        if share in (0.0, 1.0):
            raise TargetError(f"gives labels that are all {share:.0f} on the training box")
        labels = [(y > 0).astype(np.float64) for y in (y_train, y_id, y_ood)]
        return TaskData(x_train, labels[0], x_id, labels[1], x_ood, labels[2], 0.0, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):  # x * 1e200: std inf, every y 0
        mean, std = float(np.mean(y_train)), float(np.std(y_train))
    if not (math.isfinite(mean) and math.isfinite(std)):
        big = f"reaches {np.max(np.abs(y_train)):.3g} on the training points: too large"
        raise TargetError(f"{big} to standardise (its variance overflows); rescale the target")
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
        raise TargetError(
            f"is not finite at {_at(task, point)} on the {_region(task, point)} (e.g. a "
            f"division by zero or the log of 0 there): choose boxes without it or rewrite the "
            f"target"
        )


# The pole check (check_poles) looks along lines parallel to the axes: one line of
# POLE_LINE_POINTS_1D points for a target of one variable, else lines of LINE_POINTS points,
# MAX_POLE_POINTS points in all (under 1 ms per task on a 2-core CPU). It zooms into at most
# MAX_SPIKES local maxima of |y - c| along a line (c: the median of y on the lines), the
# sharpest, each at least SHARPNESS times |y - c| two points away on either side (and the
# median |y - c|), ZOOM_POINTS points a round, down to float resolution. A pole of order p
# (1/|x - a|^p) is that sharp: its nearest grid point lies within half a cell of it, the
# points two away at least 1.5 cells, a ratio of at least 3^p (1.5 for p = 0.37); a target
# smooth at the grid's scale is not (sin(5*x): 1.2 with 65 points on [-2, 2]).
POLE_LINE_POINTS_1D = 4097
LINE_POINTS = 65
MAX_POLE_POINTS = 1 << 12
SHARPNESS = 1.5
MAX_SPIKES = 32
ZOOM_POINTS = 65
MAX_ZOOM_ROUNDS = 60
# A zoomed local maximum is a pole if its peak |y - c| exceeds POLE_GROWTH times the largest
# |y - c| on the rest of its line (all but the two grid cells around it; at least the median
# |y - c| on the lines). Zoomed to float resolution, a pole of order p grows by about
# (cell / 1e-16)^p over the grid's values two cells away, 1e13 for 1/(x - a) and 1e6 for
# 1/sqrt(|x - a|); a target smooth at the grid's scale (cells of 0.001 for one variable, 0.06
# for more on [-2, 2]) by a factor near 1, even where it grows fastest (x**5 by 1.3, exp(5*x)
# by 1.9). 1e3, the bound of a standardised OOD value (loader.MAX_OOD_SCALE), lies between
# them: with SHARPNESS, it catches every pole of order 0.37 or more, and a spike far narrower
# than a cell (1/(x**2 + 1e-12), hit by the grid), which the sampled points would miss or meet
# as a few points that dominate the loss. Weaker poles (log|x - a|: a few tens at float
# resolution) do not dominate a loss; they pass unless a line or the zoom meets their
# non-finite point.
POLE_GROWTH = 1e3


def check_poles(task: Task, *, bounded: bool = True) -> None:
    """Raises TargetError if the target is not finite somewhere in its test box, or, when
    `bounded`, grows without bound near a point of it (a pole).

    The sampled points and check_edges's grid miss a pole strictly inside the boxes, as of
    1/(x - 0.3) or tan(x) on [-2, 2]: the sampled values near it are finite but huge, and
    dominate the loss. This check evaluates the target along lines parallel to each axis
    through the test box (which holds the train box) and zooms into the sharp local maxima
    of |y - median| along a line, down to float resolution, refusing a non-finite value met on
    the way or a peak beyond POLE_GROWTH times the rest of its line (the constants above say
    why these bounds). Classification targets pass `bounded=False`: only their sign counts.
    [[family]] targets are not checked: the generators draw finite-everywhere shapes.
    """
    if task.target is None or not task.variables:
        return
    points = _lines(task)  # (lines, points, d)
    y = _evaluate(task, points)
    _refuse_nonfinite(task, points, y)
    if not bounded:
        return
    c = float(np.median(y))
    deviation = np.abs(y - c)
    spikes = _spikes(deviation)
    if spikes is None:
        return
    line, lo, hi = spikes
    axis = np.argmax(points[line, lo] != points[line, hi], axis=1)  # the line's direction
    peak, at = _zoom(task, c, points[line, lo], points[line, hi], axis)
    # Each spike's line without any spike's cells: two poles the grid meets exactly hid each other
    cells, spiked = np.arange(y.shape[1]), np.zeros(y.shape, dtype=bool)
    np.logical_or.at(spiked, line, (cells >= lo[:, None]) & (cells <= hi[:, None]))
    rest = np.where(spiked[line], 0.0, deviation[line])
    scale = np.maximum(rest.max(axis=1), float(np.median(deviation)))
    growth = np.abs(peak - c) / np.where(scale > 0, scale, np.inf)
    k = int(np.argmax(growth))
    if growth[k] > POLE_GROWTH:
        raise TargetError(
            f"grows without bound near {_at(task, at[k])} on the {_region(task, at[k])} (value "
            f"{peak[k]:.3g} there, while the rest of a line through it stays within "
            f"{scale[k]:.3g} of the median {c:.3g}): a pole inside the boxes would dominate the "
            f"loss; choose boxes without it or rewrite the target"
        )


def _lines(task: Task) -> FloatArray:
    """Returns points on lines parallel to each axis through the test box, (lines, K, d).

    One variable: one line. More: for each axis, lines through a grid of the other variables
    (the same number of values each, from bound to bound) or, where that grid would have
    fewer than 3 values a variable, through points of a fixed random sequence of the box.
    """
    d = len(task.variables)
    k = POLE_LINE_POINTS_1D if d == 1 else LINE_POINTS
    lo, hi = np.array(task.test, dtype=np.float64).T
    n_bases = max(1, MAX_POLE_POINTS // (d * k))
    per_axis = int(n_bases ** (1 / (d - 1)) + 1e-9) if d > 1 else 1
    if per_axis >= 3:
        grids = np.meshgrid(*np.linspace(lo, hi, per_axis).T, indexing="ij")
        bases = np.stack(grids, axis=-1).reshape(-1, d)  # per_axis^d points of the box
    else:
        bases = _uniform(np.random.default_rng(0), task.test, n_bases)
    lines = []
    for i in range(d):
        # The grid's points that differ only in variable i give one line: keep one of each.
        own = bases[bases[:, i] == bases[0, i]] if per_axis >= 3 else bases
        line = np.repeat(own[:, None, :], k, axis=1)
        line[:, :, i] = np.linspace(lo[i], hi[i], k)
        lines.append(line)
    return np.concatenate(lines)


def _evaluate(task: Task, points: FloatArray) -> FloatArray:
    """Returns the raw target (for a set task, one element's) at `points` (..., d)."""
    assert task.target is not None
    try:
        return task.target.evaluate({v: points[..., i] for i, v in enumerate(task.variables)})
    except ExpressionError as exc:
        raise TargetError(str(exc)) from None


def _refuse_nonfinite(task: Task, points: FloatArray, y: FloatArray) -> None:
    """Raises TargetError naming the first of `points` where `y` is not finite, if any."""
    bad = ~np.isfinite(y)
    if bool(bad.any()):
        index = np.unravel_index(int(np.argmax(bad)), y.shape)
        point = points[index]
        raise TargetError(
            f"is not finite at {_at(task, point)} on the {_region(task, point)} (value "
            f"{y[index]}; a pole or a domain error inside the boxes): choose boxes without it "
            f"or rewrite the target"
        )


def _spikes(a: FloatArray) -> tuple[npt.NDArray[np.intp], ...] | None:
    """Returns (line, lo, hi) index arrays bracketing the sharp local maxima of `a` (lines, K;
    a deviation, at least 0) along each line (SHARPNESS), the MAX_SPIKES sharpest; None if
    there are none."""
    padded = np.pad(a, ((0, 0), (2, 2)), constant_values=-np.inf)  # (lines, K + 4)
    left, right = padded[:, 1:-3], padded[:, 3:-1]
    # At least its neighbours, and above one of them (not the padding of an end point).
    above = ((a > left) & (left > -np.inf)) | ((a > right) & (right > -np.inf))
    peak = (a >= left) & (a >= right) & above
    # |y - c| two points away on either side, or the lines' median |y - c| if larger: a spike
    # stands out from the target's typical values too (not from a zero nearby).
    away = np.maximum(np.maximum(padded[:, :-4], padded[:, 4:]), np.median(a))
    with np.errstate(all="ignore"):
        sharp = np.where(away > 0, a / away, np.inf)
    line, j = np.nonzero(peak & (sharp >= SHARPNESS))
    if len(line) == 0:
        return None
    keep = np.argsort(sharp[line, j], kind="stable")[-MAX_SPIKES:]
    line, j = line[keep], j[keep]
    return line, np.maximum(j - 1, 0), np.minimum(j + 1, a.shape[1] - 1)


def _zoom(
    task: Task, c: float, lo: FloatArray, hi: FloatArray, axis: npt.NDArray[np.intp]
) -> tuple[FloatArray, FloatArray]:
    """Returns the y of largest |y - c| found (n,) and where (n, d), zooming from each bracket
    lo..hi (n, d; they differ along `axis` only) into its largest |y - c| until its last bracket
    holds no float that was not evaluated (or, near 0, is 1e-18 of the box wide). Raises
    TargetError at a non-finite value."""
    n = len(lo)
    rows = np.arange(n)
    left, right = lo[rows, axis], hi[rows, axis]
    width = np.array([h - w for w, h in task.test])[axis]
    value, at = np.zeros(n), lo.copy()
    best = np.full(n, -1.0)
    fraction = np.linspace(0.0, 1.0, ZOOM_POINTS)
    active = rows
    for _ in range(MAX_ZOOM_ROUNDS):
        t = left[active, None] + (right - left)[active, None] * fraction  # (active, points)
        points = np.repeat(lo[active, None, :], ZOOM_POINTS, axis=1)
        points[np.arange(len(active)), :, axis[active]] = t
        y = _evaluate(task, points)
        _refuse_nonfinite(task, points, y)
        k = np.argmax(np.abs(y - c), axis=1)
        found = y[np.arange(len(active)), k]
        better = np.abs(found - c) > best[active]
        changed = active[better]
        best[changed], value[changed] = np.abs(found[better] - c), found[better]
        at[changed] = points[np.arange(len(active)), k][better]
        # Done: a bracket within ZOOM_POINTS - 1 floats (every float in it was evaluated).
        resolution = np.maximum(
            np.spacing(np.maximum(np.abs(left[active]), np.abs(right[active]))),
            1e-18 * width[active],
        )
        done = right[active] - left[active] <= (ZOOM_POINTS - 1) * resolution
        left[active] = t[np.arange(len(active)), np.maximum(k - 1, 0)]
        right[active] = t[np.arange(len(active)), np.minimum(k + 1, ZOOM_POINTS - 1)]
        active = active[~done]
        if len(active) == 0:
            break
    return value, at


def _at(task: Task, point: FloatArray) -> str:
    """Returns "x1 = 0.3, x2 = -2" for a point of the task's inputs."""
    return ", ".join(f"{v} = {c:g}" for v, c in zip(task.variables, point, strict=True))


def _region(task: Task, point: FloatArray) -> str:
    """Returns "training box" or "OOD region": where `point` lies."""
    inside = all(lo <= c <= hi for c, (lo, hi) in zip(point, task.train, strict=True))
    return "training box" if inside else "OOD region"


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
