"""How much a ranking depends on the tasks behind it: rank agreement from per-task scores.

Everything works on a matrix of per-task scores, candidates x tasks (lower is better, as the
log-ratios are), and ranks candidates by their mean over a subset of the tasks, which is
the lab's fitness restricted to those tasks.

- split-half: Kendall tau between the rankings on two random disjoint halves of the tasks,
  over many splits (median and 5-95%). High means the ranking does not hinge on which tasks
  the lab happens to hold; a lab of twice the half size agrees with a fresh draw of the same
  size at least as well.
- leave one family out: per family, tau between the ranking on that family alone and on all
  other tasks. Low or negative means that family ranks the candidates its own way.
- cross agreement: tau between the rankings on two task sets (a lab and a fresh draw, or a
  lab and a transfer suite), with a bootstrap over the tasks of both.

Kendall's tau-b counts tied pairs as neither concordant nor discordant and corrects for ties,
so equal fitness (two names of the same behaviour) is not read as agreement. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MIN_CANDIDATES", "MIN_TASKS", "LabAgreement", "Spread", "cross_agreement"]
__all__ += ["family_agreement", "kendall_tau", "lab_agreement", "score_matrix", "spearman_rho"]
__all__ += ["MIN_INTERVAL_TASKS", "fitness_agreement", "shared_tasks", "split_half"]
__all__ += ["NAMED_TASKS", "task_names"]

Matrix = npt.NDArray[np.float64]  # (candidates, tasks), lower is better
# Below these, a split-half tau is too coarse to mean anything (5 candidates: tau moves in 0.2
# steps; 6 tasks: halves of 3).
MIN_CANDIDATES = 5
MIN_TASKS = 6
# Resampling one or two tasks gives one or three distinct draws: an "interval" that looks
# precise and measures nothing. Below this, rescore gives the agreement without one.
MIN_INTERVAL_TASKS = 3
STABLE, WEAK = 0.6, 0.3  # median split-half tau: stable at or above STABLE, unstable below WEAK
AGAINST = -0.1  # a family whose tau against the other tasks is below this ranks against them
NAMED_TASKS = 5  # shared tasks a sentence names; the rest are counted


@dataclass(frozen=True, slots=True)
class Spread:
    """A statistic over resamples: its median and 5th and 95th percentiles."""

    median: float
    lo: float
    hi: float
    samples: int

    def text(self) -> str:
        """Returns e.g. "0.62 (5-95%: 0.41..0.78)"."""
        return f"{self.median:.2f} (5-95%: {self.lo:.2f}..{self.hi:.2f})"


def kendall_tau(a: Sequence[float] | Matrix, b: Sequence[float] | Matrix) -> float:
    """Returns Kendall's tau-b of two equally long score lists (nan if either is constant)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"kendall_tau needs two 1-D lists of one length, got {x.shape}, {y.shape}")
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    untied_x, untied_y = np.count_nonzero(dx), np.count_nonzero(dy)
    if untied_x == 0 or untied_y == 0:
        return math.nan
    return float(np.sum(dx * dy) / math.sqrt(untied_x * untied_y))


def _ranks(x: Matrix) -> Matrix:
    """Returns 1-based ranks, ties sharing their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman_rho(a: Sequence[float] | Matrix, b: Sequence[float] | Matrix) -> float:
    """Returns Spearman's rank correlation (average ranks for ties; nan if either is constant)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"spearman_rho needs two 1-D lists of one length, got {x.shape}, {y.shape}"
        )
    rx, ry = _ranks(x) - (len(x) + 1) / 2, _ranks(y) - (len(y) + 1) / 2
    norm = math.sqrt(float(np.sum(rx * rx) * np.sum(ry * ry)))
    return float(np.sum(rx * ry) / norm) if norm > 0 else math.nan


def _spread(values: Sequence[float]) -> Spread:
    finite = np.array([v for v in values if math.isfinite(v)])
    if finite.size == 0:
        return Spread(math.nan, math.nan, math.nan, 0)
    lo, median, hi = np.percentile(finite, [5, 50, 95])
    return Spread(float(median), float(lo), float(hi), int(finite.size))


def split_half(
    scores: Matrix, *, splits: int = 200, seed: int = 0, size: int | None = None
) -> Spread:
    """Returns tau between the rankings on two disjoint random sets of `size` tasks each
    (default: half the tasks), over `splits` random splits."""
    scores = np.asarray(scores, dtype=np.float64)
    tasks = scores.shape[1]
    size = tasks // 2 if size is None else size
    if size < 1 or 2 * size > tasks:
        raise ValueError(f"cannot take two disjoint sets of {size} tasks out of {tasks}")
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(splits):
        order = rng.permutation(tasks)
        a, b = order[:size], order[size : 2 * size]
        taus.append(kendall_tau(scores[:, a].mean(axis=1), scores[:, b].mean(axis=1)))
    return _spread(taus)


def family_agreement(scores: Matrix, families: Sequence[str]) -> dict[str, float]:
    """Returns, per family, tau between the ranking on its tasks and on all the others."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(families)
    out: dict[str, float] = {}
    for family in dict.fromkeys(families):
        inside = labels == family
        if inside.all():
            continue
        out[family] = kendall_tau(scores[:, inside].mean(axis=1), scores[:, ~inside].mean(axis=1))
    return out


def cross_agreement(
    first: Matrix, second: Matrix, *, resamples: int = 200, seed: int = 0
) -> tuple[float, Spread]:
    """Returns tau between the rankings on two task sets (same candidates, same row order),
    and its spread when the tasks of both are resampled with replacement."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    tau = kendall_tau(first.mean(axis=1), second.mean(axis=1))
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(resamples):
        a = rng.integers(0, first.shape[1], first.shape[1])
        b = rng.integers(0, second.shape[1], second.shape[1])
        taus.append(kendall_tau(first[:, a].mean(axis=1), second[:, b].mean(axis=1)))
    return tau, _spread(taus)


def fitness_agreement(
    original: Sequence[float], new: Matrix, *, resamples: int = 1000, seed: int = 0
) -> dict[str, Any] | None:
    """Returns the rank agreement between candidates' fitness on the lab they came from and
    their per-task scores on another (same row order): Kendall tau and Spearman rho of the
    original fitness against the mean over the new tasks, each with its spread when the new
    tasks are resampled with replacement (the original fitness is held fixed). None with
    fewer than 3 candidates or no task; the spreads are null (and `interval` says why) with
    fewer than MIN_INTERVAL_TASKS tasks."""
    x = np.asarray(original, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    if x.size < 3 or new.ndim != 2 or new.shape[0] != x.size or new.shape[1] == 0:
        return None
    rng = np.random.default_rng(seed)
    taus: list[float] = []
    rhos: list[float] = []
    few = new.shape[1] < MIN_INTERVAL_TASKS
    for _ in range(0 if few else resamples):
        y = new[:, rng.integers(0, new.shape[1], new.shape[1])].mean(axis=1)
        taus.append(kendall_tau(x, y))
        rhos.append(spearman_rho(x, y))
    y = new.mean(axis=1)

    def stat(value: float, spread: Spread) -> dict[str, float | None]:
        def num(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {"value": num(value), "median": num(spread.median), "lo": num(spread.lo)} | {
            "hi": num(spread.hi)
        }

    return {
        "candidates": int(x.size),
        "tasks": int(new.shape[1]),
        "kendall_tau": stat(kendall_tau(x, y), _spread(taus)),
        "spearman_rho": stat(spearman_rho(x, y), _spread(rhos)),
        "interval": f"none: fewer than {MIN_INTERVAL_TASKS} tasks to resample"
        if few
        else "5-95% over tasks resampled with replacement",
        "resamples": resamples,
        "seed": seed,
    }


def shared_tasks(tasks: Sequence[Mapping[str, Any]], home: Collection[str]) -> list[str]:
    """Returns the names of the tasks (a ranking's `tasks` entries) that are tasks of another
    lab whose task digests are `home`: the same task is the same digest (its data, target and
    settings, seeds included), whatever either lab calls it; a name alone makes no task the
    same."""
    return [str(t["name"]) for t in tasks if t.get("digest") in home]


def task_names(names: Sequence[str]) -> str:
    """Returns up to NAMED_TASKS task names, comma-separated, with how many more there are."""
    shown = ", ".join(str(n) for n in names[:NAMED_TASKS])
    return shown + (f" and {len(names) - NAMED_TASKS} more" if len(names) > NAMED_TASKS else "")


def score_matrix(
    candidates: Sequence[Mapping[str, Any]], key: str = "log_ratio"
) -> tuple[list[str], list[str], Matrix]:
    """Returns (names, tasks, matrix) of the ranking rows that have `key` on every task.

    `candidates` are ranking.json rows ({"name", "status", "tasks": {task: {key: ...}}});
    failed rows, and tasks that a row lacks, are left out.
    """
    rows = [c for c in candidates if c.get("status") == "ok" and c.get("tasks")]
    if not rows:
        return [], [], np.zeros((0, 0))
    tasks = [t for t in rows[0]["tasks"] if all(_value(c, t, key) is not None for c in rows)]
    matrix = np.array([[_value(c, t, key) for t in tasks] for c in rows], dtype=np.float64)
    return [str(c["name"]) for c in rows], tasks, matrix.reshape(len(rows), len(tasks))


def _value(row: Mapping[str, Any], task: str, key: str) -> float | None:
    value = (row["tasks"].get(task) or {}).get(key)
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class LabAgreement:
    """A lab's self-agreement on one set of candidates.

    Attributes:
        candidates, tasks: how many went in.  split_half: None when there are too few
        candidates or tasks, or when they tie on every half (see `verdict`).  families:
        leave-one-family-out tau per family.  verdict: one plain sentence for users.
    """

    candidates: int
    tasks: int
    split_half: Spread | None
    families: dict[str, float]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict (nan as None)."""
        sh = self.split_half
        return {
            "candidates": self.candidates,
            "tasks": self.tasks,
            "split_half": None if sh is None else {"median": sh.median, "lo": sh.lo, "hi": sh.hi},
            "families": {f: (t if math.isfinite(t) else None) for f, t in self.families.items()},
            "verdict": self.verdict,
        }


def _count(n: int, noun: str) -> str:
    """Returns "1 candidate", "4 candidates": a score of one activation is common."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def lab_agreement(
    scores: Matrix, families: Sequence[str], *, splits: int = 200, seed: int = 0
) -> LabAgreement:
    """Returns the split-half and leave-one-family-out agreement of a lab, with a verdict."""
    scores = np.asarray(scores, dtype=np.float64)
    n, t = scores.shape if scores.ndim == 2 else (0, 0)
    if n < MIN_CANDIDATES or t < MIN_TASKS:
        verdict = (
            "not enough to measure how stable this ranking is "
            f"({_count(n, 'candidate')} and {_count(t, 'task')}; "
            f"needs at least {_count(MIN_CANDIDATES, 'candidate')} and {_count(MIN_TASKS, 'task')})"
        )
        return LabAgreement(n, t, None, {}, verdict)
    half = split_half(scores, splits=splits, seed=seed)
    if half.samples == 0:
        # Every half ties every candidate (equal behaviour, or equal scores): there is no
        # order to keep or to lose, and a tau of nan read as "unstable".
        verdict = (
            f"not measurable: the {n} candidates score alike on every half of the {t} tasks, "
            "so there is no order whose stability could be measured"
        )
        return LabAgreement(n, t, None, {}, verdict)
    by_family = family_agreement(scores, families) if len(set(families)) > 1 else {}
    halves = "two random halves" if t % 2 == 0 else f"two random disjoint sets of {t // 2}"
    words = f"{halves} of the {t} tasks rank the {n} candidates with Kendall tau"
    if half.median >= STABLE:
        verdict = f"stable: {words} {half.text()}"
    elif half.median >= WEAK:
        verdict = (
            f"only moderately stable: {words} {half.text()}; close ranks may swap on other tasks"
        )
    else:
        verdict = (
            f"unstable: {words} {half.text()}; which tasks the lab holds decides much of this "
            "ranking, so do not trust it beyond the clear gaps"
        )
    against = [f for f, tau in by_family.items() if math.isfinite(tau) and tau < AGAINST]
    if against:
        verdict += f"; the {', '.join(against)} tasks rank them against the rest"
    return LabAgreement(n, t, half, by_family, verdict)
