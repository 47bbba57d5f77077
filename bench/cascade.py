"""Benchmark: does the evaluation cascade's stage 1 rank like the full lab, and what does it buy?

Two parts, on the default lab unless --tasks says otherwise:

    python bench/cascade.py agreement RUN_DIR...    # runs whose candidates were all scored in full
    python bench/cascade.py compare --budget 40     # two offline searches, without and with it

`agreement` needs no training: a run scored in full has every candidate's log-ratio on
every task, and stage 1 is a subset of those tasks, so its stage-1 fitness is the mean
over the subset. For each stage-1 size it prints, over --rules seeds of the subset rule:
Kendall tau between stage-1 and full fitness, the quantiles of (stage 1 - full), and, for
each margin, replaying the run in order (bar = the K-th best fitness of the seeds and the
earlier candidates + margin): the share screened, the misses (screened candidates whose
full fitness is in the run's final top K, or would have entered the top K when they came)
and the training cost relative to a run without the cascade; and, using every candidate
(seeds included), how often one that comes last to a run holding all the others would be
screened although it would enter their top K (leave one out).

`compare` runs `minact evolve --offline` twice in one process with the same seed and budget,
once without a cascade and once with the lab's [lab.cascade], each in its own copy of a
cache that holds only the built-ins' scores (scored once, untimed), and prints the
candidates per minute of each search loop and their ratio. It then scores the screened
candidates of the cascade run in full (their stage-1 results come from the cache) and
prints how many of them are in that run's top K by full fitness: what the cascade missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from minact import seeds as seeds_lib
from minact.agreement import kendall_tau
from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.jobs import evolve
from minact.lab.cascade import Cascade, stage_tasks
from minact.lab.loader import default_tasks_path, load_lab
from minact.lab.task import Lab
from minact.runs.history import History

SIZES = (4, 8, 12, 16, 20, 28, 40)
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)


def _rows(run: Path, number: int) -> list[tuple[int, str, float, dict[str, float]]]:
    """Returns (order, behaviour hash, full fitness, {task: log-ratio}) of the candidates of
    the `number`-th run that were scored in full; seeds come first (order -1), then the runs'
    candidates, one run after the other."""
    lines = (run / "events.jsonl").read_text().splitlines()
    history = History.from_events(json.loads(line) for line in lines if line.strip())
    out = []
    for score, lineage in history.scored():
        if score.ok and score.fitness is not None and math.isfinite(score.fitness):
            ratios = {name: t.log_ratio for name, t in score.tasks.items()}
            order = lineage.index if lineage.index < 0 else number * 1_000_000 + lineage.index
            out.append((order, str(score.behaviour_hash), score.fitness, ratios))
    return out


def _simulate(
    order: Sequence[int], full: Sequence[float], stage: Sequence[float], top: int, margin: float
) -> tuple[int, int, int, int]:
    """Returns (candidates, screened, missed in the final top K, missed when they came)."""
    final = sorted(full)[top - 1] if len(full) >= top else math.inf
    known = [f for o, f in zip(order, full, strict=True) if o < 0]  # the seeds, in full
    screened = missed_final = missed_then = n = 0
    for o, f, s in sorted(zip(order, full, stage, strict=True)):
        if o < 0:
            continue
        n += 1
        kth = sorted(known)[top - 1] if len(known) >= top else math.inf
        if s > kth + margin:
            screened += 1
            missed_final += f <= final
            missed_then += f < kth
        else:
            known.append(f)
    return n, screened, missed_final, missed_then


def _leave_one_out(
    full: Sequence[float], stage: Sequence[float], top: int, margin: float
) -> tuple[int, int]:
    """Returns (screened, missed) when each candidate, seeds included, comes last to a run
    holding all the others: screened if its stage-1 fitness is above their K-th best + margin,
    missed if screened although its full fitness would have entered their top K."""
    screened = missed = 0
    for i, (f, s) in enumerate(zip(full, stage, strict=True)):
        kth = sorted([*full[:i], *full[i + 1 :]])[top - 1]
        if s > kth + margin:
            screened += 1
            missed += f <= kth
    return screened, missed


def agreement(args: argparse.Namespace) -> None:
    """Prints stage-1 vs full agreement and the simulated cascade on runs scored in full."""
    lab = load_lab(args.tasks)
    names = [t.name for t in lab.tasks]
    # One row per function: the seeds of several runs, and repeats, count once.
    unique = {r[1]: r for i, run in enumerate(args.runs) for r in reversed(_rows(Path(run), i))}
    rows = sorted((r for r in unique.values() if all(n in r[3] for n in names)), key=lambda r: r[0])
    order = [r[0] for r in rows]
    full = [r[2] for r in rows]
    seeds = sum(o < 0 for o in order)
    print(f"{len(rows)} candidates scored in full ({seeds} seeds), {len(names)} tasks; "
          f"K = {args.top}; {args.rules} subset rules (seeds) per size")  # fmt: skip
    print("\nsize  tau median [min]   (stage1-full) q50 q90 q95 max")
    per_size: dict[int, list[list[float]]] = {}
    for size in args.sizes:
        taus, diffs, stages = [], [], []
        for seed in range(args.rules):
            subset = [t.name for t in stage_tasks(lab.tasks, size, seed)]
            stage = [statistics.fmean(r[3][n] for n in subset) for r in rows]
            stages.append(stage)
            taus.append(kendall_tau(stage, full))
            diffs += [s - f for s, f in zip(stage, full, strict=True)]
        per_size[size] = stages
        q = statistics.quantiles(diffs, n=100)
        print(f"{size:4d}  {statistics.median(taus):.3f} [{min(taus):.3f}]"
              f"      {q[49]:+.3f} {q[89]:+.3f} {q[94]:+.3f} {max(diffs):+.3f}")  # fmt: skip
    print("\nEach candidate last, against all the others (leave one out; mean over rules):")
    print("size margin  screened  missed  worst rule  rule 0 (screened, missed)")
    for size in args.sizes:
        for margin in args.margins:
            loo = [_leave_one_out(list(full), st, args.top, margin) for st in per_size[size]]
            scr = statistics.fmean(x[0] for x in loo)
            miss = statistics.fmean(x[1] for x in loo)
            worst = max(x[1] for x in loo)
            print(f"{size:4d} {margin:6.2f}  {scr / len(full):7.0%}   {miss:5.2f}   {worst:10d}"
                  f"  {loo[0][0]}, {loo[0][1]}")  # fmt: skip
    print("\nThe run replayed in order (seeds first):")
    print("size margin  screened  missed(final top K)  missed(top K then)  cost  (mean of rules)"
          "  rule 0 (screened, missed final)")  # fmt: skip
    for size in args.sizes:
        for margin in args.margins:
            sims = [_simulate(order, full, st, args.top, margin) for st in per_size[size]]
            n = sims[0][0]
            scr = statistics.fmean(s[1] for s in sims)
            mf = statistics.fmean(s[2] for s in sims)
            mt = statistics.fmean(s[3] for s in sims)
            worst = max(s[2] for s in sims)
            cost = (scr * size / len(names) + (n - scr)) / max(1, n)
            print(f"{size:4d} {margin:6.2f}  {scr / max(1, n):7.0%}   {mf:6.2f} (worst {worst})"
                  f"       {mt:6.2f}          {cost:.2f}  {sims[0][1]}, {sims[0][2]}")  # fmt: skip


def _search(lab_path: Path, work: Path, budget: int, seed: int) -> tuple[float, Path, int]:
    """Runs an offline search in `work`; returns (seconds in the loop, run directory, hits)."""
    result = asyncio.run(
        evolve.run(
            {"budget": budget, "offline": True, "seed": seed, "tasks": str(lab_path)},
            cache_dir=work / "cache",
            runs_dir=work / "runs",
            run_id="r",
        )
    )
    return result.summary.seconds, result.directory, result.summary.counters.cache_hits


def compare(args: argparse.Namespace) -> None:
    """Runs a search with and without the cascade; prints the speed ratio and the misses."""
    lab = load_lab(args.tasks)
    cascade = lab.cascade or Cascade(tasks=20)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.work or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        labs = {
            "plain": _write_lab(lab.path, base / "plain.toml", None),
            "cascade": _write_lab(lab.path, base / "cascade.toml", cascade),
        }
        # The seeds are scored in full in both runs: score them once, untimed (or take a
        # cache that has them), and give each run a copy of that cache.
        seeds = args.cache_from or base / "seeds"
        with FitnessCache(seeds, EVALUATOR_VERSION) as cache:
            with Evaluator(lab, cache, EvaluatorConfig()) as evaluator:
                evaluator.score(seeds_lib.seed_candidates())
        rates, runs, hits = {}, {}, {}
        for name, path in labs.items():
            shutil.copytree(seeds, base / name / "cache")
            seconds, runs[name], hits[name] = _search(path, base / name, args.budget, args.seed)
            rates[name] = args.budget / (seconds / 60)
        print(f"budget {args.budget}, seed {args.seed}, {lab.path.name} ({len(lab.tasks)} tasks), "
              f"cascade {cascade.to_dict()}")  # fmt: skip
        for name, rate in rates.items():
            print(f"  {name:8s} {rate:6.2f} candidates/min ({hits[name]} cache hits)")
        print(f"  ratio (cascade / plain): {rates['cascade'] / rates['plain']:.2f}")
        _misses(runs["cascade"], base / "cascade", lab, cascade.top)


def _misses(run: Path, work: Path, lab: Lab, top: int) -> None:
    """Scores a cascade run's screened candidates in full; prints how many reach its top K."""
    lines = (run / "events.jsonl").read_text().splitlines()
    history = History.from_events(json.loads(line) for line in lines if line.strip())
    scored = [s for s, _ in history.scored()]
    screened = [s for s in scored if s.status == "screened"]
    new = sum(1 for s in scored if not s.baseline)
    print(f"  screened: {len(screened)} of {new} candidates ({len(screened) / max(1, new):.0%})")
    if not screened:
        return
    cands = [Candidate(s.source, Hash(str(s.code_hash)), s.name) for s in screened]
    with FitnessCache(work / "cache", EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, EvaluatorConfig()) as evaluator:
            full = {s.code_hash: s.fitness for s in evaluator.score(cands)}
    fits = {c.name: full[c.code_hash] for c in cands}
    everyone = sorted(
        [s.fitness for s in scored if s.ok and s.fitness is not None]
        + [f for f in fits.values() if f is not None]
    )
    kth = everyone[top - 1] if len(everyone) >= top else math.inf
    missed = [name for name, f in fits.items() if f is not None and f <= kth]
    print(f"  missed (screened, but in the full top {top} of the run): {len(missed)} of "
          f"{len(screened)} screened {missed or ''}")  # fmt: skip


def _write_lab(source: Path, out: Path, cascade: Cascade | None) -> Path:
    """Writes the lab at `source` with its cascade replaced by `cascade` (None: none)."""
    kept, skipping = [], False
    for line in source.read_text().splitlines():
        if line.strip().startswith("["):
            skipping = line.strip() == "[lab.cascade]"
        if not skipping:
            kept.append(line)
    body = "\n".join(kept) + "\n"
    if cascade is not None:
        body += "\n[lab.cascade]\n" + "".join(f"{k} = {v}\n" for k, v in cascade.to_dict().items())
    out.write_text(body)
    return out


def main() -> int:
    """Parses the command line and runs one part of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=Path, default=default_tasks_path())
    sub = p.add_subparsers(dest="part", required=True)
    a = sub.add_parser("agreement", help="stage 1 vs full on runs scored in full")
    a.add_argument("runs", nargs="+")
    a.add_argument("--top", type=int, default=10)
    a.add_argument("--rules", type=int, default=20, help="seeds of the subset rule per size")
    a.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    a.add_argument("--margins", type=float, nargs="+", default=list(MARGINS))
    c = sub.add_parser("compare", help="a search with and without the cascade")
    c.add_argument("--budget", type=int, default=40)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument(
        "--cache-from",
        type=Path,
        help="a cache holding the built-ins' scores on this lab (copied, not changed); "
        "candidates it holds are cache hits in both runs, and counted",
    )
    c.add_argument("--work", type=Path, help="keep the runs and caches here (default: a temp dir)")
    args = p.parse_args()
    agreement(args) if args.part == "agreement" else compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
