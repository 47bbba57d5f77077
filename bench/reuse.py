"""Benchmark: what verifying a shared result costs, and what sharing still saves.

A candidate whose behaviour hash matches results other code trained reuses them only after
the worker checks that it computes the same f and f' at that training's pre-activations
(minact.sandbox.verify). This script measures, in one run, on one cache and one warm worker:

* full evaluations: probing and training candidates whose behaviour is new;
* verified hits: probing and verifying equal functions written differently
  (`x * torch.sigmoid(x)` after `F.silu(x)`), which then train nothing;
* the verification request alone, and, for comparison, the check issue 9 first proposed
  (train one seed of the cheapest task and compare losses) timed on the same trainer;
* whether that loss check could pass at all: equal functions written differently, each
  trained on its own, end with different losses (training is chaotic), so a bit-for-bit
  loss comparison would never let them share.

    python bench/reuse.py                  # the default lab, CPU
    python bench/reuse.py --tasks F.toml   # another lab
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from minact.cache import FitnessCache
from minact.candidate import Candidate
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import default_tasks_path, load_lab
from minact.lab.task import Lab
from minact.sandbox.client import VerifyItem
from minact.sandbox.loader import load_activation
from minact.sandbox.trainer import Job, Trainer
from minact.validate import validate

# Each row: a function, then the same function written differently.
EQUALS = [
    ("F.silu(x)", "x * torch.sigmoid(x)", "x / (1 + torch.exp(-x))"),
    ("F.gelu(x)", "0.5 * x * (1 + torch.erf(x / math.sqrt(2)))", "x * torch.special.ndtr(x)"),
    ("F.mish(x)", "x * torch.tanh(F.softplus(x))", "x * torch.tanh(torch.log1p(torch.exp(x)))"),
]


def _cand(body: str) -> Candidate:
    c = validate(f"import math\ndef activation(x):\n    return {body}\n", name=body)
    assert isinstance(c, Candidate), c
    return c


def _timed(ev: Evaluator, cands: list[Candidate]) -> tuple[float, list[bool]]:
    start = time.perf_counter()
    scores = {s.name: s for s in ev.score(cands)}
    seconds = time.perf_counter() - start
    for s in scores.values():
        if s.collision is not None:  # say why, should an equal formula fail verification
            print(f"  {s.name}: collided with {s.collision[:10]}")
    return seconds, [scores[c.name].cached and scores[c.name].collision is None for c in cands]


def main() -> int:
    """Runs the benchmark and prints figures and ratios."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=Path, default=None, help="lab file (default: the default lab)")
    p.add_argument("--threads", type=int, default=0, help="torch threads in the worker")
    args = p.parse_args()
    lab = load_lab(args.tasks or default_tasks_path())
    nets = sum(t.settings.seeds for t in lab.tasks)
    print(f"lab {lab.path}: {len(lab.tasks)} tasks, {nets} networks per candidate; CPU")
    full: list[float] = []
    hits: list[float] = []
    verify: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, FitnessCache(Path(tmp), EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, EvaluatorConfig(device="cpu", threads=args.threads)) as ev:
            ev.score([])  # start the worker and evaluate the reference: not timed
            for first, *others in EQUALS:
                seconds, cached = _timed(ev, [_cand(first)])
                assert cached == [False]
                full.append(seconds)
                for other in others:
                    seconds, cached = _timed(ev, [_cand(other)])
                    if cached != [True]:
                        # Its behaviour hash can differ: at a salted point where the formula
                        # cancels, float32 parts from float64 by more than the hash allows.
                        print(f"  {other}: not shared with {first} (trained on its own)")
                        continue
                    hits.append(seconds)
            # The verification request alone (what a hit adds to probing).
            trained, equal = _cand(EQUALS[0][0]), _cand(EQUALS[0][1])
            item = VerifyItem(equal.source, trained.source, _trace(ev, trained))
            for _ in range(5):
                start = time.perf_counter()
                ev._worker.verify([item], 60.0)
                verify.append(time.perf_counter() - start)
    one_seed, differences = _loss_check(lab, args.threads)
    f, h, v = statistics.median(full), statistics.median(hits), statistics.median(verify)
    print(f"{'full evaluation (probe + train 1 candidate), median':<58} {f:8.3f} s")
    print(f"{'verified hit (probe + verify, no training), median':<58} {h:8.3f} s")
    print(f"{'  of which the verification request, median':<58} {v * 1e3:8.1f} ms")
    print(f"{'one seed of one task trained (the loss check), median':<58} {one_seed:8.3f} s")
    print(f"verification / full evaluation: {100 * v / f:.2f}%")
    saves = 100 * (1 - h / f)
    print(f"verified hit / full evaluation: {100 * h / f:.1f}% (sharing saves {saves:.0f}%)")
    print(f"one-seed loss check / full evaluation: {100 * one_seed / f:.1f}%")
    print(
        "equal functions trained apart, largest per-seed OOD loss difference: "
        + ", ".join(f"{name} {d:.1e}" for name, d in differences)
    )
    return 0


def _trace(ev: Evaluator, c: Candidate) -> tuple[float, ...]:
    """Returns the trace points of the shared results `c` trained, over all tasks."""
    adm = ev.cache.get_admission(c.code_hash, ev.lab.digest())
    assert adm is not None and adm.behaviour_hash is not None
    points: list[float] = []
    for task in ev.lab.tasks:
        stored = ev.cache.get_result(adm.behaviour_hash, task.digest(), ev.lab.digest())
        assert stored is not None and stored.producer == c.code_hash
        points.extend(stored.result.trace)
    return tuple(points)


def _loss_check(lab: Lab, threads: int) -> tuple[float, list[tuple[str, float]]]:
    """Returns the time to train one seed of the cheapest task, and how far equal functions
    written differently end apart when each trains on its own (relative OOD loss)."""
    if threads:
        torch.set_num_threads(threads)
    trainer = Trainer("cpu")
    task = min(lab.tasks, key=lambda t: (t.settings.steps * t.settings.n_train, t.digest()))
    one = dataclasses.replace(task, settings=dataclasses.replace(task.settings, seeds=1))
    fn = load_activation(_cand(EQUALS[0][0]).source)
    trainer.train([Job(0, fn, one)])  # data and initial weights: not timed
    times = []
    for _ in range(3):
        start = time.perf_counter()
        trainer.train([Job(0, fn, one)])
        times.append(time.perf_counter() - start)
    differences = []
    for first, other, _ in EQUALS:
        a, b = (
            trainer.train([Job(0, load_activation(_cand(body).source), t) for t in lab.tasks])
            for body in (first, other)
        )
        worst = max(
            abs(x - y) / max(abs(x), 1e-12)
            for ra, rb in zip(a, b, strict=True)
            for x, y in zip(ra.ood, rb.ood, strict=True)
        )
        differences.append((f"{first} vs {other}", worst))
    return statistics.median(times), differences


if __name__ == "__main__":
    sys.exit(main())
