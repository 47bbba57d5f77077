"""Repairs of the module around a candidate's function: its text, imports and top level.

Part of minact.validate.repair: before the function's own code is repaired, the reply's
module is made what minact runs of it. `text` fixes the syntax slips models make that no
parser gets past (`from torch.nn.functional as F`, one `)` too many at the end of a
line, or too few at the end of a complete one); `module` keeps the last `def
activation`, drops numpy imports, example code and statements the function does not
read, moves the constants it reads into it, and spells the `F` import as Python has it.
Each returns what it changed.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable

__all__ = ["bound_names", "mentions", "module", "tensor_names", "text"]

# `from torch.nn.functional as F`: an import written half as `from`, half as `import`.
# Blanks within one line only ([^\S\n]): `\s*` after `^` would run over every following
# newline from each line start, quadratic in the reply (5 s for 32,000 blank lines).
_FROM_AS = re.compile(
    r"^([^\S\n]*)from[^\S\n]+([A-Za-z_][\w.]*)[^\S\n]+as[^\S\n]+([A-Za-z_]\w*)[^\S\n]*$", re.M
)
_MAX_EXTRA_PARENS = 3
# What begins a line that continues the expression on the line before, and no statement.
_CONTINUES = re.compile(r"\s*(?:[-+*/%@&|^<>=!.,)\]}]|(?:and|or|in|is|not\s+in)\b)")


def text(source: str) -> tuple[str, list[str]]:
    """Returns `source` with the syntax slips above fixed where that makes it parse."""
    fixes: list[str] = []
    fixed = _FROM_AS.sub(r"\1import \2 as \3", source)
    if fixed != source:
        fixes.append("`from M as F` → `import M as F`")
    for _ in range(_MAX_EXTRA_PARENS):  # one slip per try; a line may have several
        error = _syntax_error(fixed)
        if error is None or error.msg != "unmatched ')'" or not error.lineno:
            break
        lines = fixed.split("\n")
        line = lines[error.lineno - 1].rstrip()
        if not line.endswith(")"):
            break
        lines[error.lineno - 1] = line[:-1]
        fixed = "\n".join(lines)
        if "dropped an unmatched `)` at the end of a line" not in fixes:
            fixes.append("dropped an unmatched `)` at the end of a line")
    fixed = _close_parens(fixed, fixes)
    if fixes and _syntax_error(fixed) is None:
        return fixed, fixes
    return source, []  # not what was meant, or still broken: validation gives the reason


def _close_parens(source: str, fixes: list[str]) -> str:
    """Returns `source` with the `(` a line left open closed at its end, when the line is
    complete otherwise (it ends in a name, a number or `)`, not in an operator or a comma:
    a reply cut mid-expression is not guessed at) and holds no string or other bracket."""
    error = _syntax_error(source)
    if error is None or error.msg != "'(' was never closed" or not error.lineno:
        return source
    lines = source.split("\n")
    line = lines[error.lineno - 1].rstrip()
    code = line.split("#", 1)[0].rstrip() if "#" in line else line
    missing = code.count("(") - code.count(")")
    if not 0 < missing <= _MAX_EXTRA_PARENS or any(c in code for c in "'\"[]{}\\"):
        return source
    if not re.search(r"[\w)]$", code) or _continued(lines[error.lineno :]):
        return source
    lines[error.lineno - 1] = code + ")" * missing + line[len(code) :]
    fixes.append(f"closed {missing} `(` left open at the end of a line")
    return "\n".join(lines)


def _continued(after: list[str]) -> bool:
    """Returns whether the next line of code (after blank and comment lines) goes on with
    an expression: it starts with a binary operator, a closing bracket, `.` or `,`. The
    `(` left open may then close after it, and closing it at the end of the line before
    would turn the rest of the expression into a statement that computes nothing."""
    code = next((ln for ln in after if ln.strip() and not ln.strip().startswith("#")), "")
    return _CONTINUES.match(code) is not None


def _syntax_error(source: str) -> SyntaxError | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(source)
    except SyntaxError as e:
        return e
    except (ValueError, RecursionError, MemoryError):
        return None  # not a slip of these kinds: validation gives the reason
    return None


def bound_names(node: ast.AST) -> set[str]:
    """Returns every name bound in `node`, blocks included: imports, defs, arguments,
    assignments, loop targets, `global` declarations."""
    bound: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in n.names}
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            bound.add(n.id)
        elif isinstance(n, ast.Global):
            bound |= set(n.names)
    return bound


def mentions(node: ast.AST, names: set[str]) -> bool:
    """Returns whether `node` reads or writes any of `names`."""
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def tensor_names(func: ast.FunctionDef) -> set[str]:
    """Returns the argument and every local computed from a tensor, in any order."""
    # Names → the targets of the assignments that read them; then a graph search, not
    # passes over the assignments to a fixed point, which take quadratic time on a chain
    # written backwards (`c = b`, `b = a`, `a = x`).
    readers: dict[str, list[list[str]]] = {}
    for a in ast.walk(func):
        if isinstance(a, (ast.Assign, ast.AugAssign)):
            targets = a.targets if isinstance(a, ast.Assign) else [a.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            for read in {n.id for n in ast.walk(a.value) if isinstance(n, ast.Name)}:
                readers.setdefault(read, []).append(names)
    tensors = {a.arg for a in func.args.args}
    todo = list(tensors)
    while todo:
        for names in readers.get(todo.pop(), []):
            new = [n for n in names if n not in tensors]
            tensors.update(new)
            todo += new
    return tensors


def module(tree: ast.Module, fix: Callable[[str], None]) -> ast.FunctionDef | None:
    """Tidies `tree` around its `def activation` and returns that function (None: none).

    `fix` is told each change.
    """
    func = _one_activation(tree, fix)
    if func is None:
        return None
    _drop_numpy_imports(tree, fix)
    _tidy_top_level(tree, func, fix)
    _fix_imports(tree, fix)
    return func


def _one_activation(tree: ast.Module, fix: Callable[[str], None]) -> ast.FunctionDef | None:
    """Keeps the last `def activation` (the one Python would call) and returns it."""
    defs = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "activation"]
    if not defs:
        return None
    if len(defs) > 1:
        tree.body = [s for s in tree.body if s not in defs[:-1]]
        fix(f"kept the last of {len(defs)} `def activation` (the one Python calls)")
    return defs[-1]


def _tidy_top_level(tree: ast.Module, func: ast.FunctionDef, fix: Callable[[str], None]) -> None:
    """Leaves the module what minact runs of it: imports and the function.

    minact calls `activation(x)` only, so a top-level statement matters to it only
    through the globals the function reads. `NAME = value` lines that set one of them
    move into the function, in order (not for a name the function binds itself, which
    Python would not read from the module); statements that bind nothing it reads
    (example inputs, calls of the function, prints, `if __name__ == "__main__":`,
    helper demos) are dropped; anything else is left for validation to judge.
    """
    local = bound_names(func)
    reads = {
        n.id
        for n in ast.walk(func)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in local
    }
    # The constants those read, and theirs (`BETA = ALPHA * 2`): all move, or BETA's line
    # would move without the ALPHA it needs. One pass from the end, as a module is run from
    # the top; a name read before it is set fails in Python and in validation alike.
    for stmt in reversed(tree.body):
        if isinstance(stmt, ast.Assign) and bound_names(stmt) & reads:
            reads |= {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)}
    moved: list[ast.stmt] = []
    dropped: list[ast.stmt] = []
    after = False  # past the function
    for stmt in tree.body:
        after = after or stmt is func
        if stmt is func or isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring
        if after and func.name in bound_names(stmt):
            continue  # `activation = F.gelu` is what Python calls, not the def: validation judges
        if not bound_names(stmt) & reads:
            dropped.append(stmt)
        elif (
            isinstance(stmt, ast.Assign)
            and all(isinstance(t, ast.Name) for t in stmt.targets)
            and not mentions(stmt.value, {func.name})
        ):
            moved.append(stmt)
            targets = " = ".join(t.id for t in stmt.targets if isinstance(t, ast.Name))
            fix(f"moved `{targets} = …` into the function (top level: imports only)")
    if dropped:
        what = "statement" if len(dropped) == 1 else "statements"
        fix(
            f"dropped {len(dropped)} top-level {what} the function does not read "
            "(example or test code)"
        )
    if moved or dropped:
        tree.body = [s for s in tree.body if s not in moved and s not in dropped]
        func.body = [*moved, *func.body]


def _fix_imports(tree: ast.Module, fix: Callable[[str], None]) -> None:
    """`from torch.nn.functional import F[, g, ...]` → `import torch.nn.functional as F`
    (and `from torch.nn.functional import g, ...`): F is the module, not one of its names."""
    body: list[ast.stmt] = []
    for stmt in tree.body:
        names = stmt.names if isinstance(stmt, ast.ImportFrom) else []
        if not (
            isinstance(stmt, ast.ImportFrom)
            and stmt.module == "torch.nn.functional"
            and not stmt.level
            and any(a.name == "F" and a.asname is None for a in names)
        ):
            body.append(stmt)
            continue
        body.append(ast.copy_location(ast.Import([ast.alias("torch.nn.functional", "F")]), stmt))
        rest = [a for a in names if not (a.name == "F" and a.asname is None)]
        if rest:
            body.append(ast.copy_location(ast.ImportFrom("torch.nn.functional", rest, 0), stmt))
        fix("`from torch.nn.functional import F` → `import torch.nn.functional as F`")
    tree.body = body


def _drop_numpy_imports(tree: ast.Module, fix: Callable[[str], None]) -> None:
    def numpy(s: ast.stmt) -> bool:
        if isinstance(s, ast.Import):
            return all(a.name.split(".")[0] == "numpy" for a in s.names)
        return isinstance(s, ast.ImportFrom) and (s.module or "").split(".")[0] == "numpy"

    def drop(body: list[ast.stmt]) -> list[ast.stmt]:
        kept = [s for s in body if not numpy(s)]
        if len(kept) < len(body):
            fix("dropped `import numpy` (candidates compute with torch)")
        return kept

    tree.body = drop(tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.body = drop(node.body) or [ast.Pass()]
