"""Activation curves for the report's plots: f and f' of a candidate on a grid.

The worker computes them (candidate code never runs here); the cache keeps them by code
hash and grid. GRID is the one grid the reports draw on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash

__all__ = ["GRID", "Curve", "cached_curves", "parse_curve"]

GRID = (-6.0, 6.0, 241)  # lo, hi, points: x in [-6, 6] every 0.05


@dataclass(frozen=True, slots=True)
class Curve:
    """An activation and its derivative sampled on a grid, for plots.

    Attributes:
        x: the float64 grid.  f: f(x).  df: f'(x) by autograd.  NaN where not finite.
    """

    x: tuple[float, ...]
    f: tuple[float, ...]
    df: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Curve:
        """Builds a Curve from the worker's JSON (null for non-finite); raises on bad input."""

        def floats(key: str) -> tuple[float, ...]:
            values = d[key]
            if not isinstance(values, list):
                raise TypeError(f"curve {key} is not a list")
            return tuple(math.nan if v is None else float(v) for v in values)

        x, f, df = floats("x"), floats("f"), floats("df")
        if not len(x) == len(f) == len(df) or not all(math.isfinite(v) for v in x):
            raise ValueError("curve lists differ in length or the grid is not finite")
        return cls(x, f, df)


def parse_curve(data: Mapping[str, Any]) -> Curve | None:
    """Returns the Curve in cached or worker data, or None for an error or bad data."""
    try:
        return None if "error" in data else Curve.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


def cached_curves(
    cache: FitnessCache,
    candidates: Sequence[Candidate],
    grid: tuple[float, float, int] = GRID,
) -> dict[Hash, Curve]:
    """Returns the curves the cache already holds for `candidates` (no worker is started)."""
    out: dict[Hash, Curve] = {}
    for c in candidates:
        data = cache.get_curve(c.code_hash, grid)
        curve = parse_curve(data) if data is not None else None
        if curve is not None:
            out[c.code_hash] = curve
    return out
