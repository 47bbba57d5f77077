"""Claims that survive noise: does a candidate beat the best baseline, beyond chance?

A candidate's fitness is the mean over tasks of a per-task measure (its log-ratio against the
reference; its OOD MSE under `fitness = "mean_ood_mse"`), so the difference between two
candidates' fitness is the mean over tasks of the per-task differences of that measure, and
the claim tests the very measure the ranking (and the pick of the best baseline) uses.
The comparison is paired: both were trained on the same tasks (same data, same network
seeds), and the per-task difference cancels what the task itself contributes. A bootstrap
over tasks (resampling them with replacement, a fixed seed so the interval is
reproducible) gives a 95% interval of the mean difference. Over few tasks the plain
percentile interval is too narrow (its "yes" comes 6-13% of the time at 3-8 tasks when nothing
differs, not 2.5%), so it is the *expanded* percentile interval (Hesterberg 2015, "What
teachers should know about the bootstrap"): percentiles moved out by the ratio of Student's t
to the normal quantile. Even so, the resampled means of a few tasks have short tails (its "yes"
still came 3.3-3.6% of the time at 6 tasks of normal noise, 3.5% of Laplace noise), so each
end reaches at least as far as Student's t interval, mean -/+ t * sd / sqrt(tasks): with both,
a "yes" came 2.2-2.6% of the time at 6, 8 and 12 tasks of normal noise and 1.7-2.3% of
heavier-tailed noise (bench/claims.py). No interval of a mean over few tasks holds its level
when a candidate is far worse on a few tasks and a little better on the rest (right-skewed
differences): at a mean difference of 0, such a "yes" came about 16% of the time at 6 tasks
and 7% at 100. The claim reads:

- "yes": the whole interval is below 0 (the candidate beats the best baseline),
- "no": the whole interval is above 0 (the best baseline beats it),
- "inconclusive": the interval holds 0.

A claim needs MIN_TASKS paired tasks: with five, a candidate better on all of them by chance
alone (1 in 32 when nothing differs) would already pass a 2.5% one-sided test, so no interval
over so few tasks can mean 95%.

Seeds enter through each task's median over seeds; more seeds per task (`evolve --confirm`,
`rescore --seeds`) make those medians, and so the claim, less noisy. A claim is per candidate:
the best of many candidates was picked on these very tasks, so its "yes" is optimistic (the
claim counts how many were `compared`); a held-out check (`evolve --validate`, `rescore`) is
the honest test of a pick. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from minact.numbers import number_text

__all__ = ["RESAMPLES", "Claim", "best_baseline", "claim_text", "claims", "expanded_tail"]
__all__ += ["MEASURES", "best_claim_sentence", "paired_claim", "picked_among", "selection_note"]

Row = Mapping[str, Any]  # a ranking.json candidate row

RESAMPLES = 2000
LEVEL = 0.95
MIN_TASKS = 6  # below this, "better on every task" happens by chance more than 2.5% of the time


@dataclass(frozen=True, slots=True)
class Claim:
    """A paired comparison of a candidate against a baseline over the tasks both were scored on.

    Attributes:
        against: the baseline's name.  difference: mean over tasks of the candidate's per-task
        measure (log-ratio, or OOD MSE under fitness "mean_ood_mse") minus the baseline's
        (negative: the candidate is better).  lo, hi: the 95% interval of that mean (the
        expanded bootstrap percentile interval, no narrower than Student's t interval).
        tasks: how many tasks were paired.  verdict: "yes", "no" or "inconclusive" (does
        the candidate beat the baseline?).  compared: how many new candidates the pick was
        made among on these tasks: those ranked, and those the evaluation cascade screened
        out on some of them (the claim of the best of them is optimistic: it was picked on
        these tasks).
    """

    against: str
    difference: float
    lo: float
    hi: float
    tasks: int
    verdict: str
    compared: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict (with the resampling settings, for reproducibility)."""
        return {
            "against": self.against,
            "difference": self.difference,
            "lo": self.lo,
            "hi": self.hi,
            "tasks": self.tasks,
            "verdict": self.verdict,
            "compared": self.compared,
            "level": LEVEL,
            "resamples": RESAMPLES,
        }


def _t_quantile(p: float, df: int) -> float:
    """Returns Student's t quantile (Cornish-Fisher expansion; within 1e-3 for df >= 4)."""
    z = NormalDist().inv_cdf(p)
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return float(z + sum(g / df ** (k + 1) for k, g in enumerate(terms)))


def expanded_tail(n: int) -> float:
    """Returns the tail (in percent) of the expanded percentile interval over n tasks: the
    normal tail at sqrt(n / (n - 1)) times Student's t quantile for LEVEL."""
    t = _t_quantile((1 + LEVEL) / 2, n - 1)
    return NormalDist().cdf(-math.sqrt(n / (n - 1)) * t) * 100


_SQUARABLE = (1e-150, 1e150)  # magnitudes whose squares and their sums are normal floats


def paired_claim(
    candidate: Sequence[float],
    baseline: Sequence[float],
    against: str,
    *,
    seed: int = 0,
    compared: int = 1,
) -> Claim | None:
    """Returns the claim from two equally long per-task score lists (lower is better), or
    None when fewer than MIN_TASKS tasks are paired or a score, the mean difference or an
    end of its interval is not finite. Lists of different lengths are a ValueError (numpy
    would pair every task with a one-element list's score)."""
    cand, base = np.asarray(candidate, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if cand.shape != base.shape:
        raise ValueError(f"per-task scores of different shapes: {cand.shape} and {base.shape}")
    diff = cand - base
    if diff.ndim != 1 or diff.size < MIN_TASKS or not np.isfinite(diff).all():
        return None
    # Differences past 1e150 (or within 1e-150 of 0) are scaled to 1 first: the sd squares
    # them, and an overflow said the interval was [-inf, inf] (ranking.json wrote -Infinity,
    # which is no JSON), an underflow that it was no wider than the bootstrap's. Others are
    # not scaled, so that their claims stay what they were to the last digit.
    n, most = int(diff.size), float(np.abs(diff).max())
    scale = most if most and not _SQUARABLE[0] < most < _SQUARABLE[1] else 1.0
    with np.errstate(over="ignore"):
        mean = float(diff.mean())
    if not math.isfinite(mean):  # a sum past a float's range: no number to claim about
        return None
    rng = np.random.default_rng(seed)
    means = (diff / scale)[rng.integers(0, n, (RESAMPLES, n))].mean(axis=1) * scale
    lo, hi = (float(v) for v in np.percentile(means, [expanded_tail(n), 100 - expanded_tail(n)]))
    # Over few tasks the resampled means' tails stay short even expanded (a "yes" 3.3% of
    # the time at 6 tasks of normal noise, not 2.5%): no end is nearer the mean than t's.
    sd = float((diff / scale).std(ddof=1)) * scale
    half = _t_quantile((1 + LEVEL) / 2, n - 1) * sd / math.sqrt(n)
    lo, hi = min(lo, mean - half), max(hi, mean + half)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # an end past a float's range
        return None
    verdict = "yes" if hi < 0 else "no" if lo > 0 else "inconclusive"
    return Claim(against, mean, lo, hi, n, verdict, compared)


def best_baseline(rows: Sequence[Row]) -> Row | None:
    """Returns the best baseline with a fitness among ranking rows, or None."""
    ok = [c for c in rows if c["baseline"] and c["status"] == "ok" and c["fitness"] is not None]
    return min(ok, key=lambda c: float(c["fitness"])) if ok else None


MEASURES = {"mean_log_ratio": "log_ratio", "mean_ood_mse": "ood_loss"}  # fitness -> per task


def _task_value(row: Row, task: str, measure: str) -> float | None:
    v = (row["tasks"].get(task) or {}).get(measure)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _ranked_new(c: Row) -> bool:
    """Returns whether ranking row `c` is a new candidate ranked with a fitness."""
    return bool(
        not c["baseline"] and c["status"] == "ok" and c["fitness"] is not None and c["code_hash"]
    )


def picked_among(rows: Sequence[Row]) -> int:
    """Returns how many new candidates a pick on these rows' tasks was made among: those
    ranked, and those the evaluation cascade screened out (they lost to the pick on some of
    these very tasks), which the pick's claim is optimistic about."""
    return sum(
        1 for c in rows if _ranked_new(c) or (not c["baseline"] and c["status"] == "screened")
    )


def claims(
    rows: Sequence[Row], tasks: Sequence[str], *, fitness: str = "mean_log_ratio", seed: int = 0
) -> dict[str, Claim | None]:
    """Returns {code hash: claim} for every ranked new candidate among ranking rows: does it
    beat the best baseline of these rows beyond noise, on the per-task measure whose mean is
    the `fitness` kind? Empty without a baseline."""
    measure = MEASURES.get(fitness, "log_ratio")
    base = best_baseline(rows)
    if base is None:
        return {}
    new = [c for c in rows if _ranked_new(c)]
    pool = picked_among(rows)
    out: dict[str, Claim | None] = {}
    for c in new:
        pairs = [(_task_value(c, t, measure), _task_value(base, t, measure)) for t in tasks]
        kept = [(a, b) for a, b in pairs if a is not None and b is not None]
        mine, theirs = [a for a, _ in kept], [b for _, b in kept]
        against = str(base["name"])
        out[c["code_hash"]] = paired_claim(mine, theirs, against, seed=seed, compared=pool)
    return out


def claim_text(claim: Mapping[str, Any] | None, spec: str = "+.3f") -> str:
    """Returns e.g. "yes (95% CI [-0.210, -0.040])" for a claim dict, or "—"; `spec` formats
    the interval's ends (minact.runs.ranking.difference_spec gives a lab's)."""
    if not claim:
        return "—"
    lo, hi = claim["lo"], claim["hi"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return str(claim["verdict"])
    # An end that rounds to zero reads "+0.000", not "-0.000" (a sign no digit backs).
    return f"{claim['verdict']} (95% CI [{number_text(lo, spec)}, {number_text(hi, spec)}])"


def selection_note(claim: Mapping[str, Any] | None) -> str:
    """Returns the caveat for the claim of a candidate picked as the best of several on the
    same tasks, or "" when there was no choice to make."""
    n = int((claim or {}).get("compared") or 1)
    if n <= 1:
        return ""
    return (
        f"it is the best of {n} candidates on these same tasks, so a yes is optimistic: "
        "check it on tasks it was not picked on (--validate, or a rescore on other tasks)"
    )


def best_claim_sentence(rows: Sequence[Row], tasks: int, spec: str = "+.3f") -> str:
    """Returns one sentence on whether the best ranked new candidate among ranking rows beats
    the best baseline beyond noise (or why that is not judged), names as they are; "" when
    no new candidate was ranked. `tasks`: how many tasks the ranking has; `spec`: as
    `claim_text`'s."""
    best = next((c for c in rows if c["rank"] and not c["baseline"]), None)
    if best is None:
        return ""
    claim = best.get("claim")
    if not claim:
        # A table of fitness with no verdict beside it reads as if the first row had won.
        why = (
            f"a claim needs at least {MIN_TASKS} tasks, this ranking has {tasks}"
            if tasks < MIN_TASKS
            else f"there is no baseline, or fewer than {MIN_TASKS} tasks where both have a score"
        )
        return (
            f"whether {best['name']}, the best new candidate, beats the best baseline beyond "
            f"noise is not judged: {why}"
        )
    caveat = selection_note(claim)
    # `score FILE` scores the reference alone beside it: "the best baseline" would read as
    # the best of all the built-ins.
    scored = sum(1 for c in rows if c["baseline"] and c["status"] == "ok" and c["rank"])
    only = ", the only baseline scored here" if scored == 1 else ""
    return (
        f"does {best['name']}, the best new candidate, beat the best baseline "
        f"({claim['against']}{only}) beyond noise? {claim_text(claim, spec)}, the interval of its "
        "fitness minus the baseline's (below 0: better)" + (f"; {caveat}" if caveat else "")
    )
