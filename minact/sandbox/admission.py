"""Behaviour fingerprint and dynamic admission checks (runs in the worker, never in main).

A candidate that passed static validation is loaded from its normalised source and
probed on a fixed float64 grid: it must keep shape, dtype and device, leave its input
alone, stay finite (in float64 and in float32, the training dtype), be pointwise, and
cost at most the lab's budget of elementwise operations relative to GELU. Its
behaviour hash is a sha256 of f and f' on the grid, rounded to 8 significant digits,
so `x * torch.sigmoid(x)` and `F.silu(x)` share one evaluation.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from minact.candidate import Hash
from minact.sandbox.loader import Activation, CandidateError, describe, load_activation
from minact.score import Admission

__all__ = ["admit", "probe_grid"]

GRID_POINTS = 2048
# An irrational shift keeps kinks at 0 and at the integers off the grid, so
# `x.clamp(min=0)` and `F.relu(x)` (which differ only in f'(0)) hash alike.
GRID_SHIFT = math.sqrt(2) * 1e-3
DIGITS = 8
POINTWISE_TOL = 1e-9
MAX_ELEMENTS_PER_INPUT = 4  # largest single intermediate, in elements per input element


def probe_grid(lo: float, hi: float) -> torch.Tensor:
    """Returns the fixed float64 probe grid on [lo, hi]."""
    return torch.linspace(lo, hi, GRID_POINTS, dtype=torch.float64) + GRID_SHIFT


class _CostCounter(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts elements produced by every non-view aten op, and the largest one."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.elements = 0
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False):
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.elements += t.numel()
                    self.largest = max(self.largest, t.numel())
        return out


def _cost(fn: Activation, x: torch.Tensor) -> tuple[float, int]:
    counter = _CostCounter()
    with torch.no_grad(), counter:
        fn(x)
    return counter.elements / x.numel(), counter.largest


def _call(fn: Activation, x: torch.Tensor, what: str) -> torch.Tensor:
    try:
        y = fn(x)
    except Exception as e:  # any exception is the candidate's failure, reported with its type
        raise CandidateError("error", f"activation({what}) raised {describe(e)}") from None
    if not isinstance(y, torch.Tensor):
        raise CandidateError("bad_output", f"activation returned {type(y).__name__}, not a tensor")
    if y.shape != x.shape:
        raise CandidateError(
            "bad_output", f"activation changed the shape from {tuple(x.shape)} to {tuple(y.shape)}"
        )
    if y.dtype != x.dtype:
        raise CandidateError(
            "bad_output", f"activation changed the dtype from {x.dtype} to {y.dtype}"
        )
    if y.device != x.device:
        raise CandidateError("bad_output", f"activation moved the tensor to {y.device}")
    return y


def _first_bad(x: torch.Tensor, v: torch.Tensor) -> float:
    return float(x.reshape(-1)[~torch.isfinite(v.reshape(-1))][0])


def _check_pointwise(fn: Activation, x: torch.Tensor, y: torch.Tensor) -> None:
    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        return bool(((a - b).abs() <= POINTWISE_TOL * (1 + b.abs())).all())

    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(x.numel(), generator=gen)
    if not same(_call(fn, x[perm], "permuted x"), y[perm]):
        raise CandidateError("not_pointwise", "output changes when the inputs are reordered")
    if not same(_call(fn, x[:7].clone(), "x[:7]"), y[:7]):
        raise CandidateError("not_pointwise", "output depends on how many inputs are passed")
    if not same(_call(fn, x.reshape(32, -1), "x as 2-D").reshape(-1), y):
        raise CandidateError("not_pointwise", "output depends on the input's shape")
    idx = torch.randperm(x.numel(), generator=gen)[:8]
    bumped = x.clone()
    bumped[idx] += 0.5
    keep = torch.ones(x.numel(), dtype=torch.bool)
    keep[idx] = False
    if not same(_call(fn, bumped, "perturbed x")[keep], y[keep]):
        raise CandidateError("not_pointwise", "changing one input changes other outputs")


def _fingerprint(y: torch.Tensor, dy: torch.Tensor) -> Hash:
    h = hashlib.sha256()
    for v in (*y.tolist(), *dy.tolist()):
        # Round, and fold -0.0 into 0.0, so float noise does not split identical functions.
        h.update(f"{v + 0.0:.{DIGITS - 1}e};".encode())
    return Hash(h.hexdigest())


def _check(fn: Activation, probe: tuple[float, float], max_cost: float) -> Admission:
    x = probe_grid(*probe)
    original = x.clone()
    with torch.no_grad():
        y = _call(fn, x, "x")
    if not torch.equal(x, original):
        raise CandidateError("bad_output", "activation modified its input in place")
    if not bool(torch.isfinite(y).all()):
        raise CandidateError("nonfinite", f"f(x) is not finite at x = {_first_bad(x, y):.4g}")
    with torch.no_grad():
        y32 = _call(fn, x.float(), "x in float32")
    if not bool(torch.isfinite(y32).all()):
        raise CandidateError(
            "nonfinite", f"f(x) is not finite in float32 at x = {_first_bad(x, y32):.4g}"
        )
    with torch.no_grad():
        _check_pointwise(fn, x, y)
    cost, largest = _cost(fn, x)
    gelu_cost, _ = _cost(F.gelu, x)
    relative = cost / gelu_cost
    if largest > MAX_ELEMENTS_PER_INPUT * x.numel():
        raise CandidateError("too_costly", f"allocates {largest // x.numel()} elements per input")
    if relative > max_cost:
        raise CandidateError(
            "too_costly",
            f"costs {relative:.1f}x GELU in elementwise operations (limit {max_cost:g}x)",
        )
    xg = x.clone().requires_grad_(True)
    yg = _call(fn, xg, "x")
    if not yg.requires_grad:
        dy = torch.zeros_like(x)
    else:
        try:
            (dy,) = torch.autograd.grad(yg.sum(), xg, allow_unused=True)
        except Exception as e:  # e.g. an op with no derivative: training would fail too
            raise CandidateError("error", f"f'(x) cannot be computed: {describe(e)}") from None
        dy = torch.zeros_like(x) if dy is None else dy
    if not bool(torch.isfinite(dy).all()):
        raise CandidateError("nonfinite", f"f'(x) is not finite at x = {_first_bad(x, dy):.4g}")
    return Admission("ok", "", _fingerprint(y, dy), round(relative, 3))


def admit(source: str, probe: tuple[float, float], max_cost: float) -> Admission:
    """Returns the admission verdict and behaviour hash of one normalised candidate source."""
    try:
        return _check(load_activation(source), probe, max_cost)
    except CandidateError as e:
        return Admission(e.kind, e.reason)
    except RecursionError:
        return Admission("error", "activation recursed too deeply")
    except MemoryError:
        return Admission("error", "activation ran out of memory")
