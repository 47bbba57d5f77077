"""Measurement: how stable is a lab's ranking, and how many tasks and seeds make it stable?

Candidates: the 14 built-in activations and --mutants children of them from the offline
mutator (a fixed seed). Labs, written as tasks files to CACHE/stability-labs/:

- classic: the hand-written 10-task lab (3 seeds of 400 steps on 256 points);
- pool:  --pool tasks per family drawn from the four generators with seed 1 (families.py),
  --seeds seeds each of --steps steps on --points points. A family table with count = n gives
  the first n tasks of this pool, so every smaller lab of seed 1 is a prefix of it;
- fresh: --fresh tasks per family with seed 2: a held-out draw from the same families;
- check: the first --check tasks of the pool with the classic lab's training (400 steps,
  256 points, 2 seeds), to see whether the cheaper training changes the ranking.

Every candidate is scored on every lab through the cache (a rerun is fast), then the
per-seed OOD losses are read back and the statistics computed (minact/agreement.py):

- split-half tau of each lab (two random disjoint halves of its tasks, 500 splits);
- the reliability curve: tau between two disjoint sets of k tasks of the pool, with 1, 2 or
  3 seeds per task, and the seed retest (the same k tasks, one seed against another): is
  the disagreement seed noise or task dependence?
- a lab of n tasks per family (the pool's prefix) against the fresh draw's prefix of the
  same size, with a bootstrap over tasks and a spread over seeds;
- leave-one-family-out tau of the classic lab and of the pool;
- the shipped labs (--chosen, default: the default lab and `large`): their split-half and
  per-family tau, and their agreement with a fresh draw of --fresh tasks per family with the
  first chosen lab's settings (seed 2, written as fresh1.toml; as large as the default lab, half
  as large as `large`) and with the classic lab.

Ranks use the mean over tasks of log(median OOD MSE over seeds), which ranks exactly as the
lab's fitness does (the reference's log term is the same for every candidate). Candidates
that fail any task of a lab are left out of that lab's statistics.

    nice -n 19 python bench/lab_stability.py --cache-dir cache       # about 40 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

from minact import seeds
from minact.agreement import cross_agreement, family_agreement, kendall_tau, split_half
from minact.cache import FitnessCache
from minact.candidate import Candidate
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import load_lab
from minact.lab.suites import suite_path
from minact.lab.task import Lab
from minact.search.mutate import Mutator
from minact.validate import validate

GENERATORS = ("polynomial", "fourier", "saturating", "feynman")
SPLITS = 500


def _family_lab(path: Path, seed: int, count: int, steps: int, points: int, n_seeds: int) -> Lab:
    text = f"[lab]\nsteps = {steps}\nn_train = {points}\nn_test = {points}\nseeds = {n_seeds}\n"
    text += "timeout = 1200.0\n"  # a loaded 2-core machine; timeout is not part of the digests
    for g in GENERATORS:
        text += f'\n[[family]]\nname = "{g}"\ngenerator = "{g}"\ncount = {count}\nseed = {seed}\n'
    path.write_text(text, encoding="utf-8")
    return load_lab(path)


def _candidates(mutants: int) -> list[Candidate]:
    out = list(seeds.seed_candidates())
    known = {c.code_hash for c in out}
    rng = random.Random(2026)
    mutator = Mutator(random.Random(7))
    parents = [c.source for c in out]
    while len(out) < len(seeds.SEEDS) + mutants:
        child = mutator.mutate(rng.choice(parents), rng.choice(parents))
        c = validate(child.source, name=f"mut{len(out) - len(seeds.SEEDS) + 1:02d}")
        if isinstance(c, Candidate) and c.code_hash not in known:
            known.add(c.code_hash)
            out.append(c)
            parents.append(c.source)  # later children may descend from earlier ones
    return out


def _losses(lab: Lab, cands: list[Candidate], cache_dir: Path) -> tuple[list[str], np.ndarray]:
    """Returns the names of candidates ok on every task and their OOD MSE (cands, tasks, seeds)."""
    start = time.perf_counter()
    config = EvaluatorConfig(device="cpu", threads=1)
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, config, lambda s, d, t: None) as ev:
            scores = ev.score(cands)
        names, rows = [], []
        for s in scores:
            if not s.ok or s.behaviour_hash is None or s.name in names:
                continue
            results = [
                cache.get_result(s.behaviour_hash, t.digest(), lab.digest()) for t in lab.tasks
            ]
            if all(r is not None and r.ok for r in results):
                names.append(s.name)
                rows.append([list(r.ood) for r in results if r is not None])
    took = time.perf_counter() - start
    print(
        f"# {lab.path.name}: {len(lab.tasks)} tasks, {len(names)} candidates ok, {took:.0f} s",
        file=sys.stderr,
    )
    return names, np.array(rows, dtype=np.float64)


def _log_median(ood: np.ndarray, seeds_used: slice | list[int]) -> np.ndarray:
    return np.log(np.maximum(np.median(ood[:, :, seeds_used], axis=2), 1e-12))


def _common(
    a: tuple[list[str], np.ndarray], b: tuple[list[str], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    names = [n for n in a[0] if n in b[0]]
    return a[1][[a[0].index(n) for n in names]], b[1][[b[0].index(n) for n in names]]


def _seed_retest(ood: np.ndarray, size: int, rng: np.random.Generator) -> list[float]:
    taus = []
    n_seeds = ood.shape[2]
    for _ in range(SPLITS):
        tasks = rng.permutation(ood.shape[1])[:size]
        i, j = rng.permutation(n_seeds)[:2]
        a, b = (np.log(np.maximum(ood[:, tasks, k], 1e-12)).mean(axis=1) for k in (i, j))
        taus.append(kendall_tau(a, b))
    return taus


def _q(values: list[float]) -> str:
    lo, med, hi = np.percentile([v for v in values if math.isfinite(v)], [5, 50, 95])
    return f"{med:.2f} [{lo:.2f}, {hi:.2f}]"


def _prefix(lab: Lab, per_family: int) -> list[int]:
    seen: dict[str, int] = {}
    keep = []
    for i, t in enumerate(lab.tasks):
        seen[t.family] = seen.get(t.family, 0) + 1
        if seen[t.family] <= per_family:
            keep.append(i)
    return keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cache-dir", type=Path, default=Path("cache"))
    ap.add_argument("--mutants", type=int, default=16)
    ap.add_argument("--pool", type=int, default=32, help="tasks per family, seed 1")
    ap.add_argument("--fresh", type=int, default=25, help="tasks per family, seed 2")
    ap.add_argument("--check", type=int, default=32, help="pool tasks retrained as classic")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--points", type=int, default=128)
    ap.add_argument("--chosen", nargs="*", default=["default", "large"], help="built-in labs")
    ap.add_argument("--json", type=Path, help="also write the per-seed losses here")
    args = ap.parse_args()
    labs_dir = args.cache_dir / "stability-labs"
    labs_dir.mkdir(parents=True, exist_ok=True)
    cands = _candidates(args.mutants)
    pool = _family_lab(labs_dir / "pool.toml", 1, args.pool, args.steps, args.points, args.seeds)
    fresh = _family_lab(labs_dir / "fresh.toml", 2, args.fresh, args.steps, args.points, args.seeds)
    check = _family_lab(labs_dir / "check.toml", 1, args.check // 4, 400, 256, 2)
    classic = load_lab(suite_path("classic"))
    data = {
        name: _losses(lab, cands, args.cache_dir)
        for name, lab in (("classic", classic), ("pool", pool), ("fresh", fresh), ("check", check))
    }
    chosen = {name: load_lab(suite_path(name)) for name in args.chosen}
    for name, lab in chosen.items():
        data[name] = _losses(lab, cands, args.cache_dir)
    if chosen:  # a fresh draw with the settings of the first chosen lab, seed 2
        s = next(iter(chosen.values())).tasks[0].settings
        fresh1 = _family_lab(labs_dir / "fresh1.toml", 2, args.fresh, s.steps, s.n_train, s.seeds)
        data["fresh1"] = _losses(fresh1, cands, args.cache_dir)
    if args.json:
        args.json.write_text(json.dumps({k: [v[0], v[1].tolist()] for k, v in data.items()}))
    _report(args, data, classic, pool, fresh, check)
    if chosen:
        _report_chosen(data, chosen, fresh1)


def _report(
    args: argparse.Namespace,
    data: dict[str, tuple[list[str], np.ndarray]],
    classic: Lab,
    pool: Lab,
    fresh: Lab,
    check: Lab,
) -> None:
    rng = np.random.default_rng(0)
    c_names, c_ood = data["classic"]
    c_fam = [t.family for t in classic.tasks]
    print(f"## classic lab: {len(classic.tasks)} tasks, {len(c_names)} candidates\n")
    half = split_half(_log_median(c_ood, slice(None)), splits=SPLITS)
    print(f"- split-half tau (5 vs 5 tasks): {half.text()}")
    lofo = family_agreement(_log_median(c_ood, slice(None)), c_fam)
    print("- each family against the rest: " + ", ".join(f"{f} {t:+.2f}" for f, t in lofo.items()))
    print(
        f"- seed retest (all 10 tasks, one seed vs another): {_q(_seed_retest(c_ood, 10, rng))}\n"
    )
    p_names, p_ood = data["pool"]
    print(
        f"## reliability curve: pool of {len(pool.tasks)} tasks ({args.pool} per family, seed 1), "
        f"{len(p_names)} candidates; {args.steps} steps, {args.points} points\n"
    )
    print(
        "| k tasks per half | split-half, 1 seed | 2 seeds | "
        + f"{args.seeds} seeds | seed retest (same k tasks) |"
    )
    print("|---:|---|---|---|---|")
    k = 2
    while 2 * k <= len(pool.tasks):
        cols = [
            split_half(_log_median(p_ood, slice(0, s)), splits=SPLITS, size=k, seed=k).text()
            for s in (1, 2, args.seeds)
        ]
        print(f"| {k} | " + " | ".join(cols) + f" | {_q(_seed_retest(p_ood, k, rng))} |")
        k *= 2
    p_fam = [t.family for t in pool.tasks]
    lofo = family_agreement(_log_median(p_ood, slice(None)), p_fam)
    print(
        "\n- pool, each family against the rest: "
        + ", ".join(f"{f} {t:+.2f}" for f, t in lofo.items())
    )
    both = _common(data["pool"], data["fresh"])
    print(
        "\n## a lab of n tasks per family (seed 1) against a fresh draw of n per family (seed 2)\n"
    )
    print(
        "| n per family | tasks | split-half of the lab | tau vs fresh (all seeds) "
        "| bootstrap over tasks | one seed vs one seed |"
    )
    print("|---:|---:|---|---:|---|---|")
    for n in (2, 5, 10, 15, 20, 25):
        if n > min(args.pool, args.fresh):
            break
        a = both[0][:, _prefix(pool, n)]
        b = both[1][:, _prefix(fresh, n)]
        tau, boot = cross_agreement(
            _log_median(a, slice(None)), _log_median(b, slice(None)), resamples=SPLITS
        )
        per_seed = [
            kendall_tau(_log_median(a, [i]).mean(axis=1), _log_median(b, [j]).mean(axis=1))
            for i in range(args.seeds)
            for j in range(args.seeds)
        ]
        half = split_half(_log_median(a, slice(None)), splits=SPLITS).text() if 4 * n >= 6 else "—"
        print(f"| {n} | {4 * n} | {half} | {tau:.2f} | {boot.text()} | {_q(per_seed)} |")
    cheap, full = _common(data["pool"], data["check"])
    cheap = cheap[:, _prefix(pool, args.check // 4)]
    tau = kendall_tau(
        _log_median(cheap, slice(None)).mean(axis=1), _log_median(full, slice(None)).mean(axis=1)
    )
    retest = _q(_seed_retest(full, full.shape[1], rng))
    print(
        f"\n## training settings: the same {full.shape[1]} tasks, {args.steps} steps x "
        f"{args.points} points x {args.seeds} seeds against 400 steps x 256 points x 2 seeds\n"
    )
    print(f"- tau between the two rankings: {tau:.2f}; seed retest at 400 x 256: {retest}")


def _report_chosen(
    data: dict[str, tuple[list[str], np.ndarray]], chosen: dict[str, Lab], fresh1: Lab
) -> None:
    print(
        f"\n## the shipped labs against a fresh draw ({fresh1.path.name}: "
        f"{len(fresh1.tasks)} tasks, seed 2, the same settings)\n"
    )
    print(
        "| lab | tasks | networks | split-half | each family against the rest "
        "| tau vs fresh | bootstrap over tasks | tau vs classic |"
    )
    print("|---|---:|---:|---|---|---:|---|---:|")
    for name, lab in chosen.items():
        ood = _log_median(data[name][1], slice(None))
        half = split_half(ood, splits=SPLITS).text()
        fam = family_agreement(ood, [t.family for t in lab.tasks])
        lofo = ", ".join(f"{f} {t:+.2f}" for f, t in fam.items())
        a, b = _common(data[name], data["fresh1"])
        tau, boot = cross_agreement(
            _log_median(a, slice(None)), _log_median(b, slice(None)), resamples=SPLITS
        )
        a, c = _common(data[name], data["classic"])
        old = kendall_tau(
            _log_median(a, slice(None)).mean(axis=1), _log_median(c, slice(None)).mean(axis=1)
        )
        networks = sum(t.settings.seeds for t in lab.tasks)
        print(
            f"| {name} | {len(lab.tasks)} | {networks} | {half} | {lofo} | {tau:.2f} "
            f"| {boot.text()} | {old:.2f} |"
        )


if __name__ == "__main__":
    main()
