"""The parts of a candidate file that Python runs on import but minact does not: kept inert.

minact runs only the normal form of `def activation(x)`. Python, importing the file, also
runs the bodies and bases of its classes, the defaults and annotations of every def (through
Python 3.13 they are evaluated when the def runs) and the value of `__all__`. Code there
could change what the function computes (`class Patch: torch.tanh = torch.sin`, or
`def activation(x: setattr(torch, "tanh", torch.sin))`), and minact would score other code
than the file's. So those parts may hold only what cannot run anything: literals and dotted
names (`torch.Tensor`, `int | None`), methods whose bodies run only when called, and the
decorators `staticmethod`, `classmethod` and `property`. What `minact export` writes around
the function (an nn.Module calling it, `__all__`) is inert in this sense.
"""

from __future__ import annotations

import ast
from collections.abc import Collection

from minact.validate.limits import ValidationError

__all__ = ["check_all", "check_annotations", "check_class"]

# Builtins a method may be decorated with: they wrap the function and run nothing of it.
_DECORATORS = frozenset({"staticmethod", "classmethod", "property"})


def _inert(e: ast.expr | None, classes: Collection[str]) -> bool:
    """Returns whether evaluating `e` can run no code of the file: a literal, a dotted name,
    or a subscript, tuple, list or `|` of such, naming none of the file's classes (whose
    `__class_getitem__` or metaclass would run)."""
    if e is None or isinstance(e, ast.Constant):
        return True
    if isinstance(e, ast.Name):
        return e.id not in classes
    if isinstance(e, ast.Attribute):
        return _inert(e.value, classes)
    if isinstance(e, ast.Subscript):
        return _inert(e.value, classes) and _inert(e.slice, classes)
    if isinstance(e, (ast.Tuple, ast.List)):
        return all(_inert(x, classes) for x in e.elts)
    if isinstance(e, ast.BinOp) and isinstance(e.op, ast.BitOr):
        return _inert(e.left, classes) and _inert(e.right, classes)
    return False


def _refuse(node: ast.AST, what: str) -> ValidationError:
    return ValidationError(
        f"line {getattr(node, 'lineno', 0)}: {what} runs when Python imports the file; only "
        "literals and dotted names may stand there (minact runs only the function, and would "
        "score other code than the file's)"
    )


def check_annotations(func: ast.FunctionDef, classes: Collection[str]) -> None:
    """Raises ValidationError unless the annotations of `func` are inert."""
    a = func.args
    params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(p for p in (a.vararg, a.kwarg) if p)]
    for p in params:
        if not _inert(p.annotation, classes):
            raise _refuse(p, f"the annotation of `{p.arg}` in `def {func.name}`")
    if not _inert(func.returns, classes):
        raise _refuse(func, f"the return annotation of `def {func.name}`")


def _check_signature(func: ast.FunctionDef, classes: Collection[str]) -> None:
    """Raises ValidationError unless the defaults and annotations of a method are inert."""
    check_annotations(func, classes)
    for d in [*func.args.defaults, *func.args.kw_defaults]:
        if d is not None and not _inert(d, classes):  # None: a keyword without a default
            raise _refuse(d, f"a default of `def {func.name}`")


def check_class(cls: ast.ClassDef, classes: Collection[str]) -> None:
    """Raises ValidationError unless importing the class can run no code of the file.

    `classes` names every class of the file: none may be a base (its `__init_subclass__`
    would run) or be named in what is evaluated.
    """
    if cls.decorator_list or cls.keywords or getattr(cls, "type_params", None):
        raise _refuse(cls, f"a decorator, keyword or type parameter of class `{cls.name}`")
    for base in cls.bases:
        if not _inert(base, classes):
            raise _refuse(base, f"a base of class `{cls.name}` that is not an imported class")
    for stmt in cls.body:
        _check_class_statement(stmt, cls.name, classes)


def _check_class_statement(stmt: ast.stmt, owner: str, classes: Collection[str]) -> None:
    if isinstance(stmt, ast.Pass) or (
        isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
    ):
        return
    if isinstance(stmt, ast.FunctionDef):
        for d in stmt.decorator_list:
            if not (isinstance(d, ast.Name) and d.id in _DECORATORS and d.id not in classes):
                raise _refuse(d, f"a decorator of `{owner}.{stmt.name}`")
        _check_signature(stmt, classes)
        return
    if isinstance(stmt, ast.ClassDef):
        check_class(stmt, classes)
        return
    if (
        isinstance(stmt, ast.Assign)
        and all(isinstance(t, ast.Name) for t in stmt.targets)
        and _inert(stmt.value, classes)
    ):
        return
    if (
        isinstance(stmt, ast.AnnAssign)
        and isinstance(stmt.target, ast.Name)
        and _inert(stmt.annotation, classes)
        and _inert(stmt.value, classes)
    ):
        return
    raise _refuse(stmt, f"this {type(stmt).__name__} in the body of class `{owner}`")


def check_all(stmt: ast.Assign) -> None:
    """Raises ValidationError unless `__all__` is assigned a list or tuple of strings."""
    v = stmt.value
    if isinstance(v, (ast.List, ast.Tuple)) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in v.elts
    ):
        return
    raise _refuse(stmt, "the value of `__all__`, if not a list of strings,")
