"""Claims that survive noise: does a candidate beat the best baseline, beyond chance?

A candidate's fitness is the mean over tasks of its per-task log-ratio against the reference,
so the difference between two candidates' fitness is the mean over tasks of the per-task
differences. The comparison is paired: both were trained on the same tasks (same data, same
network seeds), and the per-task difference cancels what the task itself contributes. A
bootstrap over tasks (resampling them with replacement, a fixed seed so the interval is
reproducible) gives a 95% interval of the mean difference:

- "yes": the whole interval is below 0 (the candidate beats the best baseline),
- "no": the whole interval is above 0 (the best baseline beats it),
- "inconclusive": the interval holds 0.

Seeds enter through each task's median over seeds; more seeds per task (`evolve --confirm`,
`rescore --seeds`) make those medians, and so the claim, less noisy. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RESAMPLES", "Claim", "best_baseline", "claim_text", "claims", "paired_claim"]

Row = Mapping[str, Any]  # a ranking.json candidate row

RESAMPLES = 2000
LEVEL = 0.95
MIN_TASKS = 3  # fewer paired tasks than this give an interval that means nothing


@dataclass(frozen=True, slots=True)
class Claim:
    """A paired comparison of a candidate against a baseline over the tasks both were scored on.

    Attributes:
        against: the baseline's name.  difference: mean over tasks of the candidate's log-ratio
        minus the baseline's (negative: the candidate is better).  lo, hi: the 95% bootstrap
        interval of that mean.  tasks: how many tasks were paired.  verdict: "yes", "no" or
        "inconclusive" (does the candidate beat the baseline?).
    """

    against: str
    difference: float
    lo: float
    hi: float
    tasks: int
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict (with the resampling settings, for reproducibility)."""
        return {
            "against": self.against,
            "difference": self.difference,
            "lo": self.lo,
            "hi": self.hi,
            "tasks": self.tasks,
            "verdict": self.verdict,
            "level": LEVEL,
            "resamples": RESAMPLES,
        }


def paired_claim(
    candidate: Sequence[float], baseline: Sequence[float], against: str, *, seed: int = 0
) -> Claim | None:
    """Returns the claim from two equally long per-task score lists (lower is better), or
    None when fewer than MIN_TASKS tasks are paired."""
    diff = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if diff.ndim != 1 or diff.size < MIN_TASKS:
        return None
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, (RESAMPLES, diff.size))].mean(axis=1)
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = (float(v) for v in np.percentile(means, [tail, 100 - tail]))
    verdict = "yes" if hi < 0 else "no" if lo > 0 else "inconclusive"
    return Claim(against, float(diff.mean()), lo, hi, int(diff.size), verdict)


def best_baseline(rows: Sequence[Row]) -> Row | None:
    """Returns the best baseline with a fitness among ranking rows, or None."""
    ok = [c for c in rows if c["baseline"] and c["status"] == "ok" and c["fitness"] is not None]
    return min(ok, key=lambda c: float(c["fitness"])) if ok else None


def _log_ratio(row: Row, task: str) -> float | None:
    v = (row["tasks"].get(task) or {}).get("log_ratio")
    return float(v) if v is not None and math.isfinite(v) else None


def claims(rows: Sequence[Row], tasks: Sequence[str], *, seed: int = 0) -> dict[str, Claim | None]:
    """Returns {code hash: claim} for every ranked new candidate among ranking rows: does it
    beat the best baseline of these rows beyond noise? Empty without a baseline."""
    base = best_baseline(rows)
    if base is None:
        return {}
    out: dict[str, Claim | None] = {}
    for c in rows:
        if c["baseline"] or c["status"] != "ok" or c["fitness"] is None or not c["code_hash"]:
            continue
        pairs = [(_log_ratio(c, t), _log_ratio(base, t)) for t in tasks]
        kept = [(a, b) for a, b in pairs if a is not None and b is not None]
        mine, theirs = [a for a, _ in kept], [b for _, b in kept]
        out[c["code_hash"]] = paired_claim(mine, theirs, str(base["name"]), seed=seed)
    return out


def claim_text(claim: Mapping[str, Any] | None) -> str:
    """Returns e.g. "yes (95% CI [-0.21, -0.04])" for a claim dict, or "—"."""
    if not claim:
        return "—"
    lo, hi = claim["lo"], claim["hi"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return str(claim["verdict"])
    return f"{claim['verdict']} (95% CI [{lo:+.3f}, {hi:+.3f}])"
