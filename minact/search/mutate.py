"""The offline mutator: one expression-level edit (or crossover) of a candidate source, no LLM.

In the spirit of the 2017 Swish search, but on Python ASTs. A child is its parent with one
edit to the final `return` expression or, when that returns a local, half of the time to
the last assignment to that local; all other statements stay. Children are checked with
`validate` and a cost estimate before they are returned, so the search loop rarely spends
a slot on a bad one. It is the default proposer, and the baseline an LLM must beat.

Operator weights, relative, among the applicable ones: swap 2, constant 3, add_term 2,
remove_term 1, compose 1.5, crossover 3 (only with a second parent). When the edited
expression has more than GROWTH_NODES nodes, or the function an estimated cost above
GROWTH_COST elementwise ops (GELU = 1), add_term and compose are off, crossover may only
put in a subtree no larger than the one it replaces, and remove_term weighs 4.
"""

from __future__ import annotations

import ast
import copy
import math
import random
from dataclasses import dataclass

from minact.candidate import Candidate
from minact.search import edits
from minact.validate import primitives, validate

__all__ = ["MAX_COST", "OPERATORS", "WEIGHTS", "Mutation", "Mutator"]

OPERATORS = ("swap", "constant", "add_term", "remove_term", "compose", "crossover")
WEIGHTS = dict(zip(OPERATORS, (2.0, 3.0, 2.0, 1.0, 1.5, 3.0), strict=True))
GROWTH_NODES = 40
GROWTH_COST = 12
MAX_COST = 15  # the lab admits up to 16x GELU; one op of margin for the estimate
ATTEMPTS = 8

# Unary elementwise functions by kind; a swap stays within its kind 80% of the time.
_SHAPES = tuple(
    "torch.sin torch.cos torch.tanh torch.sigmoid torch.erf torch.atan torch.sinc torch.asinh "
    "F.softsign".split()
)
_RECTIFIERS = tuple(
    "F.gelu F.silu F.mish F.elu F.softplus F.relu F.leaky_relu F.selu F.celu F.hardswish".split()
)
# exp and the aliases are swapped away from, never to: exp overflows float32 past e^88.
_KIND = {p: "shape" for p in (*_SHAPES, "torch.exp", "F.tanh", "F.sigmoid", "torch.special.erf")}
_KIND.update({p: "rectifier" for p in (*_RECTIFIERS, "torch.relu", "F.relu6", "F.tanhshrink")})
_WRAPS = ("F.gelu", "F.silu", "torch.tanh", "F.softsign", "F.softplus", "F.mish", "F.elu")
_LEAF_WRAPS = ("torch.tanh", "torch.sin", "F.gelu", "F.silu", "torch.sigmoid", "torch.atan")
# add_term's terms and weights ({c}: scale, {w}: frequency); the paper's winners add or
# multiply a sin/sinc ripple. The `(1 + ...)` term multiplies, as in GSP.
_TERMS = {
    "{c} * torch.sin({w} * X)": 3.0,
    "{c} * torch.cos({w} * X)": 1.0,
    "{c} * torch.sinc({w} * X)": 1.0,
    "{c} * X": 1.0,
    "{c} * torch.sin({w} * X) ** 2": 1.0,
    "(1 + {c} * torch.sinc({w} * X))": 2.0,
}
_TENSOR_KINDS = (ast.Call, ast.BinOp, ast.UnaryOp, ast.Name)  # subtrees crossover may move
assert all(p in primitives.ALLOWED for p in (*_KIND, *_WRAPS, *_LEAF_WRAPS))

Edit = tuple[ast.expr, str]  # the new expression and its description


@dataclass(frozen=True, slots=True)
class Mutation:
    """A child proposed by the offline mutator.

    Attributes:
        source: normalised `def activation(x):` source of the child.
        operator: the operator that made it, one of OPERATORS.
        description: one line for the run log, e.g. "swap torch.tanh -> torch.sin".
    """

    source: str
    operator: str
    description: str


class Mutator:
    """Proposes children of candidate sources by one random expression-level edit."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def mutate(self, parent: str, other: str | None = None) -> Mutation:
        """Returns a child of `parent` (and `other`, for crossover); ValueError if no def."""
        reference = _normalised(parent)
        limit = max(MAX_COST, edits.cost_of(reference))
        donor = _normalised(other) if other is not None else None
        last: Mutation | None = None
        for attempt in range(ATTEMPTS + 1):
            # Last resort: add_term on the return always applies and always changes the text.
            child = self._propose(reference, donor, force=attempt == ATTEMPTS)
            if child is None:
                continue
            last = child
            verdict = validate(child.source)
            if isinstance(verdict, Candidate) and verdict.source != reference:
                if edits.cost_of(verdict.source) <= limit:
                    return Mutation(verdict.source, child.operator, child.description)
        assert last is not None
        return last

    def _propose(self, source: str, donor: str | None, force: bool) -> Mutation | None:
        rng = self._rng
        tree, func, sites = edits.parse_sites(source)
        site = sites[-1] if not force and rng.random() < 0.5 else sites[0]
        assert site.value is not None
        expr, param, names = site.value, func.args.args[0].arg, edits.tensor_names(func)
        big = edits.size(expr) > GROWTH_NODES or edits.cost(func, names) > GROWTH_COST
        calls, literals, removals = _swappable(expr), _literals(expr), _removals(expr, names)
        # In OPERATORS order; a big expression does not grow, and shrinks more often.
        applies = (calls, literals, not big, removals, not big, donor is not None)
        weights = [w * bool(a) for w, a in zip(WEIGHTS.values(), applies, strict=True)]
        weights[OPERATORS.index("remove_term")] *= 4 if big else 1
        if force:
            weights = [float(op == "add_term") for op in OPERATORS]
        if not any(weights):
            return None
        op = rng.choices(OPERATORS, weights=weights)[0]
        edit: Edit | None
        if op == "swap":
            edit = expr, _swap(rng, rng.choice(calls))
        elif op == "constant":
            edit = _constant(rng, expr, rng.choice(literals))
        elif op == "add_term":
            edit = _add_term(rng, expr, param)
        elif op == "remove_term":
            node, kept, dropped = rng.choice(removals)
            edit = edits.replace_node(expr, node, kept), f"remove {ast.unparse(dropped)}"
        elif op == "compose":
            edit = _compose(rng, expr, param)
        else:
            assert donor is not None
            edit = _crossover(rng, expr, param, names, donor, big)
        if edit is None:
            return None
        site.value = edit[0]
        return Mutation(ast.unparse(tree), op, edit[1])


def _swap(rng: random.Random, call: ast.Call) -> str:
    path = edits.dotted_path(call.func)
    assert path is not None
    kind = _KIND[path]
    if rng.random() < 0.2:
        kind = "rectifier" if kind == "shape" else "shape"
    new = rng.choice([p for p in (_SHAPES if kind == "shape" else _RECTIFIERS) if p != path])
    # Extra arguments (negative_slope=, approximate=) belong to the old function.
    call.func, call.args, call.keywords = edits.build(new), call.args[:1], []
    return f"swap {path} -> {new}"


def _constant(rng: random.Random, expr: ast.expr, node: ast.expr) -> Edit:
    v = edits.number(node)
    assert v is not None
    calls = [n for n in ast.walk(expr) if isinstance(n, ast.Call)]
    args = {id(a) for n in calls for a in [*n.args[1:], *(k.value for k in n.keywords)]}
    powers = [n for n in ast.walk(expr) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow)]
    new: float
    if any(node is n.right for n in powers):  # x ** 2.3 is NaN for x < 0: whole steps only
        new = min(max(v + rng.choice((-1, 1)), 1), 5) if v >= 1 else v + 1
    elif isinstance(v, int) and id(node) in args:  # e.g. decimals=2 must stay an int
        new = v + rng.choice((-1, 1))
    else:
        # Mostly log-normal (steps relative to scale); 10% sign flips, 10% +-1.
        r, sign, step = rng.random(), rng.choice((-1.0, 1.0)), math.exp(rng.gauss(0.0, 0.3))
        new = -v if r < 0.1 else v + sign if r < 0.2 else v * step if v else sign * step / 10
        new = (
            edits.rounded(new) if new != 0 else edits.rounded(v / 2)
        )  # never a new division by zero
    return edits.replace_node(expr, node, edits.build(repr(new))), f"constant {v!r} -> {new!r}"


def _add_term(rng: random.Random, expr: ast.expr, param: str) -> Edit:
    template = rng.choices(list(_TERMS), weights=list(_TERMS.values()))[0]
    c = edits.rounded(10 ** rng.uniform(-1.5, -0.3), 2)  # |c| in [0.03, 0.5]: a perturbation
    w = edits.rounded(10 ** rng.uniform(-0.5, 0.6), 2)  # frequencies in [0.3, 4]
    term = edits.build(template.format(c=c, w=w).replace("X", param))
    if template.startswith("(1 +"):
        return edits.build("_E * _T", _E=expr, _T=term), f"multiply by {ast.unparse(term)}"
    sub = "**" not in template and rng.random() < 0.3  # a ripple or slope of either sign
    text = f"{'subtract' if sub else 'add'} {ast.unparse(term)}"
    return edits.build(f"_E {'-' if sub else '+'} _T", _E=expr, _T=term), text


def _compose(rng: random.Random, expr: ast.expr, param: str) -> Edit:
    mode = rng.choice(("wrap", "leaf", "gate"))
    leaves = [n for n in ast.walk(expr) if isinstance(n, ast.Name) and n.id == param]
    if mode == "leaf" and leaves:
        f = rng.choice(_LEAF_WRAPS)
        return edits.replace_node(
            expr, rng.choice(leaves), edits.build(f"{f}({param})")
        ), f"{param} -> {f}"
    if mode == "gate":
        if rng.random() < 0.5:
            gate = f"torch.sigmoid({edits.rounded(10 ** rng.uniform(-0.3, 0.5), 2)} * {param})"
        else:  # a Gaussian envelope, as in the paper's tanh(1.5x)·exp(−0.2x²)
            gate = f"torch.exp(-{edits.rounded(10 ** rng.uniform(-1.7, -0.5), 2)} * {param} ** 2)"
        return edits.build(f"_E * {gate}", _E=expr), f"gate by {gate}"
    f = rng.choice(_WRAPS)
    return edits.build(f"{f}(_E)", _E=expr), f"wrap in {f}"


def _crossover(
    rng: random.Random, expr: ast.expr, param: str, names: set[str], donor: str, big: bool
) -> Edit | None:
    """Returns a blend with `donor`, `expr` plus one of its terms, or one of its subtrees in."""
    try:
        _, func, sites = edits.parse_sites(donor)
    except ValueError:
        return None
    theirs, ret = func.args.args[0].arg, sites[0].value
    assert ret is not None
    # A subtree that names one of the donor's locals would be unbound in the child.
    local = {
        n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }

    def adopt(e: ast.expr) -> ast.expr | None:  # a fresh copy in our names, if it can move
        ids = {n.id for n in ast.walk(e) if isinstance(n, ast.Name)}
        if theirs not in ids or ids & local or not isinstance(e, _TENSOR_KINDS):
            return None
        out = copy.deepcopy(e)
        for n in ast.walk(out):
            if isinstance(n, ast.Name) and n.id == theirs:
                n.id = param
        return out

    mode = rng.choice(("replace",) if big else ("replace", "blend", "add"))  # only replace shrinks
    whole, terms = adopt(ret), edits.terms(ret, "+")
    if mode == "blend" and whole is not None:
        a = edits.rounded(rng.uniform(0.2, 0.8), 2)
        new = edits.build(f"{a} * _E + {edits.rounded(1 - a, 2)} * _D", _E=expr, _D=whole)
        return new, f"blend {a} * parent + {edits.rounded(1 - a, 2)} * other"
    movable = [(sign, t) for sign, term in terms if (t := adopt(term)) is not None]
    if mode == "add" and len(terms) > 1 and movable:
        sign, t = rng.choice(movable)
        return edits.build(
            f"_E {sign} _T", _E=expr, _T=t
        ), f"add {sign} {ast.unparse(t)} from other"
    parts = [p for n in ast.walk(ret) if isinstance(n, ast.expr) and (p := adopt(n)) is not None]
    if not parts:
        return None
    part = rng.choice(parts)
    smallest = edits.size(part) - 2 if big else 0  # a big parent never grows
    targets = [n for n in ast.walk(expr) if isinstance(n, _TENSOR_KINDS) and edits.refs(n, names)]
    targets = [n for n in targets if edits.size(n) >= smallest]
    if not targets:
        return None
    target = rng.choice(targets)
    text = f"replace {ast.unparse(target)} with {ast.unparse(part)} from other"
    return edits.replace_node(expr, target, part), text


def _normalised(source: str) -> str:
    verdict = validate(source)
    return verdict.source if isinstance(verdict, Candidate) else source


def _swappable(expr: ast.expr) -> list[ast.Call]:
    # Tensor methods (`y.tanh()`) are left to the other operators.
    calls = [n for n in ast.walk(expr) if isinstance(n, ast.Call) and n.args]
    return [n for n in calls if edits.dotted_path(n.func) in _KIND]


def _literals(expr: ast.expr) -> list[ast.expr]:
    """Returns the numeric literals in `expr`, a negated literal `-c` counting as one."""
    nodes = [n for n in ast.walk(expr) if isinstance(n, ast.expr) and edits.number(n) is not None]
    inner = {id(n.operand) for n in nodes if isinstance(n, ast.UnaryOp)}
    return [n for n in nodes if id(n) not in inner]


def _removals(expr: ast.expr, names: set[str]) -> list[tuple[ast.expr, ast.expr, ast.expr]]:
    """Returns (node, kept, dropped) for each operand of a +/- whose loss leaves a tensor."""
    out: list[tuple[ast.expr, ast.expr, ast.expr]] = []
    total = edits.refs(expr, names)
    for n in ast.walk(expr):
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub)):
            right = n.right if isinstance(n.op, ast.Add) else ast.UnaryOp(ast.USub(), n.right)
            for kept, dropped in ((n.left, n.right), (right, n.left)):
                if total > edits.refs(dropped, names):  # never return a bare number
                    out.append((n, kept, dropped))
    return out
