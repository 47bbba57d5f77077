"""The behaviour hash: f and f' of a candidate at probe points, in float64 and float32.

Two candidates share a behaviour hash, and so may share results (after verification,
minact.evaluate), only when they agree at three kinds of points:

* a fixed grid of GRID_POINTS on the lab's probe range, shifted off 0 and the integers;
* points beyond the probe range out to REACH, where training also goes: pre-activations
  reach |z| = 43 in the classic lab and 50 in the generated default lab
  (bench/preactivations.py, every layer, step and seed), so REACH = 64 leaves a margin;
* SALTED_POINTS points drawn from the cache's secret salt (minact.cache), off any regular
  grid: the source cannot know where they are, so it cannot agree only there.

Every point is exactly representable in float32, so the float64 and float32 evaluations
see the same inputs. f and f' in float64 are hashed rounded to DIGITS significant digits
(float noise between equal formulas stays below that); in float32, the training dtype,
each value is hashed as "=" when it agrees with float64 within F32_RTOL/F32_ATOL (honest
float32 rounding is far inside that) and as its rounded value otherwise, so code that
computes something else in float32 (`(x*0 + 1e8 + 1) - 1e8` is 1 in float64, 0 in float32)
hashes apart. Non-finite values hash as themselves ("nan", "inf").
"""

from __future__ import annotations

import hashlib
import math

import torch

from minact.candidate import Hash

__all__ = ["REACH", "behaviour_hash", "probe_grid", "probe_points"]

GRID_POINTS = 2048
# An irrational shift keeps kinks at 0 and at the integers off the grid, so
# `x.clamp(min=0)` and `F.relu(x)` (which differ only in f'(0)) hash alike.
GRID_SHIFT = math.sqrt(2) * 1e-3
REACH = 64.0  # above the largest pre-activation measured in the labs (50, bench/RESULTS.md)
BEYOND_POINTS = 256  # log-spaced magnitudes up to REACH, both signs
SALTED_POINTS = 1024  # 3/4 inside the probe range, 1/4 beyond it
DIGITS = 8
F32_DIGITS = 4
F32_RTOL = 1e-3
F32_ATOL = 1e-4


def _float32_exact(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).to(torch.float64)


def probe_grid(lo: float, hi: float) -> torch.Tensor:
    """Returns the fixed float64 probe grid on [lo, hi] (values exact in float32)."""
    grid = torch.linspace(lo, hi, GRID_POINTS, dtype=torch.float64) + GRID_SHIFT
    return _float32_exact(grid)


def _beyond(lo: float, hi: float) -> torch.Tensor:
    magnitudes = torch.logspace(-3, math.log10(REACH), BEYOND_POINTS, dtype=torch.float64)
    both = torch.cat([magnitudes, -magnitudes]) * (1 + GRID_SHIFT)
    return both[(both < lo) | (both > hi)]


def _salted(seed: int, lo: float, hi: float) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    n_in = SALTED_POINTS * 3 // 4
    inside = lo + (hi - lo) * torch.rand(n_in, generator=gen, dtype=torch.float64)
    start = math.log(max(1e-3, min(-lo, hi)) if lo < 0 < hi else 1e-3)
    span = math.log(REACH) - start
    n_out = 4 * (SALTED_POINTS - n_in)  # drawn generously: those inside [lo, hi] are dropped
    logs = start + span * torch.rand(n_out, generator=gen, dtype=torch.float64)
    signs = torch.where(torch.rand(n_out, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
    outside = signs * torch.exp(logs)
    outside = outside[(outside < lo) | (outside > hi)][: SALTED_POINTS - n_in]
    return inside, outside


def probe_points(lo: float, hi: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns the float64 points inside [lo, hi] and beyond it, for the salt-derived `seed`."""
    inside, outside = _salted(seed, lo, hi)
    within = torch.cat([probe_grid(lo, hi), _float32_exact(inside).clamp(lo, hi)])
    return within, _float32_exact(torch.cat([_beyond(lo, hi), outside]))


def _token(v: float, digits: int) -> str:
    # Round, and fold -0.0 into 0.0, so float noise does not split identical functions.
    return f"{v + 0.0:.{digits - 1}e}"


def behaviour_hash(
    y64: torch.Tensor, dy64: torch.Tensor, y32: torch.Tensor, dy32: torch.Tensor
) -> Hash:
    """Returns the sha256 of f, f' (float64, rounded) and of how float32 departs from them."""
    h = hashlib.sha256()
    for v in (*y64.tolist(), *dy64.tolist()):
        h.update(_token(v, DIGITS).encode() + b";")
    h.update(b"|float32|")
    for lo_prec, hi_prec in ((y32, y64), (dy32, dy64)):
        low = lo_prec.to(torch.float64)
        agree = (low - hi_prec).abs() <= F32_ATOL + F32_RTOL * hi_prec.abs()
        agree |= (low == hi_prec) | (low.isnan() & hi_prec.isnan())  # equal infinities and NaNs
        for v, same in zip(low.tolist(), agree.tolist(), strict=True):
            h.update(b"=;" if same else _token(v, F32_DIGITS).encode() + b";")
    return Hash(h.hexdigest())
