"""Measurement: how often does the "beats the best baseline" claim say yes when nothing differs?

Per-task differences (candidate minus baseline) are drawn with a mean of 0 from several noise
shapes, over 6, 8 and 12 tasks, and judged twice in the same run: by the shipped claim
(minact.claims.paired_claim: the expanded percentile interval, each end at least as far out
as Student's t interval) and by the expanded percentile interval alone (its previous form,
the baseline). A 95% interval's "yes" (the whole interval below 0) should come at most 2.5%
of the time. The right-skewed shape (far worse on a few tasks, a little better on the rest)
shows what no interval of a mean over few tasks holds. numpy only; a few minutes on 2 cores.

    python bench/claims.py --trials 4000
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from minact.claims import RESAMPLES, expanded_tail, paired_claim

Draw = Callable[[np.random.Generator, int], np.ndarray]

SHAPES: dict[str, Draw] = {
    "normal": lambda g, n: g.standard_normal(n),
    "laplace": lambda g, n: g.laplace(size=n),
    "student t, 3 df": lambda g, n: g.standard_t(3, n),
    "right-skewed": lambda g, n: g.lognormal(0.0, 1.0, n) - np.exp(0.5),  # mean 0
}


def expanded_only(diff: np.ndarray, seed: int) -> bool:
    """Returns whether the expanded percentile interval alone lies below 0 (a "yes")."""
    rng = np.random.default_rng(seed)
    n = diff.size
    means = diff[rng.integers(0, n, (RESAMPLES, n))].mean(axis=1)
    return bool(np.percentile(means, 100 - expanded_tail(n)) < 0)


def rates(draw: Draw, n: int, trials: int) -> tuple[float, float]:
    """Returns the share of "yes" of the shipped claim and of the baseline, in percent."""
    g = np.random.default_rng(n)
    shipped = baseline = 0
    for trial in range(trials):
        diff = draw(g, n)
        claim = paired_claim(diff.tolist(), [0.0] * n, "baseline", seed=trial)
        shipped += claim is not None and claim.verdict == "yes"
        baseline += expanded_only(diff, trial)
    return 100 * shipped / trials, 100 * baseline / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000, help="draws per shape and size")
    parser.add_argument("--tasks", default="6,8,12", help="numbers of tasks, comma-separated")
    args = parser.parse_args()
    sizes = [int(n) for n in args.tasks.split(",")]
    print(f"false 'yes' in % (95% interval: at most 2.5 expected), {args.trials} trials each")
    print("| shape | tasks | shipped claim | expanded percentile alone | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, draw in SHAPES.items():
        for n in sizes:
            shipped, baseline = rates(draw, n, args.trials)
            ratio = f"{shipped / baseline:.2f}" if baseline else "—"
            print(f"| {name} | {n} | {shipped:.2f} | {baseline:.2f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
