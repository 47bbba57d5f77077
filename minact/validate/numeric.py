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
gets a kind (float tensor, boolean tensor, Python int, Python float) and, where it may be
a Python int, an interval holding it (signed, for `10 ** -64` is a float: see intervals);
loops are unrolled (at most 64 iterations in all) and branches joined, so bounds are
upper bounds of what the code can compute. A value that may be an int on one path keeps
its bound whatever it is on another (`10 if c else x`, `max(10, 0.5)`), the states at
`break` and `continue` are joined where they lead, and a bound that is not a number
(0 * an unbounded int) counts as unbounded: where the interpreter cannot bound an integer,
the code is refused.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from minact.validate import intervals
from minact.validate.intervals import Interval, hull, int_op, magnitude, point, span, unary
from minact.validate.limits import MAX_INT_LITERAL, ValidationError, range_trips
from minact.validate.primitives import PREDICATES

__all__ = ["check_numeric"]

TENSOR, BOOLS, INT, FLOAT, OTHER = "tensor", "bools", "int", "float", "other"

_MODULES = frozenset({"torch", "F", "math"})
# round(n, -d) of an int computes 10 ** d: d may not pass the digits of MAX_INT_LITERAL.
_MAX_ROUND_DIGITS = math.log10(MAX_INT_LITERAL)
_BOOL_ADVICE = "use torch.where(condition, a, b) to turn a comparison into values"


@dataclass(frozen=True, slots=True)
class _Kind:
    """What an expression may be: a value of `kind` or, where `ints` is not None, also a
    Python int in that interval (always so for INT). `value` is a FLOAT's value where
    literal arithmetic decides it (an INT's is its interval, where that is one point)."""

    kind: str
    ints: Interval | None = None
    value: float | None = None


_T, _B, _F, _O = _Kind(TENSOR), _Kind(BOOLS), _Kind(FLOAT), _Kind(OTHER)
_Env = dict[str, _Kind]


def _hull(a: Interval | None, b: Interval | None) -> Interval | None:
    if a is None or b is None:
        return b if a is None else a
    return hull(*a, *b)


def _join(a: _Kind, b: _Kind) -> _Kind:
    """Returns the kind of a value that is `a` on one path and `b` on another."""
    ints = _hull(a.ints, b.ints)  # an int on either path keeps its bound
    if a.kind == b.kind:
        return _Kind(a.kind, ints, a.value if a.value == b.value else None)
    kinds = {a.kind, b.kind}
    # Strict: whatever may be a boolean tensor is treated as one. INT comes last: joined
    # with anything else, the int is what `ints` keeps.
    kind = next(k for k in (BOOLS, TENSOR, FLOAT, OTHER) if k in kinds)
    return _Kind(kind, ints)


def _join_env(a: _Env, b: _Env) -> _Env:
    """Returns the state after paths ending in `a` and in `b` meet. A name bound on one path
    only keeps its kind: on the other, reading it raises."""
    if a == b:  # the usual case, compared at C speed: unchanged kinds are the same objects
        return a
    return {n: _join(a[n], b[n]) if n in a and n in b else a.get(n) or b[n] for n in a | b}


def _known(k: _Kind) -> float | None:
    """Returns the Python number `k` surely is, where the check knows it (else None)."""
    if k.kind == INT and k.ints is not None and k.ints[0] == k.ints[1]:
        return k.ints[0]
    return k.value if k.kind == FLOAT else None


def _path(e: ast.expr) -> str | None:
    """Returns the dotted module path `e` names (torch.special.erf), or None."""
    if isinstance(e, ast.Name):
        return e.id if e.id in _MODULES else None
    if isinstance(e, ast.Attribute):
        base = _path(e.value)
        return f"{base}.{e.attr}" if base is not None else None
    return None


def _range_ints(it: ast.expr) -> Interval:
    """Returns an interval holding the values of a validated `range(...)` (int literals)."""
    assert isinstance(it, ast.Call)
    values = [0.0] if len(it.args) == 1 else []  # range(stop) starts at 0
    for a in it.args[:2]:  # the values lie between start and stop, whatever the step
        c = a.operand if isinstance(a, ast.UnaryOp) else a
        assert isinstance(c, ast.Constant) and isinstance(c.value, int)
        values.append(float(-c.value if isinstance(a, ast.UnaryOp) else c.value))
    return hull(*values)


class _Interpreter:
    """Walks one normalised `activation` def with kinds for values (see the module doc)."""

    def __init__(self, param: str) -> None:
        self.env: _Env = {param: _T}
        # For each loop around the statement: the states at its `break`s and `continue`s.
        self.loops: list[tuple[list[_Env], list[_Env]]] = []

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
            self.env = _join_env(after_body, self.env)
        elif isinstance(s, ast.For):
            self._for(s)
        elif isinstance(s, (ast.Break, ast.Continue)) and self.loops:
            # The rest of the body is skipped on this path, so the state here is joined
            # where it leads: out of the loop (break), or into the next iteration.
            breaks, continues = self.loops[-1]
            states = breaks if isinstance(s, ast.Break) else continues
            # A state equal to the last is not kept: 64 iterations of hundreds of
            # `if c: continue` over hundreds of names took seconds to join, in the main process.
            if not states or states[-1] != self.env:
                states.append(dict(self.env))

    def _for(self, s: ast.For) -> None:
        assert isinstance(s.target, ast.Name)
        counter = _Kind(INT, _range_ints(s.iter))
        trips = range_trips(s.iter)
        before = dict(self.env)
        breaks: list[_Env] = []
        for _ in range(max(1, trips)):
            continues: list[_Env] = []
            self.loops.append((breaks, continues))
            self.env[s.target.id] = counter
            self.block(s.body)
            self.loops.pop()
            for env in continues:
                self.env = _join_env(self.env, env)
        if trips == 0:  # the body is checked, but may not have run: the state before holds
            self.env = _join_env(before, self.env)
        self.block(s.orelse)  # only after a loop that did not break
        for env in breaks:
            self.env = _join_env(self.env, env)

    # expressions ------------------------------------------------------------------

    def expr(self, e: ast.expr) -> _Kind:
        line = getattr(e, "lineno", 0)
        if isinstance(e, ast.Constant):
            v = e.value
            if isinstance(v, (bool, int)):
                return _Kind(INT, point(float(v)))
            return _Kind(FLOAT, None, v) if isinstance(v, float) else _O
        if isinstance(e, ast.Name):
            return self.env.get(e.id, _T)
        if isinstance(e, ast.Attribute):  # math.pi and the like
            return _F
        if isinstance(e, ast.UnaryOp):
            k = self.expr(e.operand)
            if isinstance(e.op, ast.Not):
                return _Kind(INT, (0.0, 1.0))
            if k.kind == BOOLS and not isinstance(e.op, ast.Invert):
                raise ValidationError(f"line {line}: arithmetic on a comparison; {_BOOL_ADVICE}")
            value = k.value if k.kind == FLOAT and k.value is not None else None
            if value is not None and not isinstance(e.op, ast.UAdd):
                value = -value if isinstance(e.op, ast.USub) else None
            return _Kind(k.kind, None if k.ints is None else unary(e.op, k.ints), value)
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
            if not any(k.kind in (TENSOR, BOOLS) for k in kinds):
                return _Kind(INT, (0.0, 1.0))
            # A Python bool (an int), unless an operand is surely a tensor.
            surely = any(k.kind in (TENSOR, BOOLS) and k.ints is None for k in kinds)
            return _B if surely else _Kind(BOOLS, (0.0, 1.0))
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
            if not (bitwise and a.kind == b.kind == BOOLS):
                raise ValidationError(
                    f"line {line}: `{symbol}` on a comparison's result (a boolean tensor) is "
                    f"refused; {_BOOL_ADVICE}"
                )
            kind = BOOLS
        elif TENSOR in (a.kind, b.kind):
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
            kind = TENSOR
        else:  # int op int is an int, except `/` and `**` of a negative n (ints is None)
            kind = INT if a.kind == b.kind == INT else FLOAT
            ints_base = a.ints if a.kind == INT else None
            if isinstance(op, ast.Pow) and intervals.complex_power(_known(a), _known(b), ints_base):
                raise ValidationError(
                    f"line {line}: `**` gives a complex result (a negative number to a "
                    "fractional power, as (-8) ** 0.5); activations compute real floats"
                )
        ints = self._ints(a, op, b, line)
        kind = FLOAT if kind == INT and ints is None else kind
        value = intervals.fold(op, _known(a), _known(b)) if kind == FLOAT else None
        return _Kind(kind, ints, value)

    @staticmethod
    def _ints(a: _Kind, op: ast.operator, b: _Kind, line: int) -> Interval | None:
        """Returns the interval of `a op b` where both may be Python ints (None: the result
        is no int); raises ValidationError where it may exceed MAX_INT_LITERAL."""
        if a.ints is None or b.ints is None:
            return None
        ints = int_op(op, a.ints, b.ints)
        if ints is not None and not magnitude(ints) <= MAX_INT_LITERAL:
            symbol = _SYMBOLS.get(type(op), type(op).__name__)
            raise ValidationError(
                f"line {line}: integer arithmetic (`{symbol}`) may exceed 1e18; big "
                "Python integers are refused: compute in floating point (e.g. 10.0 ** n)"
            )
        return ints

    def call(self, e: ast.Call, line: int) -> _Kind:
        args = [self.expr(a) for a in e.args]
        kwargs = [self.expr(k.value) for k in e.keywords]
        func = e.func
        path = _path(func)
        named = {k.arg: v for k, v in zip(e.keywords, kwargs, strict=True) if k.arg}
        if isinstance(func, ast.Name) and path is None:  # a builtin
            return self._builtin(func.id, e, args, named, line)
        name = path.rsplit(".", 1)[-1] if path is not None else getattr(func, "attr", "")
        receiver = (
            [self.expr(func.value)] if path is None and isinstance(func, ast.Attribute) else []
        )
        if path is not None and path.startswith("math."):
            if name in ("floor", "ceil"):
                return self._to_int(e.args[0] if e.args else None, args)
            return _F
        if name in PREDICATES:  # calls whose result is a boolean tensor
            return _B
        if path == "torch.where" or (name == "where" and receiver):
            # torch.where(condition, input, other), or input.where(condition, other)
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
        if len(branches) == 2 and all(k.ints is not None for k in branches):
            raise ValidationError(
                f"line {line}: torch.where with integer branches makes an integer tensor; "
                "write floats (1.0, 0.0)"
            )

    def _builtin(
        self, name: str, e: ast.Call, args: list[_Kind], named: dict[str, _Kind], line: int
    ) -> _Kind:
        if name == "float":
            known = _known(args[0]) if len(args) == 1 else None
            return _F if known is None else _Kind(FLOAT, None, known)
        if name == "int":
            return self._to_int(e.args[0] if e.args else None, args)
        if name == "round":
            return self._round(e, args, named, line)
        if name == "abs" and args:
            if args[0].kind == BOOLS:
                raise ValidationError(f"line {line}: abs() of a comparison; {_BOOL_ADVICE}")
            k = args[0]  # no sign: abs(-8) ** 0.5 is real
            ints = None if k.ints is None else hull(0.0, magnitude(k.ints))
            return _Kind(k.kind, ints, None if k.value is None else abs(k.value))
        out = args[0] if args else _O  # min, max
        for k in args[1:]:
            out = _join(out, k)
        return out

    def _round(self, e: ast.Call, args: list[_Kind], named: dict[str, _Kind], line: int) -> _Kind:
        """Returns the kind of round(number[, ndigits]), positional or by keyword."""
        number = args[0] if args else named.get("number")
        ndigits = args[1] if len(args) > 1 else named.get("ndigits")
        if number is None:
            return _O  # round() raises
        if (
            ndigits is not None
            and ndigits.ints is not None
            and number.ints is not None
            and not ndigits.ints[0] >= -_MAX_ROUND_DIGITS
        ):  # round(1, -10 ** 9) computes 10 ** (10 ** 9); round(1, 30) is 1 at once
            raise ValidationError(
                f"line {line}: round() of an integer to more than {_MAX_ROUND_DIGITS:.0f} "
                "digits may exceed 1e18; big Python integers are refused"
            )
        # round(n, d) of an int n is n (d >= 0) or the nearest multiple of 10 ** -d, which
        # is 0 or at most 2|n| of n's sign: bounded by n's bound either way.
        ints = None if number.ints is None else hull(0.0, 2 * number.ints[0], 2 * number.ints[1])
        if number.kind in (TENSOR, INT):  # Tensor.__round__ gives a tensor
            return _Kind(number.kind, number.ints if ndigits is None else ints)
        if ndigits is None or ndigits.kind == OTHER:  # round(v), round(v, None): an int
            node = e.args[0] if e.args else next(k.value for k in e.keywords if k.arg == "number")
            return self._to_int(node, [number])
        return _Kind(FLOAT, ints)  # round(v, d) of a float is a float

    @staticmethod
    def _to_int(node: ast.expr | None, args: list[_Kind]) -> _Kind:
        """Returns the kind of int(v), round(v), math.floor(v): bounded when v is known."""
        if args and args[0].kind == INT:
            return args[0]
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            v = node.value
            return _Kind(INT, span(abs(v) + 1 if math.isfinite(v) else math.inf))
        return _Kind(INT, span(math.inf))


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
