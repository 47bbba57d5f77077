"""Candidate code computes in floating point: the numeric rules, checked on the normal form.

Training runs the activation on float32 tensors, so that is what candidate code may
compute with. Integer and boolean values are confined to three documented uses:

* comparisons (`<`, `torch.gt`, ...) give boolean tensors, which may be combined with
  `&`, `|`, `^`, `~` and `torch.logical_*`, and become values only through
  `torch.where(condition, a, b)` with at least one floating branch (`1.0`, not `1`);
* Python integers (literals, loop counters) may be used as numbers, and their arithmetic
  may not exceed MAX_INT_LITERAL: big-integer arithmetic is refused, since Python would
  compute it exactly, for as long as it takes (`10 ** n`, or squaring in a loop);
* `//` and `%` on tensors, and `rounding_mode=`, are refused: integer division is how
  integer tensors crash a process (INT_MIN // -1 raises SIGFPE), and a floating candidate
  has `torch.floor(a / b)` and `torch.remainder(a, b)`.

So no integer tensor can arise, and the only way a boolean affects a value is a
`torch.where`. The check is an abstract interpretation of the function: each expression
gets a kind (float tensor, boolean tensor, Python int with a bound on its size, Python
float), loops are unrolled (at most 64 iterations in all) and branches joined, so bounds
are upper bounds of what the code can compute.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from minact.validate.limits import MAX_INT_LITERAL, ValidationError, range_trips

__all__ = ["check_numeric"]

TENSOR, BOOLS, INT, FLOAT, OTHER = "tensor", "bools", "int", "float", "other"

_COMPARE = frozenset(
    "gt ge lt le eq ne greater greater_equal less less_equal not_equal".split()
) | frozenset({"logical_and", "logical_or", "logical_not", "logical_xor"})
_MODULES = frozenset({"torch", "F", "math"})
_BOOL_ADVICE = "use torch.where(condition, a, b) to turn a comparison into values"


@dataclass(frozen=True, slots=True)
class _Kind:
    kind: str
    bound: float = 0.0  # for INT: an upper bound of |value|


_T, _B, _F, _O = _Kind(TENSOR), _Kind(BOOLS), _Kind(FLOAT), _Kind(OTHER)


def _join(a: _Kind, b: _Kind) -> _Kind:
    if a.kind == b.kind:
        return _Kind(a.kind, max(a.bound, b.bound))
    kinds = {a.kind, b.kind}
    if BOOLS in kinds:
        return _B  # strict: whatever may be a boolean tensor is treated as one
    if TENSOR in kinds:
        return _T
    return _F if FLOAT in kinds else _O


def _path(e: ast.expr) -> str | None:
    """Returns the dotted module path `e` names (torch.special.erf), or None."""
    if isinstance(e, ast.Name):
        return e.id if e.id in _MODULES else None
    if isinstance(e, ast.Attribute):
        base = _path(e.value)
        return f"{base}.{e.attr}" if base is not None else None
    return None


def _int_bound(op: ast.operator, a: float, b: float) -> float:
    if isinstance(op, (ast.Add, ast.Sub)):
        return a + b
    if isinstance(op, ast.Mult):
        return a * b
    if isinstance(op, ast.FloorDiv):
        return a
    if isinstance(op, ast.Mod):
        return b
    if isinstance(op, ast.Pow):
        if a <= 1:
            return 1.0
        return math.inf if b * math.log10(a) > 18 else a**b
    return 2 * max(a, b)  # bitwise


def _range_bound(it: ast.expr) -> float:
    """Returns the largest |bound| of a validated `range(...)` (integer literals only)."""
    assert isinstance(it, ast.Call)
    values = [0]
    for a in it.args:
        c = a.operand if isinstance(a, ast.UnaryOp) else a
        assert isinstance(c, ast.Constant) and isinstance(c.value, int)
        values.append(abs(c.value))
    return float(max(values))


class _Interpreter:
    """Walks one normalised `activation` def with kinds for values (see the module doc)."""

    def __init__(self, param: str) -> None:
        self.env: dict[str, _Kind] = {param: _T}

    def block(self, stmts: list[ast.stmt]) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: ast.stmt) -> None:
        if isinstance(s, ast.Assign):
            target = s.targets[0]
            assert isinstance(target, ast.Name)
            self.env[target.id] = self.expr(s.value)
        elif isinstance(s, ast.AugAssign):
            assert isinstance(s.target, ast.Name)
            current = self.env.get(s.target.id, _T)
            line = getattr(s.value, "lineno", 0)
            self.env[s.target.id] = self.binop(current, s.op, self.expr(s.value), line)
        elif isinstance(s, (ast.Return, ast.Expr)) and s.value is not None:
            self.expr(s.value)
        elif isinstance(s, ast.If):
            self.expr(s.test)
            before = dict(self.env)
            self.block(s.body)
            after_body, self.env = self.env, before
            self.block(s.orelse)
            for name in after_body.keys() | self.env.keys():
                a, b = after_body.get(name), self.env.get(name)
                self.env[name] = _join(a, b) if a is not None and b is not None else (a or b or _O)
        elif isinstance(s, ast.For):
            assert isinstance(s.target, ast.Name)
            counter = _Kind(INT, _range_bound(s.iter))
            for _ in range(max(1, range_trips(s.iter))):
                self.env[s.target.id] = counter
                self.block(s.body)
            self.block(s.orelse)

    # expressions ------------------------------------------------------------------

    def expr(self, e: ast.expr) -> _Kind:
        line = getattr(e, "lineno", 0)
        if isinstance(e, ast.Constant):
            v = e.value
            if isinstance(v, (bool, int)):
                return _Kind(INT, float(abs(v)))
            return _F if isinstance(v, float) else _O
        if isinstance(e, ast.Name):
            return self.env.get(e.id, _T)
        if isinstance(e, ast.Attribute):  # math.pi and the like
            return _F
        if isinstance(e, ast.UnaryOp):
            k = self.expr(e.operand)
            if isinstance(e.op, ast.Not):
                return _Kind(INT, 1.0)
            if k.kind == BOOLS and not isinstance(e.op, ast.Invert):
                raise ValidationError(f"line {line}: arithmetic on a comparison; {_BOOL_ADVICE}")
            return _Kind(k.kind, k.bound + 1) if k.kind == INT else k
        if isinstance(e, ast.BinOp):
            return self.binop(self.expr(e.left), e.op, self.expr(e.right), line)
        if isinstance(e, ast.BoolOp):
            kinds = [self.expr(v) for v in e.values]
            out = kinds[0]
            for k in kinds[1:]:
                out = _join(out, k)
            return out
        if isinstance(e, ast.Compare):
            kinds = [self.expr(e.left), *(self.expr(c) for c in e.comparators)]
            tensors = any(k.kind in (TENSOR, BOOLS) for k in kinds)
            return _B if tensors else _Kind(INT, 1.0)
        if isinstance(e, ast.IfExp):
            self.expr(e.test)
            return _join(self.expr(e.body), self.expr(e.orelse))
        if isinstance(e, ast.Call):
            return self.call(e, line)
        return _O

    def binop(self, a: _Kind, op: ast.operator, b: _Kind, line: int) -> _Kind:
        symbol = _SYMBOLS.get(type(op), type(op).__name__)
        bitwise = isinstance(op, (ast.BitAnd, ast.BitOr, ast.BitXor))
        if BOOLS in (a.kind, b.kind):
            if bitwise and a.kind == b.kind == BOOLS:
                return _B
            raise ValidationError(
                f"line {line}: `{symbol}` on a comparison's result (a boolean tensor) is "
                f"refused; {_BOOL_ADVICE}"
            )
        if TENSOR in (a.kind, b.kind):
            if isinstance(op, ast.FloorDiv):
                raise ValidationError(
                    f"line {line}: `//` on tensors is refused (integer division); "
                    "write torch.floor(a / b)"
                )
            if isinstance(op, ast.Mod):
                raise ValidationError(
                    f"line {line}: `%` on tensors is refused (integer remainder); "
                    "write torch.remainder(a, b) with a float b"
                )
            if bitwise:
                raise ValidationError(f"line {line}: `{symbol}` applies to comparisons only")
            return _T
        if a.kind == INT and b.kind == INT and not isinstance(op, ast.Div):
            bound = _int_bound(op, a.bound, b.bound)
            if bound > MAX_INT_LITERAL:
                raise ValidationError(
                    f"line {line}: integer arithmetic (`{symbol}`) may exceed 1e18; big "
                    "Python integers are refused: compute in floating point (e.g. 10.0 ** n)"
                )
            return _Kind(INT, bound)
        return _F

    def call(self, e: ast.Call, line: int) -> _Kind:
        args = [self.expr(a) for a in e.args]
        kwargs = [self.expr(k.value) for k in e.keywords]
        func = e.func
        path = _path(func)
        if isinstance(func, ast.Name) and path is None:  # a builtin
            return self._builtin(func.id, e, args, line)
        name = path.rsplit(".", 1)[-1] if path is not None else getattr(func, "attr", "")
        receiver = (
            [self.expr(func.value)] if path is None and isinstance(func, ast.Attribute) else []
        )
        if path is not None and path.startswith("math."):
            if name in ("floor", "ceil"):
                return self._to_int(e.args[0] if e.args else None, args)
            return _F
        if name in _COMPARE:
            return _B
        if path == "torch.where" or (name == "where" and receiver):
            # torch.where(condition, input, other), or input.where(condition, other)
            named = {k.arg: v for k, v in zip(e.keywords, kwargs, strict=True)}
            values = receiver + args[1:] if receiver else args[1:]
            values += [named[k] for k in ("input", "other") if k in named]
            self._where(values, line)
            return _T
        if name == "clone" and receiver:
            return receiver[0]
        if any(k.kind == BOOLS for k in (*receiver, *args, *kwargs)):
            called = path or f".{name}()"
            raise ValidationError(
                f"line {line}: a comparison's result (a boolean tensor) is passed to "
                f"`{called}`; {_BOOL_ADVICE}"
            )
        return _T

    @staticmethod
    def _where(branches: list[_Kind], line: int) -> None:
        if any(k.kind == BOOLS for k in branches):
            raise ValidationError(
                f"line {line}: torch.where's branches must be values, not comparisons"
            )
        if len(branches) == 2 and all(k.kind == INT for k in branches):
            raise ValidationError(
                f"line {line}: torch.where with integer branches makes an integer tensor; "
                "write floats (1.0, 0.0)"
            )

    def _builtin(self, name: str, e: ast.Call, args: list[_Kind], line: int) -> _Kind:
        if name == "float":
            return _F
        if name == "int":
            return self._to_int(e.args[0] if e.args else None, args)
        if name == "round":
            if args and args[0].kind == TENSOR:
                return _T
            return self._to_int(e.args[0], args) if len(args) == 1 else _F
        if name == "abs" and args:
            if args[0].kind == BOOLS:
                raise ValidationError(f"line {line}: abs() of a comparison; {_BOOL_ADVICE}")
            return args[0]
        out = args[0] if args else _O  # min, max
        for k in args[1:]:
            out = _join(out, k)
        return out

    @staticmethod
    def _to_int(node: ast.expr | None, args: list[_Kind]) -> _Kind:
        """Returns the kind of int(v), round(v), math.floor(v): bounded when v is known."""
        if args and args[0].kind == INT:
            return args[0]
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            v = node.value
            return _Kind(INT, abs(v) + 1 if math.isfinite(v) else math.inf)
        return _Kind(INT, math.inf)


_SYMBOLS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
}


def check_numeric(func: ast.FunctionDef) -> None:
    """Raises ValidationError where a normalised `activation` leaves floating point."""
    _Interpreter(func.args.args[0].arg).block(func.body)
