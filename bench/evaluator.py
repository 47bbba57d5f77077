"""Benchmark: candidates per minute of minact's batched evaluator against a naive one.

The naive loop and the batched trainer time the same candidates (mean per candidate);
cheap and costly activations alike, so the ratio is fair.

The naive baseline is what a generic evolution framework's evaluator does: one
`nn.Module` per (task, seed), eager, trained one after another with torch.optim.Adam.
The batched evaluator trains all (task, seed) networks of several candidates at once
(lab.Trainer). Both train the same networks on the same data for the same steps, in
this process, in one run; the ratio is what matters (timings on shared machines are
noisy). Also measured: the end-to-end evaluator (worker process, fresh cache) and the
cost of a cache hit.

    python bench/evaluator.py                   # default lab, CPU
    python bench/evaluator.py --compile         # adds torch.compile, cold and warm
    python bench/evaluator.py --device cuda     # CUDA, eager and torch.compile
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from minact import seeds
from minact.cache import FitnessCache
from minact.candidate import Candidate
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import default_tasks_path, load_lab
from minact.lab.sampling import sample
from minact.lab.task import Lab
from minact.sandbox.loader import load_activation
from minact.sandbox.trainer import Job, Trainer
from minact.validate import validate

NAMES = ["gelu", "silu", "gelusine", "gsp", "snake", "mish", "gmtu", "elu"]


class _Act(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _candidates(n: int) -> list[Candidate]:
    out = []
    for name in NAMES[:n]:
        c = validate(seeds.seed_source(name), name=name)
        assert isinstance(c, Candidate)
        out.append(c)
    return out


def naive_seconds(lab: Lab, cand: Candidate, device: str) -> float:
    """Returns seconds to train one candidate's networks one nn.Module at a time."""
    fn = load_activation(cand.source)
    start = time.perf_counter()
    for task in lab.tasks:
        data = sample(task)
        s = task.settings
        x = torch.tensor(data.x_train, dtype=torch.float32, device=device)
        y = torch.tensor(data.y_train, dtype=torch.float32, device=device).unsqueeze(1)
        for seed in range(s.seeds):
            torch.manual_seed(seed)
            sizes = [x.shape[1]] + [s.width] * s.depth
            layers: list[nn.Module] = []
            for a, b in itertools.pairwise(sizes):
                layers += [nn.Linear(a, b), _Act(fn)]
            model = nn.Sequential(*layers, nn.Linear(sizes[-1], 1)).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=s.lr)
            for _ in range(s.steps):
                loss = nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def batched_seconds(
    lab: Lab, cands: list[Candidate], per_batch: int, device: str, backend: str | None
) -> float:
    """Returns seconds per candidate when `cands` train `per_batch` at a time."""
    trainer = Trainer(device, compile_backend=backend)
    fns = [load_activation(c.source) for c in cands]
    start = time.perf_counter()
    for first in range(0, len(fns), per_batch):
        group = fns[first : first + per_batch]
        jobs = [Job(i, fn, t) for i, fn in enumerate(group) for t in lab.tasks]
        results = trainer.train(jobs)
        assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
    return (time.perf_counter() - start) / len(cands)


def evaluator_seconds(lab: Lab, cands: list[Candidate], device: str) -> tuple[float, float]:
    """Returns (seconds per candidate end to end, seconds per candidate on a cache hit)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = EvaluatorConfig(device=device)
        with FitnessCache(Path(tmp), EVALUATOR_VERSION) as cache:
            start = time.perf_counter()
            with Evaluator(lab, cache, config) as ev:
                ev.score(cands)
            cold = (time.perf_counter() - start) / (len(cands) + 1)  # + the reference
            start = time.perf_counter()
            with Evaluator(lab, cache, config) as ev:
                scores = ev.score(cands)
            hit = (time.perf_counter() - start) / len(scores)
            assert all(s.cached for s in scores)
    return cold, hit


def main() -> int:
    """Runs the benchmark and prints figures and ratios."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=Path, default=None, help="lab file (default: the default lab)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--candidates", type=int, default=4, help="candidates per batch (<= 8)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (CUDA: always)")
    p.add_argument("--naive", type=int, default=4, help="candidates timed with the naive loop")
    args = p.parse_args()
    # A fresh compile cache, so "cold" means cold (inductor reads this on first use).
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="minact-bench-inductor-")
    lab = load_lab(args.tasks or default_tasks_path())
    cands = _candidates(min(args.candidates, len(NAMES)))
    nets = sum(t.settings.seeds for t in lab.tasks)
    print(
        f"lab {lab.path}: {len(lab.tasks)} tasks, {nets} networks per candidate; "
        f"device {args.device}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

    row = "{:<58} {:7.2f} s/candidate {:7.1f} candidates/min"
    naive = statistics.fmean(naive_seconds(lab, c, args.device) for c in cands[: args.naive])
    print(row.format("naive (nn.Module per task x seed, eager, sequential)", naive, 60 / naive))
    batched: dict[str, float] = {}
    sizes = sorted({1, 2, len(cands)})
    for size in sizes:
        label = f"batched, {size} per batch, eager"
        batched[label] = batched_seconds(lab, cands, size, args.device, None)
        print(row.format(label, batched[label], 60 / batched[label]))
    if args.compile or args.device == "cuda":
        # New candidates meet a cold compile: that is the figure that matters in a search.
        size = len(cands)
        cold_c = batched_seconds(lab, cands, size, args.device, "inductor")
        print(row.format(f"batched, {size} per batch, torch.compile (cold)", cold_c, 60 / cold_c))
        warm = batched_seconds(lab, cands, size, args.device, "inductor")
        print(row.format(f"batched, {size} per batch, torch.compile (warm)", warm, 60 / warm))
    cold, hit = evaluator_seconds(lab, cands, args.device)
    print(row.format("evaluator end to end (worker, default batch, fresh cache)", cold, 60 / cold))
    print(f"{'cache hit (code hash known, no worker started)':<58} {hit * 1e3:7.2f} ms/candidate")
    best = min(batched, key=batched.__getitem__)
    print(
        f"ratio batched/naive: {naive / batched[best]:.1f}x (best: {best}); "
        f"end to end: {naive / cold:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
