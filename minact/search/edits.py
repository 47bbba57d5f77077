"""Reading and editing the AST of an `activation` def, for the offline mutator.

Pure functions on `ast` nodes: where a child may be edited (the final return and the
assignment it returns), the terms of a sum, numeric literals, an estimate of the tensor
operations a function runs, and replacing one node by another in place.
"""

from __future__ import annotations

import ast

__all__ = [
    "assigned_targets",
    "build",
    "cost",
    "cost_of",
    "dotted_path",
    "number",
    "parse_sites",
    "refs",
    "replace_node",
    "rounded",
    "size",
    "tensor_names",
    "terms",
]

Site = ast.Return | ast.Assign | ast.AugAssign
_OPS = (ast.Call, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.AugAssign)
_OP_COST = {"F.softsign": 3, "F.tanhshrink": 2, "F.logsigmoid": 2}  # aten ops each makes


def parse_sites(source: str) -> tuple[ast.Module, ast.FunctionDef, list[Site]]:
    """Returns the module, its `activation` def and the statements a child may edit.

    They are the final return and, if it returns a local, the last assignment to that local.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ValueError(f"parent does not parse: {e.msg}") from None
    funcs = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "activation"]
    if not funcs or len(funcs[0].args.args) != 1:
        raise ValueError("parent has no `def activation(x)`")
    stmts = [s for s in ast.walk(funcs[0]) if isinstance(s, Site) and s.value is not None]
    stmts.sort(key=lambda s: (s.lineno, s.col_offset))
    returns = [s for s in stmts if isinstance(s, ast.Return)]
    if not returns:
        raise ValueError("parent's activation returns nothing")
    ret = returns[-1].value
    local = ret.id if isinstance(ret, ast.Name) and ret.id != funcs[0].args.args[0].arg else None
    assigned = [s for s in stmts if local in {getattr(t, "id", None) for t in assigned_targets(s)}]
    return tree, funcs[0], [returns[-1], *assigned[-1:]]


def terms(e: ast.expr, sign: str) -> list[tuple[str, ast.expr]]:
    """Returns the signed terms of a sum: a - (b + c) gives +a, -b, -c."""
    if isinstance(e, ast.BinOp) and isinstance(e.op, (ast.Add, ast.Sub)):
        flip = {"+": "-", "-": "+"}[sign] if isinstance(e.op, ast.Sub) else sign
        return terms(e.left, sign) + terms(e.right, flip)
    return [(sign, e)]


def assigned_targets(s: ast.AST) -> list[ast.expr]:
    if isinstance(s, ast.Assign):
        return s.targets
    return [s.target] if isinstance(s, ast.AugAssign) else []


def cost_of(source: str) -> int:
    _, func, _ = parse_sites(source)
    return cost(func, tensor_names(func))


def cost(node: ast.AST, names: set[str], scale: int = 1) -> int:
    """Returns an estimate of the elementwise tensor ops `node` runs (GELU = 1)."""
    if isinstance(node, ast.For):
        bounds = [number(a) for a in getattr(node.iter, "args", [])]
        trips = 8  # not a plain range(): assume a modest loop
        if bounds and all(isinstance(b, int) for b in bounds) and 0 not in bounds[2:]:
            trips = len(range(*[int(b or 0) for b in bounds]))
        return sum(cost(s, names, scale * trips) for s in node.body)
    # Arithmetic on Python numbers (constants, loop counters) costs no tensor op.
    own = 0
    if isinstance(node, _OPS) and refs(node, names):
        own = _OP_COST.get(dotted_path(node.func) or "", 1) if isinstance(node, ast.Call) else 1
    return scale * own + sum(cost(c, names, scale) for c in ast.iter_child_nodes(node))


def tensor_names(func: ast.FunctionDef) -> set[str]:
    """Returns the parameter and the assigned locals: names that may hold tensors."""
    out = {func.args.args[0].arg}
    for s in ast.walk(func):  # for-loop variables are ints, so they are left out
        out |= {t.id for t in assigned_targets(s) if isinstance(t, ast.Name)}
    return out


def refs(e: ast.AST, names: set[str]) -> int:
    return sum(1 for n in ast.walk(e) if isinstance(n, ast.Name) and n.id in names)


def number(n: ast.AST) -> float | None:
    """Returns the value of a numeric literal `c` or `-c`, or None for anything else."""
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
        v = number(n.operand) if isinstance(n.operand, ast.Constant) else None
        return None if v is None else -v
    if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
        return None if isinstance(n.value, bool) else n.value
    return None


def size(e: ast.AST) -> int:
    return sum(1 for _ in ast.walk(e))


def rounded(v: float, digits: int = 3) -> float:
    return float(f"{v:.{digits}g}")


def dotted_path(e: ast.expr) -> str | None:
    """Returns the dotted module path `e` spells (`torch.sin`, `F.gelu`), or None."""
    parts: list[str] = []
    while isinstance(e, ast.Attribute):
        parts.append(e.attr)
        e = e.value
    if isinstance(e, ast.Name) and e.id in ("torch", "F", "math") and parts:
        return ".".join([e.id, *reversed(parts)])
    return None


def build(text: str, **holes: ast.expr) -> ast.expr:
    """Returns `text` parsed, each hole (`_E`: no candidate may use the name) filled in."""
    out = ast.parse(text, mode="eval").body
    for name, node in holes.items():
        hole = next(n for n in ast.walk(out) if isinstance(n, ast.Name) and n.id == name)
        out = replace_node(out, hole, node)
    return out


def replace_node(root: ast.expr, old: ast.AST, new: ast.expr) -> ast.expr:
    """Returns `root` with the node `old` (by identity) replaced by `new`."""
    if root is old:
        return new
    for parent in ast.walk(root):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return root
            if isinstance(value, list) and any(v is old for v in value):
                value[[v is old for v in value].index(True)] = new
                return root
    raise AssertionError("node to replace is not in the expression")
