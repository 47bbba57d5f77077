"""Tests for minact.validate.numeric: candidate code computes in floating point."""

from __future__ import annotations

import ast
import math

import pytest

from minact import seeds
from minact.candidate import Candidate, Rejection
from minact.validate import validate
from minact.validate.intervals import Interval, int_op


def fn(*body: str) -> str:
    return (
        "import math\nimport torch\nimport torch.nn.functional as F\n\n\ndef activation(x):\n"
        + ("".join(f"    {line}\n" for line in body))
    )


_COMPLEX = "`**` gives a complex result"
REFUSED = {
    "complex-int-base": (fn("return x * (-8) ** 0.5"), _COMPLEX),
    "complex-float-base": (fn("return x + (-8.0) ** -0.5"), _COMPLEX),
    "complex-three-halves": (fn("return x * (-2) ** 1.5"), _COMPLEX),
    "complex-of-a-name": (fn("a = -2.0", "a -= 1.0", "return x * a ** 1.5"), _COMPLEX),
    "complex-of-float": (fn("return x * float(-8) ** (1 / 2)"), _COMPLEX),
    "complex-loop-counter": (
        fn("y = x", "for i in range(-5, -1):", "    y = y + i ** 0.5", "return y"),
        _COMPLEX,
    ),
    "bool-times-tensor": (fn("return x * (x > 0)"), "`*` on a comparison's result"),
    "bool-times-int": (fn("return (x > 0) * 5 + x"), "boolean tensor"),
    "bool-plus-float": (fn("m = x > 0", "return m + 0.5"), "`+` on a comparison's result"),
    "bool-into-a-function": (fn("return torch.sin(x > 0)"), "passed to `torch.sin`"),
    "bool-into-a-method": (fn("return (x > 0).sin()"), "passed to `.sin()`"),
    "negated-bool": (fn("return x - (-(x > 0))"), "arithmetic on a comparison"),
    "where-integer-branches": (fn("return torch.where(x > 0, 1, -1) * x"), "integer tensor"),
    "where-bool-branch": (fn("return torch.where(x > 0, x > 1, x)"), "must be values"),
    "where-integer-keywords": (
        fn("return x * torch.where(x > 0, input=1, other=0)"),
        "integer tensor",
    ),
    "floor-division": (fn("return x // 2"), "`//` on tensors is refused"),
    "floor-division-assign": (fn("y = x", "y //= 3", "return y"), "`//` on tensors"),
    "remainder-operator": (fn("return x % 2.0"), "`%` on tensors is refused"),
    "rounding-mode": (fn("return torch.div(x, 2, rounding_mode='floor')"), "rounding_mode"),
    "bitwise-on-floats": (fn("return x & x"), "applies to comparisons only"),
    "power-through-a-local": (fn("n = 10 ** 8", "return x * 10 ** n"), "may exceed 1e18"),
    "squaring-in-a-loop": (
        fn("n = 10 ** 9", "for i in range(8):", "    n = n * n", "return x * n"),
        "integer arithmetic (`*`) may exceed 1e18",
    ),
    "int-min": (fn("return x * (-(2 ** 62) * 2)"), "may exceed 1e18"),
    "int-of-a-float": (fn("n = int(math.pi * 1e30)", "return x * (n + 1)"), "may exceed 1e18"),
    "bound-joined-over-branches": (
        fn(
            "n = 1",
            "for i in range(3):",
            "    if i > 1:",
            "        n = 10 ** 12",
            "return x * (n * n)",
        ),
        "may exceed 1e18",
    ),
    # The bound of 0 * int(float) was 0 * inf, NaN, and NaN > 1e18 is False: nothing after
    # it was refused, and the worker computed 10 ** (10 ** 9) until its deadline.
    "not-a-number-bound": (
        fn("z = 0 * int(math.pi * 1.0)", "n = (z + 10) ** (z + 1000000000)", "return x"),
        "may exceed 1e18",
    ),
    # round(n, -d) of an int computes 10 ** d.
    "round-to-huge-digits": (fn("k = round(1, -1000000000)", "return x"), "may exceed 1e18"),
    "round-digits-by-keyword": (
        fn("k = round(1, ndigits=-1000000000)", "return x"),
        "may exceed 1e18",
    ),
    "round-number-by-keyword": (
        fn("n = round(number=10)", "return x * n ** 1000000000"),
        "may exceed 1e18",
    ),
    # A value that may be an int keeps its bound, whatever it may be besides.
    "int-or-float-from-max": (fn("n = max(10, 0.5)", "return x * n ** 1000000000"), "1e18"),
    "int-or-float-from-abs": (
        fn("n = abs(max(10, 0.5))", "return x * n ** 1000000000"),
        "may exceed 1e18",
    ),
    "int-or-tensor": (fn("n = 10 if 1 > 0 else x", "return x * n ** 1000000000"), "1e18"),
    "int-or-none": (fn("n = None or 10", "return x * n ** 1000000000"), "may exceed 1e18"),
    "int-or-float-over-branches": (
        fn("n = 0.5", "if 1 > 0:", "    n = 10", "return x * n ** 1000000000"),
        "may exceed 1e18",
    ),
    "where-maybe-integer-branches": (
        fn("n = max(1, 0.5)", "return x * torch.where(x > 0, n, 0)"),
        "integer tensor",
    ),
    # The state where a loop is left early, or not entered, is what follows it.
    "state-at-break": (
        fn(
            "k = 1000000000",
            "for i in range(1):",
            "    if i == 0:",
            "        break",
            "    k = 1",
            "return x * 10 ** k",
        ),
        "may exceed 1e18",
    ),
    "state-at-continue": (
        fn(
            "for i in range(1):",
            "    k = 1000000000",
            "    if i == 0:",
            "        continue",
            "    k = 1",
            "return x * 10 ** k",
        ),
        "may exceed 1e18",
    ),
    "arithmetic-on-a-nan-test": (fn("return torch.isnan(x) * x"), "boolean tensor"),
    "loop-that-never-runs": (
        fn("k = 1000000000", "for i in range(0):", "    k = 1", "return x * 10 ** k"),
        "may exceed 1e18",
    ),
    # Signs are tracked, and refusal still follows the size of the int Python computes.
    "tower-of-powers": (fn("return x * 10 ** 10 ** 10"), "literal exponent <= 64"),
    "power-of-a-large-local": (fn("n = 2 ** 30", "return x * 2 ** n"), "may exceed 1e18"),
    "negative-base-even-power": (fn("return x * (-3) ** 38"), "may exceed 1e18"),
    "negated-negative-counter": (
        fn("y = x", "for i in range(-40, 0):", "    y = y + 10 ** -i", "return y"),
        "may exceed 1e18",
    ),
    "exponent-of-either-sign": (
        fn("y = x", "for i in range(-40, 20, 2):", "    y = y * 10 ** i", "return y"),
        "may exceed 1e18",
    ),
    # A negative exponent makes a float, but the base is computed first, as an int.
    "big-base-of-a-negative-power": (fn("return x * (2 ** 70) ** -1"), "exponent <= 64"),
    "base-over-1e18-of-a-negative-power": (
        fn("return x * (2 ** 60) ** -1"),
        "integer arithmetic (`**`) may exceed 1e18",
    ),
    "product-base-of-a-negative-power": (
        fn("return x * (10 ** 18 * 10 ** 18) ** -1"),
        "integer arithmetic (`*`) may exceed 1e18",
    ),
    "big-negative-round-digits": (fn("k = round(1, -19)", "return x"), "may exceed 1e18"),
}

ACCEPTED = {
    "negative-base-whole-float-power": fn("return x * (-8.0) ** 2.0 + (-8) ** 3"),
    "positive-base-fractional-power": fn("return x * 8 ** 0.5 + 2.0 ** -0.5"),
    "abs-of-a-negative-base": fn("return x * abs(-8) ** 0.5 + abs(-2.0) ** 1.5"),
    "unknown-base-fractional-power": fn(
        "a = 2.0", "for i in range(3):", "    a = a - 1.0", "return x * abs(a) ** 0.5"
    ),
    "where": fn("return torch.where(x > 0, x, 0.1 * x)"),
    "where-float-and-int": fn("return torch.where(x > 0, 1.0, -1) * x"),
    "where-tensor-and-int": fn("return torch.where(x > 0, x, 0)"),
    "logical-ops": fn("m = (x > -1) & (x < 1) | ~(x == 0)", "return torch.where(m, -x, +x)"),
    "logical-functions": fn(
        "m = torch.logical_and(x > 0, torch.lt(x, 1))", "return torch.where(m, x, 0.0)"
    ),
    "remainder-function": fn("return torch.remainder(x, 2.0)"),
    # The guards small models write: x is finite, but an inner value may not be.
    "nan-and-inf-guards": fn(
        "y = torch.log1p(x * x) / x",
        "y = torch.where(torch.isnan(y) | y.isinf(), torch.zeros_like(y), y)",
        "return torch.where(torch.isfinite(y), y, 0.0)",
    ),
    "where-method": fn("return x.where(x > 0, 0.1 * x)"),
    "where-keywords": fn("return torch.where(x > 0, x, other=0.0)"),
    "python-int-arithmetic": fn(
        "y = torch.zeros_like(x)",
        "for k in range(1, 8):",
        "    if k % 2 == 1:",
        "        y = y + torch.sin((2 * k + 1) * x) / (k // 2 + 1)",
        "return y",
    ),
    "int-literals-up-to-1e18": fn("return x * 2 ** -3 + (-2) ** 4 - 10 ** 18"),
    "python-floats": fn("c = 10.0 ** 40", "return x * c / c"),
    "python-bools": fn("return torch.where(x > 0, -x, +x) * (not False)"),
    "integer-error-at-runtime": fn("return x * (10 // 0)"),
    "round": fn("return torch.round(x) + round(2.5) + round(7, -1) + round(0.5, 9)"),
    "int-or-float-in-range": fn("n = max(10, 0.5)", "return x * n ** 3 + round(n, -2)"),
    # int ** negative int is a float, computed as float(m) ** -n: small, and at once.
    "negative-literal-exponent": fn("return x * (10 ** -64)"),
    "negative-exponent-first": fn("return 10 ** -64 * x"),
    "very-negative-literal-exponent": fn("return x * 10 ** -300 + 10 ** -1000000000"),
    "negated-local-exponent": fn("n = 64", "return x * 10 ** -n"),
    "negative-counter-exponent": fn(
        "y = x", "for i in range(1, 64):", "    y = y + 10 ** -i", "return y"
    ),
    "exponent-negative-or-small": fn(
        "y = x", "for i in range(-45, 18):", "    y = y + 10 ** i", "return y"
    ),
    "tensor-to-a-negative-power": fn("return x ** -2"),
    "base-under-1e18-of-a-negative-power": fn("return x * (2 ** 59) ** -1"),
    "negative-base-squared": fn("return x * (-3) ** 2 * (-10) ** 18"),
    "round-to-many-digits": fn("return x * round(5, 30)"),
    "break-and-continue": fn(
        "y = x",
        "for i in range(4):",
        "    if i == 1:",
        "        continue",
        "    y = y + i * i",
        "    if i == 2:",
        "        break",
        "return y",
    ),
}


@pytest.mark.parametrize(("source", "reason"), REFUSED.values(), ids=list(REFUSED))
def test_integer_and_boolean_tricks_are_refused(source: str, reason: str) -> None:
    result = validate(source)
    assert isinstance(result, Rejection), result
    assert reason in result.reason
    assert "line 0" not in result.reason


@pytest.mark.parametrize("source", ACCEPTED.values(), ids=list(ACCEPTED))
def test_floating_code_is_accepted(source: str) -> None:
    assert isinstance(validate(source), Candidate)


@pytest.mark.parametrize("name", list(seeds.SEEDS))
def test_every_seed_computes_in_floating_point(name: str) -> None:
    assert isinstance(validate(seeds.seed_source(name)), Candidate)


def test_reasons_name_the_authors_line() -> None:
    source = "import torch\n\n\ndef activation(x):\n    y = x\n\n    return y * (y > 0)\n"
    result = validate(source)
    assert isinstance(result, Rejection) and result.reason.startswith("line 7:")


def test_repeated_continues_keep_every_state_that_differs() -> None:
    # Equal states at `continue` are kept once (joining hundreds of them over 64 iterations
    # took seconds in the main process); states that differ are still joined, so an int
    # that grows between the continues is still bounded.
    many = ["c = x > 0", "n = 2", "for i in range(64):"] + ["    if c:", "        continue"] * 150
    accepted = validate(fn(*many, "return x"))
    assert isinstance(accepted, Candidate), accepted
    growing = [*many[:-2], "    n = n * n", "    if c:", "        continue", "return x * n"]
    refused = validate(fn(*growing))
    assert isinstance(refused, Rejection) and "may exceed 1e18" in refused.reason


@pytest.mark.parametrize(
    ("base", "exponent", "expected"),
    [
        ((10.0, 10.0), (-64.0, -64.0), None),  # a float: no int at all
        ((-3.0, -3.0), (2.0, 2.0), (0.0, 9.0)),
        ((-3.0, 2.0), (0.0, 3.0), (-27.0, 27.0)),
        ((2.0, 10.0), (-5.0, 3.0), (-1.0, 1000.0)),  # int() of 2 ** -5 and the like: 0
        ((-1.0, 1.0), (0.0, 10**9), (-1.0, 1.0)),
        ((2.0, 2.0), (0.0, 61.0), (-math.inf, math.inf)),  # over 1e18: the caller refuses
    ],
)
def test_int_powers_keep_their_sign(
    base: Interval, exponent: Interval, expected: Interval | None
) -> None:
    assert int_op(ast.Pow(), base, exponent) == expected


def test_unknown_interval_arithmetic_is_unbounded() -> None:
    # 0 * inf and inf - inf are NaN, which compares False against any limit.
    unbounded = (-math.inf, math.inf)
    assert int_op(ast.Mult(), (0.0, 0.0), unbounded) == unbounded
    assert int_op(ast.Sub(), (0.0, math.inf), (0.0, math.inf)) == unbounded
