"""Measurement: how far pre-activations reach in a lab's training, which the probes must cover.

The behaviour hash probes candidates out to minact.sandbox.fingerprint.REACH, beyond the
lab's probe range, because training feeds activations larger inputs than the probe range:
this script trains the 14 built-ins and offline-mutator children on a lab (every task,
seed, layer and step, plus the final forward passes) and prints the largest |pre-activation|
each saw.

    python bench/preactivations.py                  # the default lab, 16 mutator children
    python bench/preactivations.py --children 40 --tasks F.toml
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

from minact import seeds
from minact.lab.loader import default_tasks_path, load_lab
from minact.sandbox.fingerprint import REACH
from minact.sandbox.loader import Activation, load_activation
from minact.sandbox.trainer import Job, Trainer
from minact.search.mutate import Mutator


def _tapped(fn: Activation, seen: list[float]) -> Activation:
    def tap(z: torch.Tensor) -> torch.Tensor:
        seen.append(float(z.detach().abs().max()))
        return fn(z)

    return tap


def main() -> int:
    """Trains the candidates and prints how far their pre-activations reach."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=Path, default=None, help="lab file (default: the default lab)")
    p.add_argument("--children", type=int, default=16, help="offline-mutator children")
    args = p.parse_args()
    lab = load_lab(args.tasks or default_tasks_path())
    sources = {n: seeds.seed_candidate(n).source for n in seeds.SEEDS}
    mutator, names = Mutator(random.Random(0)), list(sources)
    for i in range(args.children):
        parent, other = sources[names[i % len(names)]], sources[names[(i * 5 + 3) % len(names)]]
        sources[f"child {i}"] = mutator.mutate(parent, other).source
    trainer = Trainer("cpu")
    overall = 0.0
    for name, source in sources.items():
        seen: list[float] = []
        trainer.train([Job(0, _tapped(load_activation(source), seen), t) for t in lab.tasks])
        overall = max(overall, max(seen))
        print(f"{name:<12} max |z| {max(seen):7.1f}", flush=True)
    n = len(sources)
    print(f"largest |pre-activation| over {n} candidates: {overall:.1f}; REACH = {REACH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
