"""Signed bounds of Python ints in candidate code: interval arithmetic for the numeric check.

An Interval (lo, hi) says an int lies in [lo, hi]; endpoints are floats, and -inf or inf
where nothing is known. The sign matters because Python's results depend on it: `m ** n`
of ints is a float when n < 0 (`10 ** -64` is 1e-64, computed as float(10) ** -64.0),
and an int of up to |m| ** n digits otherwise; `(-3) ** 2` is 9. A bound on |n| alone
had to assume the worst of both, and refused `10 ** -64` as a 65-digit int.
"""

from __future__ import annotations

import ast
import math

from minact.validate.limits import MAX_INT_LITERAL

__all__ = ["Interval", "complex_power", "fold", "hull", "int_op", "magnitude", "point", "span"]
__all__ += ["unary"]

Interval = tuple[float, float]

_ANY: Interval = (-math.inf, math.inf)
_MAX_DIGITS = math.log10(MAX_INT_LITERAL)


def point(v: float) -> Interval:
    """Returns the interval of the one value `v`."""
    return (v, v)


def span(m: float) -> Interval:
    """Returns [-m, m]: an int of |value| <= m, sign unknown."""
    return (-m, m)


def magnitude(r: Interval) -> float:
    """Returns the largest |value| in `r`."""
    return max(-r[0], r[1])


def hull(*values: float) -> Interval:
    """Returns the smallest interval holding `values`; any NaN (0 * inf, inf - inf) is an
    unknown, so the whole line: NaN compares False, and a NaN bound would pass any limit."""
    if any(math.isnan(v) for v in values):
        return _ANY
    return (min(values), max(values))


def unary(op: ast.unaryop, r: Interval) -> Interval:
    """Returns the interval of `op n` for an int n in `r`."""
    if isinstance(op, ast.Not):
        return (0.0, 1.0)
    if isinstance(op, ast.USub):
        return (-r[1], -r[0])
    if isinstance(op, ast.Invert):  # ~n == -n - 1
        return (-r[1] - 1, -r[0] - 1)
    return r


def int_op(op: ast.operator, a: Interval, b: Interval) -> Interval | None:
    """Returns the interval of `m op n` for ints m in `a`, n in `b`, or None where the
    result is never an int (`/`, or `**` with n < 0). Unbounded endpoints mean the caller
    cannot bound the result, and refuses it."""
    if isinstance(op, ast.Div):
        return None
    if isinstance(op, ast.Add):
        return hull(a[0] + b[0], a[1] + b[1])
    if isinstance(op, ast.Sub):
        return hull(a[0] - b[1], a[1] - b[0])
    if isinstance(op, ast.Mult):
        return hull(a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    if isinstance(op, ast.FloorDiv):  # |m // n| <= |m| for any int n != 0
        return span(magnitude(a))
    if isinstance(op, ast.Mod):  # m % n lies between 0 and n, n excluded
        return hull(0.0, b[0], b[1])
    if isinstance(op, ast.Pow):
        return _power(a, b)
    return span(2 * max(magnitude(a), magnitude(b)))  # bitwise: at most one more bit


def _power(a: Interval, b: Interval) -> Interval | None:
    """Returns the interval of the int results of m ** n, m in `a`, n in `b` (see int_op)."""
    lo_n, hi_n = b
    if hi_n < 0:  # a float: Python computes float(m) ** n (or raises ZeroDivisionError)
        return None
    ints = _natural_power(a, max(lo_n, 0.0), hi_n)
    # Where n may be negative, the result may also be a float of |value| <= 1 (m != 0):
    # the interval holds -1 .. 1 too, so that int() of the value stays within it.
    return hull(*ints, -1.0, 1.0) if lo_n < 0 else ints


def _natural_power(a: Interval, lo_n: float, hi_n: float) -> Interval:
    """Returns the interval of m ** n for ints m in `a` and 0 <= lo_n <= n <= hi_n."""
    if hi_n == 0:
        return (1.0, 1.0)
    base = magnitude(a)
    nonnegative = a[0] >= 0 or (lo_n == hi_n and hi_n % 2 == 0)  # (-3) ** 2 == 9
    if base <= 1:  # 0, 1 and -1 to any power
        return (0.0 if nonnegative else -1.0, 1.0)
    if hi_n * math.log10(base) > _MAX_DIGITS:  # inf where either is unbounded
        return _ANY
    top = base**hi_n
    return (0.0 if nonnegative else -top, top)


def fold(op: ast.operator, a: float | None, b: float | None) -> float | None:
    """Returns `a op b` of Python numbers known at check time (float arithmetic), or None
    where it is not one known real float: either is unknown (None), Python raises (1.0 / 0,
    10.0 ** 400), or the operator is not arithmetic. A complex `**` is refused before."""
    if a is None or b is None:
        return None
    try:
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            return a * b
        if isinstance(op, ast.Div):
            return a / b
        if isinstance(op, ast.Pow) and not complex_power(a, b):  # never complex: refused
            value = a**b
            return value if isinstance(value, float) else None
    except (ArithmeticError, ValueError):
        return None
    return None


def complex_power(base: float | None, exponent: float | None, ints: Interval | None = None) -> bool:
    """Returns whether Python's `base ** exponent` is surely a complex number: a negative base
    (`base`, or any int in `ints` when its value is unknown) to a known power that is not a
    whole number ((-8) ** 0.5 is (1.7e-16+2.83j)). An int exponent is never fractional."""
    negative = (base is not None and base < 0) or (ints is not None and ints[1] < 0)
    if not negative or exponent is None or not math.isfinite(exponent):
        return False
    return not exponent.is_integer()
