"""Dataset tasks' data: real data bundled with scikit-learn, with a documented OOD shift.

Nothing is downloaded: the datasets ship inside scikit-learn (an optional dependency,
`pip install 'minact[suites]'`), which is imported only when a dataset task is sampled.
The rows are split by a permutation drawn from the task's seed, so the data is a
deterministic function of the task. Shifts:

- "translate" (digits): the OOD images are other images moved by `amount` pixels up, down,
  left or right (one direction per image, drawn), with zeros shifted in.
- "contrast" (digits): the OOD images are other images with their intensity times `amount`
  (pixels are scaled to [0, 1] for training, so 1.5 takes inputs beyond the training range).
- "top" (tables): the OOD rows are the top `amount` fraction of the rows by `feature`
  (e.g. the 20% with the highest BMI); the model trains and is tested ID on the rest.

Digit images are scaled to [0, 1]; table features are standardised with the training rows'
mean and std. Regression targets are standardised with the training statistics; labels are
0/1. n_train and n_test are upper bounds: a small table gives what it has (the ID set has as
many rows as the OOD set, at most n_test; the rest up to n_train trains).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping

import numpy as np

from minact.errors import ConfigError
from minact.lab.sampling import FloatArray, TargetError, TaskData
from minact.lab.task import DatasetSpec, Task

__all__ = ["DATASETS", "INSTALL_HINT", "LABELS", "SHIFTS", "require_sklearn", "sample_dataset"]

# dataset -> the task kind it makes (digits and breast_cancer are yes/no labels)
DATASETS: Mapping[str, str] = {
    "digits": "classification",
    "diabetes": "regression",
    "breast_cancer": "classification",
}
# dataset -> label rules (what counts as class 1); "" where the dataset has one target
LABELS: Mapping[str, tuple[str, ...]] = {
    "digits": ("even", "low"),  # the digit is even; the digit is below 5
    "diabetes": ("",),
    "breast_cancer": ("",),  # 1 = benign, as scikit-learn codes it
}
SHIFTS: Mapping[str, tuple[str, ...]] = {
    "digits": ("translate", "contrast"),
    "diabetes": ("top",),
    "breast_cancer": ("top",),
}
INSTALL_HINT = "pip install 'minact[suites]' (or: pip install scikit-learn)"


def require_sklearn(what: str) -> None:
    """Raises ConfigError saying how to install scikit-learn if it is not importable."""
    if importlib.util.find_spec("sklearn") is None:
        raise ConfigError(f"{what} needs scikit-learn, which is not installed: {INSTALL_HINT}")


@functools.lru_cache(maxsize=4)
def _load(name: str) -> tuple[FloatArray, FloatArray, tuple[str, ...]]:
    """Returns (x, y, feature names) of a bundled dataset, as float64 (read-only arrays)."""
    require_sklearn(f"dataset {name!r}")
    from sklearn import datasets  # optional: minact[suites]

    loaders = {
        "digits": datasets.load_digits,
        "diabetes": datasets.load_diabetes,
        "breast_cancer": datasets.load_breast_cancer,
    }
    bunch = loaders[name]()
    x, y = np.array(bunch.data, dtype=np.float64), np.array(bunch.target, dtype=np.float64)
    x.flags.writeable = y.flags.writeable = False
    names = tuple(str(f) for f in getattr(bunch, "feature_names", ()))
    return x, y, names


def sample_dataset(task: Task, rng: np.random.Generator) -> TaskData:
    """Returns a dataset task's train, ID and OOD rows; raises TargetError for a bad spec."""
    spec = task.dataset
    assert spec is not None
    s = task.settings
    x, y, names = _load(spec.name)
    if spec.name == "digits":
        x = x / 16.0
        y = ((y % 2 == 0) if spec.label == "even" else (y < 5)).astype(np.float64)
        order = rng.permutation(len(x))
        n_train = min(s.n_train, len(x) // 2)
        n_test = min(s.n_test, (len(x) - n_train) // 2)
        train, id_, ood = np.split(order[: n_train + 2 * n_test], [n_train, n_train + n_test])
        x_ood = x[ood] * spec.amount if spec.shift == "contrast" else _translate(x[ood], rng, spec)
        x_train, x_id = x[train], x[id_]
    else:
        if spec.feature not in names:
            raise TargetError(f"is not a feature of {spec.name!r}; known: {', '.join(names)}")
        column = x[:, names.index(spec.feature)]
        k = max(1, round(spec.amount * len(x)))
        by_feature = np.argsort(column, kind="stable")  # ties keep row order: deterministic
        ood, rest = by_feature[len(x) - k :], rng.permutation(by_feature[: len(x) - k])
        n_test = min(s.n_test, k, len(rest) // 2)
        id_, train = rest[:n_test], rest[n_test : n_test + s.n_train]
        mean, std = x[train].mean(axis=0), x[train].std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        x_train, x_id, x_ood = ((x[rows] - mean) / std for rows in (train, id_, ood))
    y_train, y_id, y_ood = (np.asarray(y[rows], dtype=np.float64) for rows in (train, id_, ood))
    if task.kind == "classification":
        share = float(np.mean(y_train))
        if share in (0.0, 1.0):
            raise TargetError(f"gives labels that are all {share:.0f} in the training rows")
        return TaskData(x_train, y_train, x_id, y_id, x_ood, y_ood, 0.0, 1.0)
    mean_y, std_y = float(np.mean(y_train)), float(np.std(y_train))
    y_train, y_id, y_ood = ((v - mean_y) / std_y for v in (y_train, y_id, y_ood))
    if s.noise > 0:
        y_train = y_train + s.noise * rng.standard_normal(len(y_train))
    return TaskData(x_train, y_train, x_id, y_id, x_ood, y_ood, mean_y, std_y)


def _translate(images: FloatArray, rng: np.random.Generator, spec: DatasetSpec) -> FloatArray:
    """Returns 8x8 images (rows of 64) each moved `amount` pixels in a drawn direction."""
    shift = int(spec.amount)
    grid = images.reshape(-1, 8, 8)
    out = np.zeros_like(grid)
    directions = rng.integers(0, 4, size=len(grid))  # up, down, left, right
    for d, (dy, dx) in enumerate(((-shift, 0), (shift, 0), (0, -shift), (0, shift))):
        rows = directions == d
        src = grid[rows]
        moved = np.zeros_like(src)
        (ys, yd), (xs, xd) = _slices(dy), _slices(dx)
        moved[:, yd, xd] = src[:, ys, xs]
        out[rows] = moved
    flat: FloatArray = out.reshape(-1, 64)
    return flat


def _slices(step: int) -> tuple[slice, slice]:
    """Returns (source, destination) slices of an 8-pixel axis moved by `step` pixels."""
    if step < 0:
        return slice(-step, None), slice(None, step)
    return slice(None, 8 - step), slice(step, None)
