"""Measurement: do training's inputs between the trace's moments reach beyond its range?

A result's trace (minact.sandbox.trace) samples the pre-activations at four moments: the
initial weights, half way, and the final weights on the training and the OOD inputs. Other
code reuses the result only after it computes the same f and f' at the trace and at a dense
check that reaches out to the trace's largest input (and over [-REACH, REACH] in any case).
Training feeds the activation at every step, though, and the ID test forward too. This
script trains each built-in on each task of a lab alone, records the lowest and highest
input of every call of the activation, and prints how many tasks saw an input beyond the
span of the four moments, and by how much (as a fraction of the moments' largest input).

    python bench/trace_reach.py                       # the default lab, the 14 built-ins
    python bench/trace_reach.py --tasks classic --only gelu tanh
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from minact import seeds
from minact.lab.loader import load_lab
from minact.lab.suites import resolve
from minact.sandbox import trace
from minact.sandbox.fingerprint import REACH
from minact.sandbox.loader import Activation, load_activation
from minact.sandbox.trainer import Job, Trainer

# The span of the inputs seen, keyed by whether a trace moment (a snapshot) was being taken.
_Spans = dict[bool, list[float]]


@contextmanager
def _moments(state: dict[str, bool]) -> Iterator[None]:
    """Sets state["snapshot"] while the tracer takes one of its moments."""
    original = trace.Tracer.snapshot

    def snapshot(self: trace.Tracer, params: list[torch.Tensor], x: torch.Tensor) -> None:
        state["snapshot"] = True
        try:
            original(self, params, x)
        finally:
            state["snapshot"] = False

    trace.Tracer.snapshot = snapshot  # type: ignore[method-assign]
    try:
        yield
    finally:
        trace.Tracer.snapshot = original  # type: ignore[method-assign]


def _tapped(fn: Activation, spans: _Spans, state: dict[str, bool]) -> Activation:
    def tap(z: torch.Tensor) -> torch.Tensor:
        if z.numel():
            span = spans[state["snapshot"]]
            span[0] = min(span[0], float(z.detach().min()))
            span[1] = max(span[1], float(z.detach().max()))
        return fn(z)

    return tap


def main() -> int:
    """Trains the built-ins task by task and prints how far the steps reach beyond the trace."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", default="tasks.toml", help="lab file or built-in lab name")
    p.add_argument("--only", nargs="*", default=list(seeds.SEEDS), help="built-ins to train")
    args = p.parse_args()
    torch.set_num_threads(1)
    lab = load_lab(resolve(Path(args.tasks)))
    state = {"snapshot": False}
    largest = 0.0
    with _moments(state):
        for name in args.only:
            fn = load_activation(seeds.seed_candidate(name).source)
            excess: list[float] = []
            for task in lab.tasks:
                spans: _Spans = {True: [math.inf, -math.inf], False: [math.inf, -math.inf]}
                Trainer("cpu").train([Job(0, _tapped(fn, spans, state), task)])
                (lo, hi), (low, high) = spans[True], spans[False]
                largest = max(largest, abs(low), abs(high), abs(lo), abs(hi))
                scale = max(abs(lo), abs(hi)) or 1.0
                excess.append(max(lo - low, high - hi, 0.0) / scale)
            beyond = sorted(e for e in excess if e > 0)
            worst = f"{beyond[-1]:.4f}" if beyond else "0"
            print(
                f"{name:<12} tasks beyond the moments' span: {len(beyond):3d} of {len(excess)};"
                f" largest excess {worst} of the moments' largest |input|",
                flush=True,
            )
    print(f"largest |input| of any call: {largest:.1f}; the dense check covers REACH = {REACH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
