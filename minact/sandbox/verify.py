"""Verifying reuse: does a candidate compute what the code that trained a result computed?

Two codes with one behaviour hash may share results, but the hash is probed on chosen
points. Before a candidate reuses a result another code trained, the worker evaluates both
codes, in float32 on the training device, and requires f and f' to agree

* within float32 rounding (RTOL relative plus ATOL absolute) at the result's trace
  (trace.py: pre-activations the activation actually received in training, its extremes
  included), and
* within DENSE_RTOL relative plus DENSE_ATOL absolute at a dense check drawn from the
  cache's secret salt. Among millions of points, equal formulas written differently part by
  more than rounding where they cancel (`0.5 * x * (1 + torch.erf(x / math.sqrt(2)))` is
  0.14% off `F.gelu` at x = -3.5); what a narrow window hides and training would feel is a
  jump, a spike or a NaN. The points: CORE_POINTS evenly spaced over the
  central range of the trace (where nearly all of training's inputs fall), DENSE_POINTS over
  [-REACH, REACH], and FAR_POINTS log-spaced out to FAR_MARGIN times the trace's largest
  magnitude, each grid shifted by a salted fraction of its spacing. The margin covers the
  steps between the trace's moments, whose inputs can reach a little further: up to 10%
  beyond the moments' largest (gmtu on the default lab; `bench/trace_reach.py`). A
  difference confined to a band between the trace's points, which training would still run
  into, is found there: a band wider
  than the spacing (about 1e-5 in the core, 1.2e-4 out to REACH) always, a narrower one
  with probability width / spacing (minact reports this limit in its README).

Equal formulas written differently (`x * torch.sigmoid(x)`, `F.silu(x)`) differ by a few
units in the last place; code that does something else in training differs by far more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from minact.sandbox.fingerprint import REACH
from minact.sandbox.loader import Activation, CandidateError, load_activation
from minact.sandbox.probe import value_and_slope

__all__ = [
    "ATOL",
    "CORE_POINTS",
    "DENSE_ATOL",
    "DENSE_POINTS",
    "DENSE_RTOL",
    "FAR_MARGIN",
    "FAR_POINTS",
    "RTOL",
    "dense_points",
    "verify",
]

RTOL = 1e-4
ATOL = 1e-6
DENSE_RTOL = 1e-2
DENSE_ATOL = 1e-3
CORE_POINTS = 1 << 19
DENSE_POINTS = 1 << 20
FAR_POINTS = 1 << 12
FAR_MARGIN = 2.0  # the far points reach this many times the trace's largest magnitude
CORE_QUANTILE = 0.01  # the core spans the trace's 1st to 99th percentile
_CHUNK = 1 << 18  # points per evaluation: bounds the memory of a long formula's graph


def _differs(
    a: torch.Tensor, b: torch.Tensor, rtol: float = RTOL, atol: float = ATOL
) -> torch.Tensor:
    same = ((a - b).abs() <= atol + rtol * torch.maximum(a.abs(), b.abs())) | (a == b)
    return ~(same | (a.isnan() & b.isnan()))


def _grid(lo: float, hi: float, n: int, shift: float) -> torch.Tensor:
    step = (hi - lo) / n
    return lo + (torch.arange(n, dtype=torch.float64) + shift) * step


def dense_points(trace: Sequence[float], seed: int) -> torch.Tensor:
    """Returns the float32 points of the dense check for `trace` (see the module doc)."""
    z = torch.tensor(list(trace), dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    shifts = torch.rand(3, generator=gen, dtype=torch.float64).tolist()
    parts = [_grid(-REACH, REACH, DENSE_POINTS, shifts[0])]
    if z.numel() >= 2:
        q = torch.tensor([CORE_QUANTILE, 1 - CORE_QUANTILE], dtype=torch.float64)
        lo, hi = (float(v) for v in z.quantile(q))
        if hi > lo:
            parts.append(_grid(lo, hi, CORE_POINTS, shifts[1]))
    far = FAR_MARGIN * float(z.abs().max()) if z.numel() else 0.0
    if math.isfinite(far) and far > REACH:
        logs = _grid(math.log(REACH), math.log(far), FAR_POINTS, shifts[2]).exp()
        parts += [logs, -logs]
    return torch.cat(parts).to(torch.float32)


def _compare(
    ours: Activation, theirs: Activation, z: torch.Tensor, where: str, tol: tuple[float, float]
) -> str:
    """Returns why `ours` and `theirs` differ on z beyond (rtol, atol) `tol` ("" where they
    agree); raises CandidateError."""
    for start in range(0, z.numel(), _CHUNK):
        x = z[start : start + _CHUNK].reshape(1, -1, 1)
        a, b = value_and_slope(ours, x, where), value_and_slope(theirs, x, where)
        for name, mine, other in (("f", a[0], b[0]), ("f'", a[1], b[1])):
            bad = _differs(mine, other, *tol).reshape(-1)
            if bool(bad.any()):
                i = int(bad.nonzero()[0])
                v, m, o = (float(t.reshape(-1)[i]) for t in (x, mine, other))
                return f"{name}({v:.6g}) is {m:.6g}, not {o:.6g}, at {where}"
    return ""


def verify(
    source: str, reference: str, points: Sequence[float], device: str, seed: int = 0
) -> dict[str, Any]:
    """Returns {"match": bool, "reason": str}: does `source` compute `reference`'s f and f'?

    `points` is the trace; `seed` (from the cache's salt) places the dense check.
    """
    trace = torch.tensor(list(points), dtype=torch.float32, device=device)
    try:
        ours, theirs = load_activation(source), load_activation(reference)
        why = _compare(ours, theirs, trace, "a pre-activation of training", (RTOL, ATOL))
        if not why:
            dense = dense_points(points, seed).to(device)
            tol = (DENSE_RTOL, DENSE_ATOL)
            why = _compare(ours, theirs, dense, "a point of the dense check", tol)
    except CandidateError as e:
        return {"match": False, "reason": f"on training's pre-activations: {e.reason}"}
    return {"match": not why, "reason": why}
