"""The numeric limits of candidate code: literal sizes, constant powers, loop trip counts.

Checked statically, because Python evaluates constant arithmetic and loop bounds exactly:
`10 ** (10 ** 9)` or `range(10 ** 12)` would hang the worker long before a FLOP count or a
deadline could say why.
"""

from __future__ import annotations

import ast

__all__ = [
    "MAX_CONST_EXPONENT",
    "MAX_INT_LITERAL",
    "MAX_LOOP_ITERATIONS",
    "ValidationError",
    "check_constant",
    "check_power",
    "range_trips",
]

MAX_LOOP_ITERATIONS = 64  # product of the trip counts of nested loops
MAX_INT_LITERAL = 10**18
MAX_CONST_EXPONENT = 64


class ValidationError(ValueError):
    """Raised inside the validator; becomes a Rejection with its message."""


def check_constant(e: ast.Constant, line: int) -> ast.Constant:
    """Returns a copy of a literal the candidate may use; raises ValidationError otherwise."""
    v = e.value
    if isinstance(v, bool) or v is None:
        return ast.Constant(value=v)
    if isinstance(v, int):
        if abs(v) > MAX_INT_LITERAL:
            raise ValidationError(f"line {line}: integer literal too large (limit 1e18)")
        return ast.Constant(value=v)
    if isinstance(v, float):
        return ast.Constant(value=v)
    raise ValidationError(f"line {line}: {type(v).__name__} constants are not allowed here")


def _is_constant_expr(e: ast.expr) -> bool:
    if isinstance(e, ast.Constant):
        return True
    if isinstance(e, ast.UnaryOp):
        return _is_constant_expr(e.operand)
    if isinstance(e, ast.BinOp):
        return _is_constant_expr(e.left) and _is_constant_expr(e.right)
    return False


def check_power(e: ast.BinOp, line: int) -> None:
    """Raises ValidationError for a power of constants that Python would compute for ages."""
    # Constant ** constant is Python integer arithmetic: 10 ** (10 ** 9) would hang the
    # worker long before any FLOP count. Exponents of constants must be small literals.
    if not (_is_constant_expr(e.left) and _is_constant_expr(e.right)):
        return
    r = e.right
    if isinstance(r, ast.UnaryOp) and isinstance(r.op, ast.USub):
        r = r.operand
        if isinstance(r, ast.Constant) and isinstance(r.value, (int, float)) and r.value > 0:
            # m ** -n is a float, computed as float(m) ** -n at once, whatever n: 10 ** -300
            # is 1e-300. The base's own powers are checked where they occur, and its size
            # by check_numeric (float(m) needs |m| < 1.8e308; the ints there stay <= 1e18).
            return
    # Powers in the base compound: ((((10 ** 18) ** 64) ** 64) ** 64) ** 64 has 3e8 digits.
    nested = any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(e.left))
    if (
        nested
        or not (isinstance(r, ast.Constant) and isinstance(r.value, (int, float)))
        or abs(r.value) > MAX_CONST_EXPONENT
    ):
        raise ValidationError(
            f"line {line}: a constant raised to a power needs a literal exponent "
            f"<= {MAX_CONST_EXPONENT} and a base without **"
        )


def range_trips(it: ast.expr) -> int:
    """Returns the trip count of `range(...)` with literal bounds; raises ValidationError."""
    line = getattr(it, "lineno", 0)
    if not (
        isinstance(it, ast.Call)
        and isinstance(it.func, ast.Name)
        and it.func.id == "range"
        and not it.keywords
        and 1 <= len(it.args) <= 3
    ):
        raise ValidationError(f"line {line}: for loops must run over range(N) with constant N")
    bounds: list[int] = []
    for a in it.args:
        neg = isinstance(a, ast.UnaryOp) and isinstance(a.op, ast.USub)
        c = a.operand if isinstance(a, ast.UnaryOp) and neg else a
        if not (isinstance(c, ast.Constant) and type(c.value) is int):
            raise ValidationError(f"line {line}: range() bounds must be integer literals")
        if abs(c.value) > MAX_INT_LITERAL:
            raise ValidationError(f"line {line}: range() bound too large")
        bounds.append(-c.value if neg else c.value)
    if len(bounds) == 3 and bounds[2] == 0:
        raise ValidationError(f"line {line}: range() step must not be zero")
    return len(range(*bounds))
