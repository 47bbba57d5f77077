"""Dynamic admission checks and the behaviour hash (runs in the worker, never in main).

A candidate that passed static validation is loaded from its normalised source and
probed. It must keep shape, dtype and device, leave its input alone, be pointwise, and
keep f and f' finite, in float64 and in float32 (the training dtype), at every probe point
inside the lab's probe range: a fixed grid, points drawn from the cache's secret salt, and
random float32 inputs shaped like a training batch (which also runs code that would crash
between grid points). It must cost at most the lab's `max_cost` relative to GELU, counted
and timed (cost.py). One whose f' is 0 almost everywhere (FLAT_SHARE) is admitted with a
note in its reason, which the ranking shows beside its score. Its behaviour hash covers f
and f' at those points and beyond the probe range (fingerprint.py), so `x * torch.sigmoid(x)`
and `F.silu(x)` share one evaluation while code that differs in float32, between grid points
or beyond the probe range does not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minact.sandbox import cost
from minact.sandbox.fingerprint import REACH, behaviour_hash, probe_grid, probe_points
from minact.sandbox.loader import Activation, CandidateError, load_activation
from minact.sandbox.probe import call, first_bad, value_and_slope
from minact.score import TIMED_COST, Admission

__all__ = ["admit", "probe_grid", "warm_up"]

POINTWISE_TOL = 1e-9
# A candidate whose f' is exactly 0 at all but this share of the probe points inside the probe
# range (float64 and float32 alike) is admitted and trained with a note saying it is flat:
# sign, round, floor, a constant. No gradient reaches the layers before it, so only the output
# layer learns: the network is a fixed random-features model, and its score says how well
# such features extrapolate, not how the activation trains. Users of an activation search
# expect that said next to the score (it can rank above ReLU on a small lab); the contract
# has no failure kind for it, and refusing it would drop a number measured on its own code.
FLAT_SHARE = 0.01
MAX_ELEMENTS_PER_INPUT = 4  # largest single intermediate, in elements per input element
NEAR_LIMIT = 1.3  # a timed ratio up to this multiple of its limit is timed again (_check_cost)
RANDOM_SHAPE = (4, 64, 16)  # (networks, points, width), like the trainer's hidden layers


def _check_pointwise(fn: Activation, x: torch.Tensor, y: torch.Tensor) -> None:
    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        return bool(((a - b).abs() <= POINTWISE_TOL * (1 + b.abs())).all())

    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(x.numel(), generator=gen)
    if not same(call(fn, x[perm], "permuted x"), y[perm]):
        raise CandidateError("not_pointwise", "output changes when the inputs are reordered")
    if not same(call(fn, x[:7].clone(), "x[:7]"), y[:7]):
        raise CandidateError("not_pointwise", "output depends on how many inputs are passed")
    if not same(call(fn, x.reshape(32, -1), "x as 2-D").reshape(-1), y):
        raise CandidateError("not_pointwise", "output depends on the input's shape")
    idx = torch.randperm(x.numel(), generator=gen)[:8]
    bumped = x.clone()
    bumped[idx] += 0.5
    keep = torch.ones(x.numel(), dtype=torch.bool)
    keep[idx] = False
    if not same(call(fn, bumped, "perturbed x")[keep], y[keep]):
        raise CandidateError("not_pointwise", "changing one input changes other outputs")


def _require_finite(x: torch.Tensor, values: torch.Tensor, what: str, dtype: str = "") -> None:
    if not bool(torch.isfinite(values).all()):
        where = f" in {dtype}" if dtype else ""
        bad = first_bad(x, values)
        raise CandidateError("nonfinite", f"{what} is not finite{where} at x = {bad:.4g}")


def _random_inputs(seed: int, lo: float, hi: float) -> torch.Tensor:
    """Returns float32 inputs shaped like a batch: half in [lo, hi], half out to ±REACH."""
    gen = torch.Generator().manual_seed(seed ^ 0x5EED)
    n = RANDOM_SHAPE[0] * RANDOM_SHAPE[1] * RANDOM_SHAPE[2]
    inside = lo + (hi - lo) * torch.rand(n // 2, generator=gen, dtype=torch.float64)
    outside = (2 * torch.rand(n - n // 2, generator=gen, dtype=torch.float64) - 1) * REACH
    x = torch.cat([inside, outside])[torch.randperm(n, generator=gen)]
    return x.to(torch.float32).reshape(RANDOM_SHAPE)


def _check_random(fn: Activation, seed: int, lo: float, hi: float) -> None:
    x = _random_inputs(seed, lo, hi)
    y, dy = value_and_slope(fn, x, "random float32 x")
    inside = (x >= lo) & (x <= hi)
    _require_finite(x[inside], y[inside], "f(x)", "float32 (random inputs)")
    _require_finite(x[inside], dy[inside], "f'(x)", "float32 (random inputs)")
    with torch.no_grad():
        flat = call(fn, x.reshape(-1), "random float32 x, flattened").reshape(x.shape)
    close = ((flat - y).abs() <= 1e-5 * (1 + y.abs())) | (flat == y) | (flat.isnan() & y.isnan())
    if not bool(close.all()):
        raise CandidateError("not_pointwise", "output depends on the input's shape (3-D float32)")


def _check_cost(fn: Activation, x: torch.Tensor, probe: tuple[float, float], limit: float) -> float:
    relative, largest = cost.count(fn, x)
    relative /= cost.count(F.gelu, x)[0]
    if largest > MAX_ELEMENTS_PER_INPUT * x.numel():
        raise CandidateError("too_costly", f"allocates {largest // x.numel()} elements per input")
    if relative > limit:
        raise CandidateError(
            "too_costly",
            f"costs {relative:.1f}x GELU in elementwise operations (limit {limit:g}x)",
        )
    slowest = cost.TIME_FACTOR * limit
    ratio = cost.time_ratio(fn, *probe, slowest)
    if slowest < ratio <= NEAR_LIMIT * slowest:
        # Within timing noise of the limit (one machine's ratios for one candidate spread
        # by +-12% between calls): a verdict that is cached for good is timed again, longer.
        ratio = min(ratio, cost.time_ratio(fn, *probe, slowest, repeats=3 * cost.TIME_REPEATS))
    if ratio > slowest:
        raise CandidateError(
            "too_costly",
            f"{TIMED_COST}{ratio:.0f}x GELU's time forward and backward "
            f"(limit {cost.TIME_FACTOR:g} x max_cost = {slowest:g}x)",
        )
    return relative


def _check(fn: Activation, probe: tuple[float, float], max_cost: float, seed: int) -> Admission:
    lo, hi = probe
    x = probe_grid(lo, hi)
    original = x.clone()
    with torch.no_grad():
        y = call(fn, x, "x")
        if not torch.equal(x, original):
            raise CandidateError("bad_output", "activation modified its input in place")
        _require_finite(x, y, "f(x)")
        _require_finite(x, call(fn, x.float(), "x in float32"), "f(x)", "float32")
        _check_pointwise(fn, x, y)
    relative = _check_cost(fn, x, probe, max_cost)
    within, beyond = probe_points(lo, hi, seed)
    points = torch.cat([within, beyond])
    y64, dy64 = value_and_slope(fn, points, "x")
    y32, dy32 = value_and_slope(fn, points.float(), "x in float32")
    n = within.numel()
    _require_finite(within, y64[:n], "f(x)")
    _require_finite(within, dy64[:n], "f'(x)")
    _require_finite(within, y32[:n], "f(x)", "float32")
    _require_finite(within, dy32[:n], "f'(x)", "float32")
    _check_random(fn, seed, lo, hi)
    note = _flat_note(dy64[:n], dy32[:n], probe)
    return Admission("ok", note, behaviour_hash(y64, dy64, y32, dy32), round(relative, 3))


def _flat_note(dy64: torch.Tensor, dy32: torch.Tensor, probe: tuple[float, float]) -> str:
    """Returns a note if f' is 0 at all but FLAT_SHARE of the probe points, else ""."""
    sloped = float(((dy64 != 0) | (dy32 != 0)).double().mean())
    if sloped > FLAT_SHARE:
        return ""
    lo, hi = probe
    where = "every probe point" if sloped == 0 else f"{1 - sloped:.1%} of the probe points"
    return (
        f"flat: f'(x) = 0 at {where} in [{lo:g}, {hi:g}]: no gradient reaches the "
        f"hidden layers, only the output layer trains (a score of fixed random features)"
    )


def admit(source: str, probe: tuple[float, float], max_cost: float, seed: int = 0) -> Admission:
    """Returns the admission verdict and behaviour hash of one normalised candidate source.

    `seed` (derived from the cache's secret salt) places the probe points no source can
    predict; the behaviour hash depends on it.
    """
    try:
        return _check(load_activation(source), probe, max_cost, seed)
    except CandidateError as e:
        return Admission(e.kind, e.reason)
    except RecursionError:
        return Admission("error", "activation recursed too deeply")
    except MemoryError:
        return Admission("error", "activation ran out of memory")


def warm_up() -> None:
    """Admits a trivial activation once, so that torch's lazy imports (the dispatch mode
    pulls in torch._dynamo: seconds) happen at worker start, not inside a deadline."""
    admit("def activation(x):\n    return F.gelu(x)\n", (-1.0, 1.0), 16.0)
