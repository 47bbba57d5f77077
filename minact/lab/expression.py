"""A small, safe expression language for the micro-lab's target functions.

A target such as ``sin(3*x) + 0.5*x1**2``, ASCII text, is parsed with :func:`ast.parse` and
every node is checked against a whitelist: finite numeric constants, variable names, the
constants ``pi`` and ``e`` (``nan`` and ``inf`` are refused, in any case, as numbers and as
names), unary ``+``/``-``, binary ``+ - * / **`` and calls of a fixed set of numpy functions
by bare name.
Nothing is ever passed to ``eval`` or ``compile``; evaluation walks the checked tree in float64.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

__all__ = ["CONSTANTS", "FUNCTIONS", "Expression", "ExpressionError", "parse_expression"]

FloatArray = npt.NDArray[np.float64]

# Limits keep parsing and the recursive evaluator far from Python's recursion limit.
MAX_CHARS = 2000
MAX_NODES = 500
MAX_DEPTH = 64

# name -> (numpy function, number of positional arguments)
FUNCTIONS: Mapping[str, tuple[Callable[..., Any], int]] = {
    "sin": (np.sin, 1),
    "cos": (np.cos, 1),
    "tan": (np.tan, 1),
    "arcsin": (np.arcsin, 1),
    "arccos": (np.arccos, 1),
    "arctan": (np.arctan, 1),
    "arctan2": (np.arctan2, 2),
    "sinh": (np.sinh, 1),
    "cosh": (np.cosh, 1),
    "tanh": (np.tanh, 1),
    "exp": (np.exp, 1),
    "log": (np.log, 1),
    "log1p": (np.log1p, 1),
    "expm1": (np.expm1, 1),
    "sqrt": (np.sqrt, 1),
    "abs": (np.abs, 1),
    "sign": (np.sign, 1),
    "floor": (np.floor, 1),
    "ceil": (np.ceil, 1),
    "maximum": (np.maximum, 2),
    "minimum": (np.minimum, 2),
    "hypot": (np.hypot, 2),
    "sinc": (np.sinc, 1),  # normalised: sin(pi x) / (pi x), as numpy and torch define it
    "square": (np.square, 1),
}

# These names always mean the constant, never a variable.
CONSTANTS: Mapping[str, float] = {"pi": math.pi, "e": math.e}
# Names that read as non-finite numbers (numpy's nan and inf, in any case) are neither: a
# target must be finite, and as variables `nan * x` would quietly be a task of two inputs.
_NOT_FINITE = frozenset({"nan", "inf", "infinity"})

_BINARY: Mapping[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_UNARY: Mapping[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: np.positive,
    ast.USub: np.negative,
}
# ASCII only, no leading underscore: names travel into TOML, JSON and reports.
_VARIABLE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# Friendlier names for the constructs people most often try.
_FORBIDDEN = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators",
    ast.IfExp: "conditional expressions",
    ast.Starred: "starred arguments",
    ast.NamedExpr: "assignment expressions",
}


class ExpressionError(ValueError):
    """A target expression is malformed, not allowed, or cannot be evaluated."""


@dataclass(frozen=True)
class Expression:
    """A checked target expression.

    Attributes:
        source: normalised text (``ast.unparse`` of the checked tree).
        variables: free variable names, sorted.
    """

    source: str
    variables: tuple[str, ...]
    _body: ast.expr = field(repr=False, compare=False)

    def evaluate(self, values: Mapping[str, npt.ArrayLike]) -> FloatArray:
        """Returns the expression evaluated elementwise in float64 on broadcast `values`."""
        missing = [name for name in self.variables if name not in values]
        if missing:
            raise ExpressionError(
                f"expression {self.source!r} needs variable(s) {', '.join(missing)}; "
                f"got {', '.join(sorted(values)) or 'none'}"
            )
        env = {name: np.asarray(values[name], dtype=np.float64) for name in self.variables}
        # Overflow and domain errors become inf/nan: the caller checks finiteness.
        with np.errstate(all="ignore"):
            result = np.asarray(_evaluate(self._body, env), dtype=np.float64)
            if env:
                shape = np.broadcast_shapes(*(v.shape for v in env.values()))
                result = np.broadcast_to(result, shape)
        return np.array(result, dtype=np.float64)  # a fresh, writable array


def parse_expression(text: str) -> Expression:
    """Returns the checked Expression for `text`, or raises ExpressionError saying why not."""
    if not isinstance(text, str):
        raise ExpressionError(f"expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ExpressionError(f"expression has {len(text)} characters; the limit is {MAX_CHARS}")
    if not text.strip():
        raise ExpressionError("expression is empty")
    # Python reads names in NFKC form: fullwidth 'ｘ' would be the variable x ('ｘ + x' one
    # input, and 'ｘ' in vars or train unknown), and 'ℌ' the ASCII name H.
    if not text.isascii():
        at, odd = next((i, c) for i, c in enumerate(text, start=1) if not c.isascii())
        raise ExpressionError(
            f"character {odd!r} (U+{ord(odd):04X}, column {at}) is not allowed: an "
            "expression is ASCII text"
        )
    try:
        # Warnings (e.g. invalid escapes) must not escape as exceptions under -W error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        column = f" (column {exc.offset})" if exc.offset else ""
        raise ExpressionError(f"invalid syntax: {exc.msg}{column}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is nested too deeply") from None
    except ValueError as exc:  # e.g. null bytes
        raise ExpressionError(f"invalid expression: {exc}") from None
    variables = _check(tree.body)
    return Expression(source=ast.unparse(tree.body), variables=variables, _body=tree.body)


def _check(body: ast.expr) -> tuple[str, ...]:
    """Returns the free variables of `body` after checking every node against the whitelist."""
    # An explicit stack, not recursion: the tree may be deep until we have measured it.
    stack: list[tuple[ast.AST, int]] = [(body, 1)]
    variables: set[str] = set()
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression has more than {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ast.Constant):
            _check_constant(node.value)
        elif isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                raise ExpressionError(f"function {node.id!r} must be called, e.g. {node.id}(x)")
            if node.id.lower() in _NOT_FINITE:
                raise ExpressionError(
                    f"name {node.id!r} is not allowed: a target must be finite, and no "
                    "variable may be called nan or inf"
                )
            if node.id not in CONSTANTS:
                if not _VARIABLE.match(node.id):
                    raise ExpressionError(
                        f"variable name {node.id!r} is not allowed (ASCII letters, digits and _, "
                        "starting with a letter)"
                    )
                variables.add(node.id)
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                raise ExpressionError(f"unary operator {type(node.op).__name__} is not allowed")
            stack.append((node.operand, depth + 1))
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise ExpressionError(
                    f"operator {type(node.op).__name__} is not allowed (use + - * / **)"
                )
            stack.extend([(node.left, depth + 1), (node.right, depth + 1)])
        elif isinstance(node, ast.Call):
            _check_call(node)
            stack.extend((arg, depth + 1) for arg in node.args)
        else:
            what = _FORBIDDEN.get(type(node), type(node).__name__)
            raise ExpressionError(f"{what} not allowed in an expression")
    return tuple(sorted(variables))


def _check_constant(value: object) -> None:
    """Raises ExpressionError unless `value` is a finite int or float literal."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionError(f"constant {value!r} is not allowed (only int and float numbers)")
    try:
        as_float = float(value)
    except OverflowError:
        raise ExpressionError("integer constant is too large for float64") from None
    if not math.isfinite(as_float):
        raise ExpressionError(f"constant {value!r} is not finite")


def _check_call(node: ast.Call) -> None:
    """Raises ExpressionError unless `node` calls a whitelisted function with the right arity."""
    if isinstance(node.func, ast.Attribute):
        raise ExpressionError("attribute access not allowed: call functions by bare name, sin(x)")
    if not isinstance(node.func, ast.Name):
        raise ExpressionError("only whitelisted functions can be called, by bare name: sin(x)")
    name = node.func.id
    if name not in FUNCTIONS:
        raise ExpressionError(
            f"function {name!r} is not allowed; allowed: {', '.join(sorted(FUNCTIONS))}"
        )
    if node.keywords:
        raise ExpressionError(f"keyword arguments are not allowed in {name}()")
    if any(isinstance(arg, ast.Starred) for arg in node.args):
        raise ExpressionError(f"starred arguments are not allowed in {name}()")
    arity = FUNCTIONS[name][1]
    if len(node.args) != arity:
        raise ExpressionError(f"{name}() takes {arity} argument(s), got {len(node.args)}")


def _evaluate(node: ast.expr, env: Mapping[str, FloatArray]) -> Any:
    """Returns `node` evaluated on `env`; the tree was checked and depth-limited by _check."""
    if isinstance(node, ast.Constant):
        return np.float64(cast(float, node.value))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return np.float64(CONSTANTS[node.id])
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, env))
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function = FUNCTIONS[node.func.id][0]
        return function(*(_evaluate(arg, env) for arg in node.args))
    # Unreachable for trees that passed _check.
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")
