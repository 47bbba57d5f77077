"""What the run already knows, so that a model is told not to repeat it: text in, text out.

`expression` renders a candidate as one line (`F.gelu(x) + 0.1 * torch.sin(x)`), for
the prompt's list of scored functions. `expression_key` is the same line with the sums
and products put in a canonical order, so `torch.sigmoid(x) * x` and
`x * torch.sigmoid(x)` are one function before any evaluation (a cheap first line of
deduplication; the behaviour hash, known once the worker has probed a candidate, is the
second). `Known` indexes the run's scored members by code, expression and behaviour,
each with the position at which it joined, so that a proposal can be checked against
the members that existed when it was built: the verdict then never depends on timing.
`feedback` writes the follow-up message that tells the model what was wrong.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass

from minact.candidate import Hash
from minact.score import Score
from minact.search.population import Member

__all__ = [
    "Known",
    "Verdict",
    "expression",
    "expression_key",
    "failed",
    "feedback",
    "label",
]

_MAX_LINE = 160
_REASON_CHARS = 240  # of a reason told back: a duplicate's, naming the function, fits
# Failures the model can fix: the worker's checks (and training) say what went wrong.
# A timeout or a crash says nothing the model could act on.
_FIXABLE = {"invalid", "error", "bad_output", "nonfinite", "not_pointwise", "too_costly"}
_COMMUTATIVE = (ast.Add, ast.Mult, ast.BitAnd, ast.BitOr)
# How to fix what small models get wrong most, keyed by a piece of the reason.
# Small models guard against NaN and infinity with functions that do not exist.
_FINITE = (
    "The inputs are always finite numbers: no NaN or infinity checks are needed; write the "
    "activation's formula."
)
_HINTS = (
    (
        "Boolean value of Tensor",
        "Python's if/and/or/max/min see the whole tensor at once: choose elementwise with "
        "torch.where(condition, a, b), torch.maximum, torch.minimum or torch.clamp.",
    ),
    (
        "only one element tensors can be converted",
        "math functions take one number: on tensors use torch.sin, torch.exp, ... instead.",
    ),
    (
        "is not allowed in candidate code",
        "Call functions through their module: torch.sigmoid, torch.exp, F.gelu, ...",
    ),
    *((key, _FINITE) for key in ("is_nan", "isnan", "is_inf", "isinf", ".inf`", ".nan`")),
    ("import of 'numpy'", "Compute with torch functions on the tensor x, not numpy."),
    # torch.clamp(-1.0, 1.0) or torch.sigmoid(-10): a torch function given numbers only.
    *(
        (
            key,
            "Torch functions take a tensor first, e.g. torch.clamp(x, -1.0, 1.0); for a "
            "constant use a number or math (math.exp(-10.0)).",
        )
        for key in ("invalid combination of arguments", "must be Tensor, not")
    ),
    (
        "unexpected keyword argument",
        "Each function takes only its own keywords: F.leaky_relu(x, negative_slope=0.01), "
        "F.elu(x, alpha=1.0), F.softplus(x, beta=1.0); write other shapes as arithmetic.",
    ),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a reply gives no new candidate: its kind, the reason, and the text at fault.

    Attributes:
        kind: "parse_failure", "rejected", "duplicate" or "failed" (scored, it failed).
        reason: what the model is told (and the event log keeps).
        source: the reply's candidate source, or the reply text when it did not parse.
    """

    kind: str
    reason: str
    source: str


def _function(source: str) -> ast.FunctionDef | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    return funcs[0] if len(funcs) == 1 and len(funcs[0].args.args) == 1 else None


class _Inline(ast.NodeTransformer):
    """Replaces local names by the expressions assigned to them, and the argument by x."""

    def __init__(self, arg: str) -> None:
        self.values: dict[str, ast.expr] = {arg: ast.Name("x", ast.Load())}

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self.values.get(node.id, node)


def _inlined(source: str) -> ast.expr | None:
    """Returns the function's value as one expression, if its body is straight-line code."""
    func = _function(source)
    if func is None:
        return None
    inline = _Inline(func.args.args[0].arg)
    for stmt in func.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring
        if isinstance(stmt, ast.Return) and stmt.value is not None:
            return inline.visit(stmt.value)  # type: ignore[no-any-return]
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            inline.values[stmt.targets[0].id] = inline.visit(stmt.value)
            continue
        return None  # a loop, a branch, an augmented assignment: not one expression
    return None


def expression(source: str) -> str:
    """Returns the candidate as one line: its inlined expression, else its statements."""
    expr = _inlined(source)
    if expr is not None:
        text = ast.unparse(expr)
    else:
        lines = [ln.strip() for ln in source.splitlines()[1:] if ln.strip()]
        text = "; ".join(lines)
    return text if len(text) <= _MAX_LINE else text[: _MAX_LINE - 1] + "…"


class _Canonical(ast.NodeTransformer):
    """Sorts the operands of sums and products; writes every number as a float."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        if not isinstance(node.op, _COMMUTATIVE):
            return node
        op = type(node.op)
        terms: list[ast.expr] = []
        stack: list[ast.expr] = [node]
        while stack:
            e = stack.pop()
            if isinstance(e, ast.BinOp) and isinstance(e.op, op):
                stack += [e.right, e.left]
            else:
                terms.append(e)
        terms.sort(key=ast.unparse)
        out = terms[0]
        for t in terms[1:]:
            out = ast.BinOp(out, op(), t)
        return out

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        v = node.value
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return ast.Constant(float(v))
        return node


def expression_key(source: str) -> str:
    """Returns a key equal for candidates that differ only in order of sums and products."""
    expr = _inlined(source)
    if expr is None:
        return source
    return "expr:" + ast.unparse(_Canonical().visit(expr))


def label(m: Member) -> str:
    """Returns how a member is named to the model: name, score and expression."""
    s = m.score
    if s.ok and s.fitness is not None:
        scored = f"already scored, fitness {s.fitness:+.3f}"
    elif s.ok:  # a built-in, for a proposal built before its scores (search.opening)
        scored = "a built-in activation"
    else:
        scored = f"already tried, it failed: {s.status}"
    return f"{s.name} = {expression(s.source)} ({scored})"


class Known:
    """The run's scored members by code hash, expression key and behaviour hash.

    Each entry keeps the position at which its member joined (seeds first), so that
    `find(..., before=n)` answers as the index stood when it held n members.
    """

    def __init__(self) -> None:
        self.size = 0
        self._codes: dict[Hash, tuple[int, Member]] = {}
        self._expressions: dict[str, tuple[int, Member]] = {}
        self._behaviours: dict[Hash, tuple[int, Member]] = {}

    def add(self, m: Member) -> None:
        """Adds a scored member (ok or failed)."""
        entry = (self.size, m)
        s = m.score
        if s.code_hash is not None:
            self._codes.setdefault(s.code_hash, entry)
        self._expressions.setdefault(expression_key(s.source), entry)
        if s.behaviour_hash is not None:
            self._behaviours.setdefault(s.behaviour_hash, entry)
        self.size += 1

    def same_code(self, code_hash: Hash, source: str, before: int) -> Verdict | None:
        """Returns a duplicate verdict if an earlier member has this code or expression."""
        hit = self._codes.get(code_hash)
        if hit is not None and hit[0] < before:
            return Verdict("duplicate", f"identical to {label(hit[1])}", source)
        hit = self._expressions.get(expression_key(source))
        if hit is not None and hit[0] < before:
            return Verdict("duplicate", f"the same expression as {label(hit[1])}", source)
        return None

    def same_behaviour(self, behaviour: Hash | None, source: str, before: int) -> Verdict | None:
        """Returns a duplicate verdict if an earlier member computes the same function."""
        hit = self._behaviours.get(behaviour) if behaviour is not None else None
        if hit is not None and hit[0] < before:
            reason = f"computes the same values as {label(hit[1])}"
            return Verdict("duplicate", reason, source)
        return None


def failed(score: Score) -> Verdict | None:
    """Returns a verdict for a scored candidate that failed in a way its author can fix."""
    if score.ok or score.status not in _FIXABLE:
        return None
    return Verdict("failed", f"{score.status}: {score.reason}", score.source)


def _hint(reason: str) -> str:
    return next((" " + hint for key, hint in _HINTS if key in reason), "")


def feedback(v: Verdict) -> str:
    """Returns the follow-up message for a reply that gave no new candidate."""
    # A reason may quote the reply (a name thousands of characters long, an error's
    # message): told back whole, a follow-up would outgrow what prompt.FOLLOW_UP_CHARS
    # keeps for it in the model's context. The hint is found in the whole reason.
    reason = v.reason if len(v.reason) <= _REASON_CHARS else v.reason[:_REASON_CHARS] + " …"
    hint = _hint(v.reason)
    if v.kind == "failed":
        return (
            f"Your function failed when it was run: {reason}.{hint} Fix it (on "
            "tensors use torch functions; math only for constants such as math.pi) and reply "
            "with the complete function in one ```python block."
        )
    if v.kind == "duplicate":
        return (
            f"Your function is {reason}. A copy is wasted: it cannot improve the search. "
            "Write a DIFFERENT activation function, not any function listed above, and reply "
            "with the complete function in one ```python block."
        )
    if v.kind == "parse_failure":
        return (
            f"I could not use your reply: {reason}. Reply with ONE ```python block holding "
            "the complete `def activation(x):` function."
        )
    return (
        f"Your function was rejected: {reason}.{hint} Fix that and reply with "
        "the complete function in one ```python block."
    )
