"""Calling a candidate on probe points: f checked for shape, dtype and device, and f'.

One copy of "call the activation and differentiate it", used by admission (the behaviour
hash and the finiteness checks), by verification of reused results, and by the report's
curves. Runs in the worker only.
"""

from __future__ import annotations

import torch

from minact.sandbox.loader import Activation, CandidateError, describe

__all__ = ["call", "first_bad", "value_and_slope"]


def call(fn: Activation, x: torch.Tensor, what: str) -> torch.Tensor:
    """Returns fn(x); raises CandidateError unless it is a tensor like x (shape, dtype, device)."""
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
        # A Python complex number (say (-8) ** 0.5 of a computed base) makes a complex tensor.
        why = " (a complex result: a negative number to a fractional power?)"
        raise CandidateError(
            "bad_output",
            f"activation changed the dtype from {x.dtype} to {y.dtype}"
            + (why if y.is_complex() else ""),
        )
    if y.device != x.device:
        raise CandidateError("bad_output", f"activation moved the tensor to {y.device}")
    return y


def value_and_slope(
    fn: Activation, x: torch.Tensor, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns f(x) and f'(x) by autograd, in x's dtype (f' = 0 where f ignores x)."""
    xg = x.detach().clone().requires_grad_(True)
    y = call(fn, xg, what)
    if not y.requires_grad:
        return y.detach(), torch.zeros_like(x)
    try:
        (dy,) = torch.autograd.grad(y.sum(), xg, allow_unused=True)
    except Exception as e:  # e.g. an op with no derivative: training would fail too
        raise CandidateError("error", f"f'(x) cannot be computed: {describe(e)}") from None
    return y.detach(), torch.zeros_like(x) if dy is None else dy


def first_bad(x: torch.Tensor, v: torch.Tensor) -> float:
    """Returns the first input at which `v` is not finite (there must be one)."""
    return float(x.reshape(-1)[~torch.isfinite(v.reshape(-1))][0])
