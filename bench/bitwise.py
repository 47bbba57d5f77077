"""Check: does this tree train every network to the same bits as another checkout?

A change to the trainer that is meant to be faster only must leave every cached result valid:
each task's ID and OOD losses per seed, its status, and its trace (the pre-activations that
reuse is verified on) must be bit-for-bit those of the baseline. This script trains the 14
built-in activations and a few periodic ones on a lab in both trees, each activation alone
(one candidate per batch) and `--batch` to a batch, at each thread count, in fresh processes,
and compares every number exactly (floats by their repr, which round-trips).

    python bench/bitwise.py --against /tmp/minact-main                   # default lab
    python bench/bitwise.py --against /tmp/minact-main --tasks classic --threads 1 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minact.score import TaskResult

ROOT = Path(__file__).resolve().parent.parent
# Besides the built-ins (minact.seeds): periodic activations, whose sin and cos take the
# vectorised kernels' paths that differ most between a tensor's bulk and its tail.
PERIODIC = {
    "sin": "torch.sin(x)",
    "x_sin2x": "x * torch.sin(2 * x)",
    "x_plus_cos": "x + 0.5 * torch.cos(3 * x)",
    "sin_gelu": "torch.sin(x) + F.gelu(x)",
}


def child(lab_name: str, threads: int, batch: int) -> dict[str, str]:
    """Returns, per (activation, batching), the exact repr of every result, in this process."""
    import torch

    from minact.lab.loader import load_lab
    from minact.sandbox.loader import load_activation
    from minact.sandbox.trainer import Job, Trainer
    from minact.seeds import SEEDS

    torch.set_num_threads(threads)
    try:  # what this checkout's worker does, if it does
        from minact.sandbox.heap import keep_freed_memory
    except ImportError:
        pass
    else:
        keep_freed_memory()
    lab = load_lab(Path(lab_name))
    bodies = {name: seed.body for name, seed in SEEDS.items()} | PERIODIC
    # torch, F and math are bound for candidates (sandbox/loader.py); they import nothing.
    fns = {n: load_activation(f"def activation(x):\n    return {b}\n") for n, b in bodies.items()}
    names = list(fns)
    trainer = Trainer("cpu")
    out: dict[str, str] = {}

    def record(key: str, results: Sequence[TaskResult]) -> None:
        # Everything a result holds but its wall time.
        kept = [(r.status, r.reason, r.ood, r.id, r.trace) for r in results]
        out[key] = hashlib.sha256(repr(kept).encode()).hexdigest()

    for name in names:  # alone: one candidate per batch
        record(f"{name} alone", trainer.train([Job(0, fns[name], t) for t in lab.tasks]))
    for first in range(0, len(names), batch):  # several candidates to a batch
        group = names[first : first + batch]
        jobs = [Job(k, fns[n], t) for k, n in enumerate(group) for t in lab.tasks]
        results = trainer.train(jobs)
        n_tasks = len(lab.tasks)
        for k, n in enumerate(group):
            record(f"{n} in a batch of {len(group)}", results[k * n_tasks : (k + 1) * n_tasks])
    return out


def _run(tree: Path, lab: str, threads: int, batch: int) -> dict[str, str]:
    cmd = [sys.executable, __file__, "--child", "--tasks", lab, "--threads", str(threads)]
    cmd += ["--batch", str(batch)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    """Trains in both trees and prints what differs; exits 1 if anything does."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--against", type=Path, required=False, help="baseline checkout of minact")
    p.add_argument("--tasks", default="tasks.toml", help="lab file or built-in lab")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=4, help="candidates per batch in the batched runs")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.tasks, args.threads[0], args.batch)))
        return 0
    if args.against is None:
        p.error("--against is required")
    differ = 0
    for threads in args.threads:
        # Both trees at once where the cores allow it: only the bits matter here.
        with ThreadPoolExecutor(max(1, min(2, (os.cpu_count() or 1) // threads))) as pool:
            base_f = pool.submit(_run, args.against.resolve(), args.tasks, threads, args.batch)
            this_f = pool.submit(_run, ROOT, args.tasks, threads, args.batch)
            base, this = base_f.result(), this_f.result()
        same = [k for k in base if this.get(k) == base[k]]
        bad = sorted(set(base) ^ set(this) | {k for k in base if k in this and this[k] != base[k]})
        differ += len(bad)
        print(f"lab {args.tasks}, {threads} thread(s): {len(same)} of {len(base)} identical")
        for k in bad:
            print(f"  DIFFERS: {k}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
