"""How minact writes a number for people: one rule for every table, line and claim."""

from __future__ import annotations

import math

__all__ = ["number_text"]


def number_text(v: float | None, spec: str) -> str:
    """Returns `v` formatted with `spec` (no fill or alignment), or an em dash for a missing
    or non-finite number; a value that rounds to zero never reads "-0.000"."""
    if v is None or not math.isfinite(v):
        return "—"
    # A negative value that rounds to zero would print "-0.000", a sign no digit backs
    # (under the mean log-ratio, "better than the reference"): zero's own text replaces it.
    # (Not the "z" format option: Python 3.10, which minact supports, lacks it.)
    text, zero = format(v, spec), format(0.0, spec)
    return zero if text.lstrip("+- ") == zero.lstrip("+- ") else text
