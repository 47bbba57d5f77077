"""Verifying reuse: does a candidate compute what the code that trained a result computed?

Two codes with one behaviour hash may share results, but the hash is probed on chosen
points. Before a candidate reuses a result another code trained, the worker evaluates both
codes at that result's trace (trace.py: pre-activations the activation actually received in
training), in float32 on the training device, and requires f and f' to agree within
float32 rounding: RTOL relative plus ATOL absolute. Equal formulas written differently
(`x * torch.sigmoid(x)`, `F.silu(x)`) differ by a few units in the last place; code that
does something else in training differs by far more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from minact.sandbox.loader import CandidateError, load_activation
from minact.sandbox.probe import value_and_slope

__all__ = ["ATOL", "RTOL", "verify"]

RTOL = 1e-4
ATOL = 1e-6


def _differs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    same = ((a - b).abs() <= ATOL + RTOL * torch.maximum(a.abs(), b.abs())) | (a == b)
    return ~(same | (a.isnan() & b.isnan()))


def verify(source: str, reference: str, points: Sequence[float], device: str) -> dict[str, Any]:
    """Returns {"match": bool, "reason": str}: does `source` compute `reference`'s f and f'?"""
    z = torch.tensor(list(points), dtype=torch.float32, device=device).reshape(1, -1, 1)
    what = "training's pre-activations"
    try:
        ours = value_and_slope(load_activation(source), z, what)
        theirs = value_and_slope(load_activation(reference), z, what)
    except CandidateError as e:
        return {"match": False, "reason": f"on training's pre-activations: {e.reason}"}
    for name, a, b in (("f", ours[0], theirs[0]), ("f'", ours[1], theirs[1])):
        bad = _differs(a, b).reshape(-1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            x, mine, other = (float(t.reshape(-1)[i]) for t in (z, a, b))
            return {
                "match": False,
                "reason": f"{name}({x:.6g}) is {mine:.6g}, not {other:.6g}, at a pre-activation "
                "of training",
            }
    return {"match": True, "reason": ""}
