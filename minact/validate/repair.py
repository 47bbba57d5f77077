"""Repairs of the slips models make in candidate code, before validation.

Small models write the function they mean with a few predictable slips: a bare
`sigmoid(x)` for `torch.sigmoid(x)`, `torch.gelu` for `F.gelu` and `F.sin` for
`torch.sin`, numpy or `math` functions on tensors and torch ones on numbers, Python's `if`
or `max` on a tensor (an elementwise choice written as a scalar one), a constant set at
the top level, example code after the function, the function twice, `from
torch.nn.functional as F`, or one `)` too many at the end of a line. Each slip costs a
call and a follow-up, and follow-ups rarely fix them. `repair` rewrites exactly these, by
rules that keep the author's meaning elementwise, and says what it changed; anything else
is left for validation to judge. It runs nothing: the source is parsed and unparsed, so a repaired
candidate is validated like any other. The module around the function is tidied first
(minact.validate.tidy); this module repairs the function's own code. Repairs are
best-effort: a source past the validator's size limits, or one a rule fails on, is
returned unchanged.
"""

from __future__ import annotations

import ast
import warnings
from collections import Counter
from dataclasses import dataclass

from minact.validate import primitives
from minact.validate.limits import MAX_INT_LITERAL
from minact.validate.source import MAX_NODES, MAX_TEXT_CHARS
from minact.validate.tidy import bound_names, mentions, module, tensor_names, text

__all__ = ["Repaired", "repair"]

_NUMPY = frozenset({"np", "numpy"})
_MATH_TO_TORCH = {"fabs": "abs"}  # the other math functions keep their name in torch
_BOOL_OPS: dict[type[ast.boolop], str] = {ast.And: "logical_and", ast.Or: "logical_or"}


@dataclass(frozen=True, slots=True)
class Repaired:
    """A source after repairs, and what each changed (empty: unchanged)."""

    source: str
    fixes: tuple[str, ...]


def repair(source: str) -> Repaired:
    """Returns `source` with the slips above rewritten, and the list of what changed."""
    if len(source) > MAX_TEXT_CHARS:
        return Repaired(source, ())
    original = source
    try:
        source, fixes = text(source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            # The function alone may have MAX_NODES: more is code validation refuses, or
            # what stands around a function (a class, demo code), which needs no repair.
            return Repaired(original, ())
        fixes += _Repairer().run(tree)
        if not fixes:
            return Repaired(source, ())
        return Repaired(ast.unparse(ast.fix_missing_locations(tree)) + "\n", tuple(fixes))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return Repaired(source, ())  # validation gives the reason
    except Exception:
        # The repairs are optional rewrites and validation judges the source either way:
        # a bug in a rule, on whatever a model replies, must never end a search.
        return Repaired(original, ())


def _torch_name(name: str) -> str | None:
    """Returns the allowed `torch.`/`F.` spelling of a bare function name, if any."""
    for path in (f"torch.{name}", f"F.{name}", f"torch.special.{name}"):
        if path in primitives.ALLOWED:
            return path
    return None


def _path(dotted: str) -> ast.expr:
    head, *rest = dotted.split(".")
    node: ast.expr = ast.Name(head, ast.Load())
    for part in rest:
        node = ast.Attribute(node, part, ast.Load())
    return node


def _call(dotted: str, *args: ast.expr) -> ast.Call:
    return ast.Call(_path(dotted), list(args), [])


def _is_number(node: ast.expr) -> bool:
    """Returns whether `node` is a numeric literal, signed or not."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    )


class _Repairer(ast.NodeTransformer):
    """Applies the repairs to one module (use once)."""

    def __init__(self) -> None:
        self.fixes: list[str] = []
        self.bound: set[str] = set()
        self.tensors: set[str] = set()
        self.uses: Counter[str] = Counter()  # each name's mentions in the function

    def _fix(self, what: str) -> None:
        if what not in self.fixes:
            self.fixes.append(what)

    def run(self, tree: ast.Module) -> list[str]:
        func = module(tree, self._fix)
        if func is None:
            return self.fixes
        self.bound = bound_names(tree)
        self.tensors = tensor_names(func)
        self.uses = Counter(n.id for n in ast.walk(func) if isinstance(n, ast.Name))
        self.visit(func)
        func.body = self._statements(func.body)
        return self.fixes

    # the function's expressions -------------------------------------------------------------

    def _is_tensor(self, node: ast.AST) -> bool:
        return mentions(node, self.tensors)

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id == "pi" and isinstance(node.ctx, ast.Load) and "pi" not in self.bound:
            self._fix("`pi` → `math.pi`")
            return ast.copy_location(_path("math.pi"), node)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        self.generic_visit(node)
        v = node.value
        if isinstance(v, ast.Name) and v.id in _NUMPY and v.id not in self.bound:
            if node.attr in ("pi", "e"):
                self._fix(f"`{v.id}.{node.attr}` → `math.{node.attr}`")
                return ast.copy_location(_path(f"math.{node.attr}"), node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Name) and f.id not in self.bound:
            if f.id in ("max", "min") and not node.keywords and len(node.args) == 2:
                return self._min_max(node, f.id)
            if f.id in primitives.BUILTINS or f.id in primitives.FORBIDDEN_BUILTINS:
                return node
            path = _torch_name(f.id)
            if path is not None:
                self._fix(f"`{f.id}(…)` → `{path}(…)`")
                node.func = ast.copy_location(_path(path), f)
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            module, name = f.value.id, f.attr
            if module in _NUMPY and module not in self.bound:
                path = _torch_name(name)
                if path is not None:
                    self._fix(f"`{module}.{name}` → `{path}`")
                    node.func = ast.copy_location(_path(path), f)
            elif module in ("torch", "F") and f"{module}.{name}" not in primitives.ALLOWED:
                path = _torch_name(name)  # torch.gelu → F.gelu, F.sin → torch.sin
                if path is not None:
                    self._fix(f"`{module}.{name}` → `{path}`")
                    node.func = ast.copy_location(_path(path), f)
            elif (
                module == "torch"
                and (f"math.{name}" in primitives.ALLOWED or name == "sigmoid")
                and len(node.args) == 1
                and not node.keywords
                and _is_number(node.args[0])
            ):  # torch.tanh(-2.37) raises: torch functions take tensors, not floats
                if name == "sigmoid":  # math has none: 1 / (1 + exp(-v)), which never overflows
                    self._fix("`torch.sigmoid` of a number → `0.5 * (1 + math.tanh(v / 2))`")
                    half = ast.BinOp(node.args[0], ast.Div(), ast.Constant(2))
                    tanh = ast.BinOp(ast.Constant(1), ast.Add(), _call("math.tanh", half))
                    return ast.copy_location(ast.BinOp(ast.Constant(0.5), ast.Mult(), tanh), node)
                self._fix(f"`torch.{name}` of a number → `math.{name}`")
                node.func = ast.copy_location(_path(f"math.{name}"), f)
            elif module == "math" and any(self._is_tensor(a) for a in node.args):
                path = f"torch.{_MATH_TO_TORCH.get(name, name)}"
                if path in primitives.ALLOWED:
                    self._fix(f"`math.{name}` on a tensor → `{path}`")
                    node.func = ast.copy_location(_path(path), f)
        if (
            isinstance(f, ast.Attribute)
            and f.attr == "copy"
            and not node.args
            and not node.keywords
            and self._is_tensor(f.value)
        ):  # numpy's spelling of a tensor's clone()
            self._fix("`.copy()` of a tensor → `.clone()`")
            f.attr = "clone"
        return node

    def _min_max(self, node: ast.Call, name: str) -> ast.expr:
        a, b = node.args
        if not (self._is_tensor(a) or self._is_tensor(b)):
            return node
        if self._is_tensor(a) and self._is_tensor(b):
            new = _call("torch.maximum" if name == "max" else "torch.minimum", a, b)
        else:
            tensor, other = (a, b) if self._is_tensor(a) else (b, a)
            bound = "min" if name == "max" else "max"
            new = ast.Call(_path("torch.clamp"), [tensor], [ast.keyword(bound, other)])
        self._fix(f"`{name}(…)` on a tensor → elementwise `{ast.unparse(new.func)}`")
        return ast.copy_location(new, node)

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        self.generic_visit(node)
        if not self._is_tensor(node.test):
            return node
        self._fix("`a if cond else b` on a tensor → `torch.where(cond, a, b)`")
        return ast.copy_location(self._where(node.test, node.body, node.orelse), node)

    def _condition(self, test: ast.expr) -> ast.expr:
        """Returns `test` with Python's and/or/not and chained comparisons made elementwise."""
        if isinstance(test, ast.BoolOp):
            values = [self._condition(v) for v in test.values]
            return _fold(f"torch.{_BOOL_OPS[type(test.op)]}", values)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return _call("torch.logical_not", self._condition(test.operand))
        if isinstance(test, ast.Compare) and len(test.ops) > 1:
            lefts = [test.left, *test.comparators[:-1]]
            parts: list[ast.expr] = [
                ast.Compare(left, [op], [right])
                for left, op, right in zip(lefts, test.ops, test.comparators, strict=True)
            ]
            return _fold("torch.logical_and", parts)
        return test

    def _where(self, test: ast.expr, a: ast.expr, b: ast.expr) -> ast.expr:
        return _call("torch.where", self._condition(test), _as_float(a), _as_float(b))

    # statements ---------------------------------------------------------------------------

    def _statements(self, body: list[ast.stmt]) -> list[ast.stmt]:
        """Returns `body` with `if` on a tensor rewritten as torch.where, where it can be."""
        out: list[ast.stmt] = []
        for stmt in body:
            if isinstance(stmt, (ast.For, ast.If, ast.With)):
                stmt.body = self._statements(stmt.body)
                if isinstance(stmt, (ast.For, ast.If)):
                    stmt.orelse = self._statements(stmt.orelse)
            chosen = self._assigned(stmt) if isinstance(stmt, ast.If) else None
            if chosen is None:
                out.append(stmt)
                continue
            target, where = chosen
            self._fix("`if` on a tensor → `torch.where`")
            self.tensors.add(target)
            out.append(ast.copy_location(ast.Assign([ast.Name(target, ast.Store())], where), stmt))
        return self._returns(out)

    def _returns(self, body: list[ast.stmt]) -> list[ast.stmt]:
        """Folds trailing `if cond: return a` ... `return b` into one torch.where return."""
        if not body:
            return body
        last = body[-1]
        lets: list[ast.stmt] = []  # the branches' own locals, computed before the return
        if isinstance(last, ast.If):
            tail = self._if_value(last, None, lets)
            folded = tail is not None
        else:
            tail, folded = _returned(last), False
        if tail is None:
            return body
        n = len(body) - 1
        while n > 0:
            before = body[n - 1]
            value = self._if_value(before, tail, lets) if isinstance(before, ast.If) else None
            if value is None:
                break
            tail, n, folded = value, n - 1, True
        if not folded:
            return body
        self._fix("`if` on a tensor → `torch.where`")
        return [*body[:n], *lets, ast.Return(tail)]

    def _if_value(
        self, stmt: ast.If, after: ast.expr | None, lets: list[ast.stmt]
    ) -> ast.expr | None:
        """Returns the value an if/elif/else of returns gives, or None; adds to `lets` the
        branches' assignments to their own locals (torch.where computes every branch).

        `after` is what is returned when no branch returns (the statement that follows).
        """
        mine: list[ast.stmt] = []
        then = self._branch(stmt.body, mine) if self._is_tensor(stmt.test) else None
        if then is None:
            return None
        if not stmt.orelse:
            otherwise = after
        elif len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
            otherwise = self._if_value(stmt.orelse[0], after, mine)
        else:
            otherwise = self._branch(stmt.orelse, mine)
        if otherwise is None:
            return None
        lets[:0] = mine
        return self._where(stmt.test, then, otherwise)

    def _branch(self, body: list[ast.stmt], lets: list[ast.stmt]) -> ast.expr | None:
        """Returns what a branch of `name = ...` lines and a return gives, or None; adds
        its lines to `lets` when each name is mentioned nowhere else in the function (so
        computing them before the choice changes nothing)."""
        value = _returned(body[-1]) if body else None
        if value is None:
            return None
        own = Counter(n.id for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Name))
        for stmt in body[:-1]:
            name, _ = _assignment([stmt])
            if name is None or own[name] != self.uses[name]:
                return None
        lets.extend(body[:-1])
        return value

    def _assigned(self, stmt: ast.If) -> tuple[str, ast.expr] | None:
        """Returns (y, torch.where(c, a, b)) for `if c: y = a else: y = b` (or no else).

        Changes nothing itself: the caller records the rewrite.
        """
        if not self._is_tensor(stmt.test):
            return None
        target, then = _assignment(stmt.body)
        if target is None or then is None:
            return None
        if not stmt.orelse:
            if target not in self.tensors:
                return None  # nothing to keep where the condition is false
            otherwise: ast.expr = ast.Name(target, ast.Load())
        else:
            if len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
                inner = self._assigned(stmt.orelse[0])
                other_target, value = inner if inner is not None else (None, None)
            else:
                other_target, value = _assignment(stmt.orelse)
            if other_target != target or value is None:
                return None
            otherwise = value
        return target, self._where(stmt.test, then, otherwise)


def _fold(dotted: str, values: list[ast.expr]) -> ast.expr:
    """Returns f(f(v0, v1), v2) ... for the binary function `dotted`."""
    out = values[0]
    for v in values[1:]:
        out = _call(dotted, out, v)
    return out


def _returned(stmt: ast.stmt) -> ast.expr | None:
    return stmt.value if isinstance(stmt, ast.Return) else None


def _assignment(body: list[ast.stmt]) -> tuple[str | None, ast.expr | None]:
    """Returns (name, value) when `body` is the single statement `name = value`."""
    if len(body) != 1 or not isinstance(body[0], ast.Assign) or len(body[0].targets) != 1:
        return None, None
    target = body[0].targets[0]
    if not isinstance(target, ast.Name):
        return None, None
    return target.id, body[0].value


def _as_float(node: ast.expr) -> ast.expr:
    """Returns an int constant as a float (torch.where of two ints gives an int tensor).

    An int past the validator's limit stays as it is: validation refuses it, and float()
    would raise OverflowError on one past 1e308.
    """
    negative = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
    c = node.operand if isinstance(node, ast.UnaryOp) and negative else node
    if not (isinstance(c, ast.Constant) and type(c.value) is int):
        return node
    if abs(c.value) > MAX_INT_LITERAL:
        return node
    return ast.Constant(-float(c.value) if negative else float(c.value))
