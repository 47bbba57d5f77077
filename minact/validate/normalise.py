"""The body of `def activation(x)`: checked against the allow-list and normalised.

`Normaliser` walks one function definition and builds its normal form: module names
canonical (`torch`, `F`, `math`), no imports, docstrings or annotations. Every node
kind, name, attribute and keyword must be one this module knows; anything else raises
ValidationError with the line and a reason the author can act on.
"""

from __future__ import annotations

import ast
import copy

from minact.validate import primitives
from minact.validate.limits import (
    MAX_LOOP_ITERATIONS,
    ValidationError,
    check_constant,
    check_power,
    range_trips,
)

__all__ = ["Normaliser", "is_docstring"]


_FORBIDDEN_KEYWORDS = {
    "out": "writes into an existing tensor",
    "inplace": "mutates its input",
    "dtype": "changes the dtype",
    "device": "moves tensors between devices",
    # True fails without an accelerator, works with one: a machine's verdict cached as code's.
    "pin_memory": "depends on the machine's accelerator",
    "rounding_mode": "divides as integers; write torch.floor(a / b) or torch.trunc(a / b)",
}
_STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.If, ast.For, ast.Expr)
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_BINOPS_BOOL = (ast.BitAnd, ast.BitOr, ast.BitXor)


def is_docstring(stmt: ast.stmt) -> bool:
    """Returns whether `stmt` is a bare string (a docstring or a comment-like literal)."""
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


class Normaliser:
    """Walks one `activation` def, checking the allow-list and building the normal form."""

    def __init__(self, aliases: dict[str, str], func: ast.FunctionDef) -> None:
        self.aliases = dict(aliases)
        self.func = func
        self.locals: set[str] = set()

    def run(self) -> ast.Module:
        f = self.func
        a = f.args
        if f.decorator_list:
            raise ValidationError("decorators are not allowed on activation")
        if getattr(f, "type_params", None):
            raise ValidationError("type parameters are not allowed on activation")
        params = [*a.posonlyargs, *a.args]
        if len(params) != 1 or a.vararg or a.kwarg or a.kwonlyargs or a.defaults:
            raise ValidationError(
                "activation must take exactly one argument, `x`, with no defaults"
            )
        self._name_ok(params[0].arg, f.lineno)
        if params[0].arg in self.aliases or params[0].arg in primitives.BUILTINS:
            # Normalising would rename the module it shadows and change the meaning.
            raise ValidationError(f"the argument of activation cannot be named `{params[0].arg}`")
        self.locals.add(params[0].arg)
        body = self._block(f.body, loop_budget=1, top=True)
        # Keep the node (and its Python-version-specific fields); replace what we normalise.
        new = copy.copy(f)
        new.args = ast.arguments(
            posonlyargs=[],
            args=[ast.arg(arg=params[0].arg)],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        )
        new.body = body
        new.decorator_list = []
        new.returns = None
        new.type_comment = None
        return ast.Module(body=[new], type_ignores=[])

    # statements -------------------------------------------------------------------

    def _block(self, stmts: list[ast.stmt], loop_budget: int, top: bool = False) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in stmts:
            new = self._stmt(stmt, loop_budget)
            if new is not None:
                out.append(new)
        if top and not any(isinstance(s, ast.Return) for s in ast.walk(ast.Module(out, []))):
            raise ValidationError("activation has no return statement")
        return out or [ast.Pass()]

    def _stmt(self, s: ast.stmt, loop_budget: int) -> ast.stmt | None:
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            raise ValidationError(
                f"line {s.lineno}: imports must come first in the file or function"
            )
        if is_docstring(s):  # docstrings and bare strings are comments
            return None
        if isinstance(s, (ast.Pass, ast.Break, ast.Continue)):
            return s
        if not isinstance(s, _STATEMENTS):
            raise ValidationError(f"line {s.lineno}: {_describe(s)} is not allowed in activation")
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1 or not isinstance(s.targets[0], ast.Name):
                raise ValidationError(f"line {s.lineno}: assign to one plain name at a time")
            value = self._expr(s.value)
            target = self._target(s.targets[0])
            return ast.Assign(targets=[target], value=value, lineno=s.lineno)
        if isinstance(s, ast.AnnAssign):  # annotations are dropped, never evaluated
            if not isinstance(s.target, ast.Name):
                raise ValidationError(f"line {s.lineno}: assign to one plain name at a time")
            if s.value is None:
                # Not evaluated, but it makes the name local in Python: `torch: int` would
                # make `torch.tanh(x)` raise, so it may not name a module or builtin either.
                self._assignable(s.target)
                return None
            value = self._expr(s.value)
            return ast.Assign(targets=[self._target(s.target)], value=value, lineno=s.lineno)
        if isinstance(s, ast.AugAssign):
            if not isinstance(s.target, ast.Name):
                raise ValidationError(f"line {s.lineno}: assign to one plain name at a time")
            self._binop_ok(s.op, s.lineno)
            value = self._expr(s.value)
            self._expr(ast.Name(id=s.target.id, ctx=ast.Load(), lineno=s.lineno))
            return ast.AugAssign(target=self._target(s.target), op=s.op, value=value)
        if isinstance(s, ast.Return):
            if s.value is None:
                raise ValidationError(f"line {s.lineno}: return a tensor, not nothing")
            return ast.Return(value=self._expr(s.value))
        if isinstance(s, ast.If):
            test = self._expr(s.test)
            return ast.If(
                test=test,
                body=self._block(s.body, loop_budget),
                orelse=self._block(s.orelse, loop_budget) if s.orelse else [],
            )
        if isinstance(s, ast.For):
            return self._for(s, loop_budget)
        assert isinstance(s, ast.Expr)
        return ast.Expr(value=self._expr(s.value))

    def _for(self, s: ast.For, loop_budget: int) -> ast.For:
        if not isinstance(s.target, ast.Name):
            raise ValidationError(f"line {s.lineno}: a for loop needs one plain loop variable")
        trips = range_trips(s.iter)
        if trips * loop_budget > MAX_LOOP_ITERATIONS:
            raise ValidationError(
                f"line {s.lineno}: loops run {trips * loop_budget} iterations; the limit is "
                f"{MAX_LOOP_ITERATIONS}"
            )
        target = self._target(s.target)
        body = self._block(s.body, loop_budget * max(trips, 1))
        orelse = self._block(s.orelse, loop_budget) if s.orelse else []
        return ast.For(target=target, iter=s.iter, body=body, orelse=orelse, type_comment=None)

    def _target(self, node: ast.Name) -> ast.Name:
        self._assignable(node)
        self.locals.add(node.id)
        return ast.Name(id=node.id, ctx=ast.Store())

    def _assignable(self, node: ast.Name) -> None:
        """Raises ValidationError unless `node` names a local the function may bind."""
        self._name_ok(node.id, getattr(node, "lineno", 0))
        if node.id in self.aliases or node.id in primitives.BUILTINS:
            raise ValidationError(f"line {node.lineno}: cannot assign to `{node.id}`")

    # expressions ------------------------------------------------------------------

    def _expr(self, e: ast.expr) -> ast.expr:
        # Keep the author's line numbers on the normal form, for later checks' reasons.
        return ast.copy_location(self._expr_node(e), e)

    def _expr_node(self, e: ast.expr) -> ast.expr:
        line = getattr(e, "lineno", 0)
        if isinstance(e, ast.Constant):
            return check_constant(e, line)
        if isinstance(e, ast.Name):
            return self._name(e, line)
        if isinstance(e, ast.Attribute):
            path = self._resolve(e)
            if path is None:
                self._expr(e.value)  # a reason about what the attribute hangs on comes first
                raise ValidationError(
                    f"line {line}: attribute `.{e.attr}` is only allowed as a method call"
                )
            if path not in primitives.CONSTANTS:
                raise ValidationError(f"line {line}: `{path}` must be called, not used as a value")
            return _path_expr(path)
        if isinstance(e, ast.BinOp):
            self._binop_ok(e.op, line)
            left, right = self._expr(e.left), self._expr(e.right)
            if isinstance(e.op, ast.Pow):
                check_power(e, line)
            return ast.BinOp(left=left, op=e.op, right=right)
        if isinstance(e, ast.UnaryOp):
            return ast.UnaryOp(op=e.op, operand=self._expr(e.operand))
        if isinstance(e, ast.BoolOp):
            return ast.BoolOp(op=e.op, values=[self._expr(v) for v in e.values])
        if isinstance(e, ast.Compare):
            if any(isinstance(o, (ast.In, ast.NotIn, ast.Is, ast.IsNot)) for o in e.ops):
                raise ValidationError(f"line {line}: use ==, !=, <, <=, >, >= to compare")
            return ast.Compare(
                left=self._expr(e.left),
                ops=e.ops,
                comparators=[self._expr(c) for c in e.comparators],
            )
        if isinstance(e, ast.IfExp):
            return ast.IfExp(
                test=self._expr(e.test), body=self._expr(e.body), orelse=self._expr(e.orelse)
            )
        if isinstance(e, ast.Call):
            return self._call(e, line)
        raise ValidationError(f"line {line}: {_describe(e)} is not allowed in activation")

    def _name(self, e: ast.Name, line: int) -> ast.expr:
        self._name_ok(e.id, line)
        if e.id in self.locals:
            return ast.Name(id=e.id, ctx=ast.Load())
        path = self.aliases.get(e.id)
        if path is not None:
            if path in primitives.CONSTANTS:
                return _path_expr(path)
            raise ValidationError(
                f"line {line}: `{e.id}` ({path}) must be called, not used as a value"
            )
        if e.id in primitives.FORBIDDEN_BUILTINS:
            raise ValidationError(f"line {line}: `{e.id}` is forbidden in candidate code")
        raise ValidationError(
            f"line {line}: unknown name `{e.id}` (not assigned, not an allowed import)"
        )

    def _call(self, e: ast.Call, line: int) -> ast.Call:
        if (
            isinstance(e.func, ast.Name)
            and e.func.id in ("min", "max")
            and e.func.id not in self.locals
            and (len(e.args) < 2 or e.keywords)
        ):
            # One-argument min/max iterate over a tensor: a reduction, not elementwise.
            raise ValidationError(
                f"line {line}: {e.func.id}() needs two or more arguments; use torch.{e.func.id}imum"
            )
        for k in e.keywords:
            if k.arg is None:
                raise ValidationError(f"line {line}: `**kwargs` in calls is not allowed")
            self._name_ok(k.arg, line)
            if k.arg in _FORBIDDEN_KEYWORDS:
                raise ValidationError(
                    f"line {line}: keyword `{k.arg}=` is not allowed "
                    f"(it {_FORBIDDEN_KEYWORDS[k.arg]})"
                )
        if any(isinstance(a, ast.Starred) for a in e.args):
            raise ValidationError(f"line {line}: `*args` in calls is not allowed")
        func = self._callee(e.func, line)
        self._inplace_ok(ast.unparse(func), e.args, line)
        args = [self._expr(a) for a in e.args]
        keywords = [ast.keyword(arg=k.arg, value=self._kwvalue(k.value)) for k in e.keywords]
        return ast.Call(func=func, args=args, keywords=keywords)

    def _callee(self, func: ast.expr, line: int) -> ast.expr:
        """Returns the normalised callee, checked before the arguments so reasons name it."""
        if (
            isinstance(func, ast.Name)
            and func.id not in self.locals
            and func.id not in self.aliases
        ):
            self._name_ok(func.id, line)
            if func.id == "range":
                raise ValidationError(
                    f"line {line}: range() is only allowed as a for-loop iterable"
                )
            if func.id not in primitives.BUILTINS:
                what = "forbidden" if func.id in primitives.FORBIDDEN_BUILTINS else "not allowed"
                raise ValidationError(
                    f"line {line}: calling `{func.id}` is {what} in candidate code"
                )
            return ast.Name(id=func.id, ctx=ast.Load())
        path = self._resolve(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if path is not None:
            if path not in primitives.ALLOWED or path in primitives.CONSTANTS:
                raise ValidationError(
                    f"line {line}: `{path}` is not an allowed function"
                    + primitives.suggestion(path)
                )
            return _path_expr(path)
        if isinstance(func, ast.Attribute):  # a method on a tensor expression
            self._name_ok(func.attr, line)
            if func.attr not in primitives.METHODS:
                raise ValidationError(
                    f"line {line}: method `.{func.attr}()` is not allowed"
                    + primitives.suggestion(func.attr, method=True)
                )
            return ast.Attribute(value=self._expr(func.value), attr=func.attr, ctx=ast.Load())
        # What the callee is built of first: `getattr(x, name)(0)` is refused for getattr.
        self._expr(func)
        raise ValidationError(f"line {line}: calls must name an allowed function directly")

    @staticmethod
    def _inplace_ok(path: str, args: list[ast.expr], line: int) -> None:
        """Raises ValidationError where `path` gets `inplace` positionally (`F.relu(x, True)`)
        as anything but a literal False: it would mutate the input, as `inplace=` would."""
        position = primitives.INPLACE_POSITION.get(path)
        if position is None or len(args) <= position:
            return
        flag = args[position]
        if isinstance(flag, ast.Constant) and type(flag.value) in (bool, int) and not flag.value:
            return
        raise ValidationError(
            f"line {line}: argument {position + 1} of `{path}` is `inplace`, which mutates its "
            "input; leave it out"
        )

    def _kwvalue(self, v: ast.expr) -> ast.expr:
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            if len(v.value) > 32 or not v.value.isidentifier():
                raise ValidationError("string arguments must be short words such as 'tanh'")
            return ast.Constant(value=v.value)
        return self._expr(v)

    def _resolve(self, e: ast.expr) -> str | None:
        """Returns the canonical module path `e` names, or None for a tensor expression."""
        if isinstance(e, ast.Name):
            if e.id in self.locals:
                return None
            return self.aliases.get(e.id)
        if isinstance(e, ast.Attribute):
            self._name_ok(e.attr, getattr(e, "lineno", 0))
            base = self._resolve(e.value)
            if base is None:
                return None
            if base not in primitives.MODULES:
                raise ValidationError(f"`{base}.{e.attr}`: attributes of functions are not allowed")
            path = primitives.canonical(f"{base}.{e.attr}")
            if path not in primitives.MODULES and path not in primitives.ALLOWED:
                raise ValidationError(
                    f"line {getattr(e, 'lineno', 0)}: `{base}.{e.attr}` is not an allowed function"
                    + primitives.suggestion(path)
                )
            return path
        return None

    def _binop_ok(self, op: ast.operator, line: int) -> None:
        if isinstance(op, ast.MatMult):
            raise ValidationError(f"line {line}: matrix products (@) are not pointwise")
        if not isinstance(op, (*_BINOPS, *_BINOPS_BOOL)):
            raise ValidationError(f"line {line}: operator {type(op).__name__} is not allowed")

    @staticmethod
    def _name_ok(name: str, line: int) -> None:
        if name.startswith("_"):
            raise ValidationError(
                f"line {line}: names starting with '_' are not allowed (`{name}`)"
            )


def _path_expr(path: str) -> ast.expr:
    """Returns the AST for a canonical dotted path such as `F.gelu` or `torch.special.erf`."""
    parts = path.split(".")
    node: ast.expr = ast.Name(id=parts[0], ctx=ast.Load())
    for p in parts[1:]:
        node = ast.Attribute(value=node, attr=p, ctx=ast.Load())
    return node


def _describe(node: ast.AST) -> str:
    names = {
        "While": "a while loop",
        "Lambda": "a lambda",
        "FunctionDef": "a nested def",
        "AsyncFunctionDef": "a nested async def",
        "ClassDef": "a class",
        "Subscript": "indexing (x[...])",
        "ListComp": "a comprehension",
        "GeneratorExp": "a generator",
        "With": "a with block",
        "Try": "a try block",
        "Global": "global",
        "Nonlocal": "nonlocal",
        "Delete": "del",
        "Raise": "raise",
        "Assert": "assert",
        "Await": "await",
        "Yield": "yield",
        "JoinedStr": "an f-string",
        "NamedExpr": "the walrus operator",
    }
    kind = type(node).__name__
    return names.get(kind, f"`{kind}`")
