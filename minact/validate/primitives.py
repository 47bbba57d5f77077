"""The vocabulary of candidate code: allowed modules, functions, methods and builtins.

Pure data, so minact.validate (main process) and the worker agree on one list. Everything
here is elementwise maths on tensors; anything that allocates by size, reads or writes
files, touches devices or mixes elements (reductions, sorting, FFTs) stays out.
"""

from __future__ import annotations

import difflib

__all__ = [
    "ALLOWED",
    "BUILTINS",
    "CONSTANTS",
    "FORBIDDEN_BUILTINS",
    "INPLACE_POSITION",
    "METHODS",
    "MODULES",
    "PREDICATES",
    "canonical",
    "suggestion",
]

# Module paths a candidate may import or reach through attributes. `F` stands for
# torch.nn.functional in the normalised source.
MODULES = frozenset({"torch", "torch.nn", "F", "torch.special", "math"})

_ALIASES = {"torch.nn.functional": "F"}

_TORCH = """
abs absolute acos arccos acosh arccosh asin arcsin asinh arcsinh atan arctan atan2 arctan2
atanh arctanh ceil clamp clamp_min clamp_max clip cos cosh deg2rad rad2deg erf erfc erfinv
exp exp2 expm1 floor frac fmax fmin fmod heaviside hypot lerp lgamma digamma log log10
log1p log2 logaddexp logaddexp2 logit maximum minimum mul multiply add sub subtract div
divide true_divide neg negative positive pow reciprocal remainder round rsqrt
sigmoid sign sgn sin sinc sinh sqrt square tan tanh trunc fix where xlogy copysign
nan_to_num zeros_like ones_like full_like relu selu celu i0
""".split()

# The torch functions (and methods) whose result is a boolean tensor: comparisons, their
# logical combinations, and the NaN and infinity tests models write as guards.
PREDICATES = frozenset(
    """
gt ge lt le eq ne greater greater_equal less less_equal not_equal
logical_and logical_or logical_not logical_xor isnan isinf isfinite isposinf isneginf
""".split()
)

_SPECIAL = """
erf erfc erfcx erfinv expit logit ndtr ndtri log_ndtr i0 i0e i1 i1e sinc entr xlog1py
xlogy expm1 exp2 log1p gammaln digamma psi round
""".split()

_FUNCTIONAL = """
relu relu6 gelu silu mish elu selu celu softplus leaky_relu hardtanh hardswish
hardsigmoid hardshrink softshrink tanhshrink softsign logsigmoid sigmoid tanh threshold
""".split()

_MATH = """
sqrt exp log log2 log10 log1p expm1 sin cos tan asin acos atan atan2 sinh cosh tanh
asinh acosh atanh erf erfc gamma lgamma pow fabs hypot floor ceil
""".split()

# Where the F functions take `inplace` positionally (`F.relu(x, True)`): a true value there
# mutates the input, so only a literal False may stand in that place (the keyword is refused).
INPLACE_POSITION: dict[str, int] = {
    f"F.{name}": position
    for names, position in (
        (("relu", "relu6", "selu", "silu", "mish", "hardswish", "hardsigmoid"), 1),
        (("elu", "celu", "leaky_relu"), 2),
        (("hardtanh", "threshold"), 3),
    )
    for name in names
}

# Why a torch function that looks elementwise is left out, said where a candidate calls it.
_WHY_NOT = {
    "float_power": "it computes in float64 and would change the dtype; use torch.pow",
}

# Names usable as plain values (numbers), not only as calls.
CONSTANTS = frozenset({"math.pi", "math.e", "math.tau", "torch.pi", "torch.e"})

ALLOWED = frozenset(
    {f"torch.{n}" for n in (*_TORCH, *PREDICATES)}
    | {f"torch.special.{n}" for n in _SPECIAL}
    | {f"F.{n}" for n in _FUNCTIONAL}
    | {f"math.{n}" for n in _MATH}
    | CONSTANTS
)

# Tensor methods: the elementwise torch functions that also exist as methods, in their
# out-of-place form only (no trailing underscore), plus clone.
METHODS = frozenset(
    (set(_TORCH) - {"zeros_like", "ones_like", "full_like", "selu", "celu"})
    | PREDICATES
    | {"clone"}
)

# Python builtins a candidate may call. `range` only as a for-loop iterable.
BUILTINS = frozenset({"abs", "min", "max", "float", "int", "round", "range"})

# Named in the reason when a candidate reaches for them.
FORBIDDEN_BUILTINS = frozenset(
    """
    eval exec compile open input print __import__ getattr setattr delattr hasattr globals
    locals vars dir type object super breakpoint help memoryview bytearray bytes id hash
    iter next classmethod staticmethod property exit quit
    """.split()
)


def canonical(path: str) -> str:
    """Returns `path` with torch.nn.functional spelt `F` (the normalised form)."""
    for long, short in _ALIASES.items():
        if path == long or path.startswith(long + "."):
            return short + path[len(long) :]
    return path


def suggestion(name: str, *, method: bool = False) -> str:
    """Returns " (did you mean `torch.sin`?)" for a misspelt function or method name
    (`F.sine`, `x.sinus()`), or "" when no allowed name is close."""
    last = name.rsplit(".", 1)[-1]
    if last in _WHY_NOT:
        return f" ({_WHY_NOT[last]})"
    if method:
        close = difflib.get_close_matches(last, sorted(METHODS), n=1, cutoff=0.8)
        return f" (did you mean `.{close[0]}()`?)" if close else ""
    callables = sorted(ALLOWED - CONSTANTS)
    close = difflib.get_close_matches(last, sorted({p.rsplit(".", 1)[-1] for p in callables}),
                                      n=1, cutoff=0.8)  # fmt: skip
    if not close:
        return ""
    paths = [p for p in callables if p.rsplit(".", 1)[-1] == close[0]]
    module = name.rsplit(".", 1)[0] if "." in name else ""
    # The module the author wrote, else torch's own function, else any.
    best = next((p for p in paths if p.rsplit(".", 1)[0] == module), None)
    best = best or next(
        (p for p in paths if p.startswith("torch.") and p.count(".") == 1), paths[0]
    )
    return f" (did you mean `{best}`?)"
