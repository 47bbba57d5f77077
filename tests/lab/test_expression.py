"""Tests for minact.expression: the whitelist, the limits and evaluation against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minact.lab.expression import FUNCTIONS, Expression, ExpressionError, parse_expression


def _balanced(leaves: int) -> str:
    """Returns a sum of `leaves` x's as a balanced tree: many nodes, little depth."""
    if leaves == 1:
        return "x"
    return f"({_balanced(leaves // 2)}+{_balanced(leaves - leaves // 2)})"


X = np.linspace(-3.0, 3.0, 101)
Y = np.linspace(0.5, 2.5, 101)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sin(3*x)", np.sin(3 * X)),
        ("x**3 - x", X**3 - X),
        ("-x + +y", -X + Y),
        ("x / y", X / Y),
        ("exp(-x**2/2)/sqrt(2*pi)", np.exp(-(X**2) / 2) / np.sqrt(2 * np.pi)),
        ("arctan2(x, y) + hypot(x, y)", np.arctan2(X, Y) + np.hypot(X, Y)),
        ("maximum(x, 0) - minimum(x, y)", np.maximum(X, 0) - np.minimum(X, Y)),
        ("sinc(x) * e", np.sinc(X) * np.e),
        ("abs(x) + sign(x) + floor(x)", np.abs(X) + np.sign(X) + np.floor(X)),
        ("ceil(x)", np.ceil(X)),
        ("square(x) + log(y) + log1p(y) + expm1(x)", X**2 + np.log(Y) + np.log1p(Y) + np.expm1(X)),
        ("tanh(x) + sinh(x) + cosh(x) + tan(x)", np.tanh(X) + np.sinh(X) + np.cosh(X) + np.tan(X)),
        ("arcsin(x/4) + arccos(x/4)", np.arcsin(X / 4) + np.arccos(X / 4)),
        ("arctan(x)", np.arctan(X)),
        ("2**3", np.full_like(X, 8.0)),
    ],
)
def test_evaluation_matches_numpy(text: str, expected: np.ndarray) -> None:
    expr = parse_expression(text)
    out = expr.evaluate({"x": X, "y": Y})
    assert out.dtype == np.float64
    assert out.shape == X.shape or not expr.variables
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_every_whitelisted_function_parses_with_its_arity() -> None:
    for name, (function, arity) in FUNCTIONS.items():
        args = ", ".join(["x", "y"][:arity])
        expr = parse_expression(f"{name}({args})")
        values = [X, Y][:arity]
        with np.errstate(all="ignore"):
            expected = function(*values)
        np.testing.assert_allclose(expr.evaluate({"x": X, "y": Y}), expected, equal_nan=True)


def test_source_is_normalised_and_variables_sorted() -> None:
    expr = parse_expression("  theta*(  x2 + x1 )  ")
    assert expr.source == "theta * (x2 + x1)"
    assert expr.variables == ("theta", "x1", "x2")
    assert parse_expression(expr.source) == expr
    assert parse_expression("pi * e * x").variables == ("x",)


def test_evaluation_does_not_raise_on_domain_errors() -> None:
    out = parse_expression("log(x) * 2").evaluate({"x": np.array([-1.0, 0.0, 1.0])})
    assert np.isnan(out[0]) and np.isneginf(out[1]) and out[2] == 0.0
    assert np.isposinf(parse_expression("1/x").evaluate({"x": np.zeros(1)})[0])
    assert np.isposinf(parse_expression("exp(x)").evaluate({"x": np.full(1, 1e4)})[0])


def test_missing_variable_raises() -> None:
    with pytest.raises(ExpressionError, match="x2"):
        parse_expression("x1 * x2").evaluate({"x1": X})


def test_expression_is_frozen_and_hashable() -> None:
    expr = parse_expression("x + 1")
    assert hash(expr) == hash(parse_expression("x+1"))
    with pytest.raises(AttributeError):
        expr.source = "y"  # type: ignore[misc]
    assert isinstance(expr, Expression)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("__import__('os')", "not allowed"),
        ("__import__('os').system('ls')", "attribute"),
        ("np.sin(x)", "attribute"),
        ("x.__class__", "attribute"),
        ("x[0]", "subscript"),
        ("(lambda: 1)()", "bare name"),
        ("lambda x: x", "lambda"),
        ("maximum(x, y=2)", "keyword"),
        ("sin(*x)", "starred"),
        ("'abc'", "constant"),
        ("b'abc'", "constant"),
        ("x if x else 1", "conditional"),
        ("x < 1", "comparison"),
        ("x and y", "boolean"),
        ("x % 2", "operator"),
        ("x // 2", "operator"),
        ("~x", "unary"),
        ("1j * x", "constant"),
        ("nan * x", "'nan' is not allowed"),
        ("x + inf", "'inf' is not allowed"),
        ("NAN + x", "'NAN' is not allowed"),
        ("1e999 * x", "not finite"),
        ("True + x", "constant"),
        ("None", "constant"),
        ("1e999 * x", "finite"),
        ("open('f')", "not allowed"),
        ("eval('1')", "not allowed"),
        ("sin", "must be called"),
        ("sin(x, x)", "argument"),
        ("arctan2(x)", "argument"),
        ("pi(x)", "not allowed"),
        ("_x + 1", "variable name"),
        ("[x]", "List"),
        ("(x := 1)", "assignment"),
        ("", "empty"),
        ("x +", "syntax"),
        ("x\0", "invalid"),
        (
            "\uff58 + x",
            "character '\uff58' \\(U\\+FF58, column 1\\) is not allowed: an expression is ASCII",
        ),
        ("x * \u210c", "U\\+210C, column 5"),
        ("x" * 2001, "limit"),
        ("(" * 300 + "x" + ")" * 300, "nested"),
        ("-" * 1000 + "x", "nested"),
        ("+".join(["x"] * 400), "nested"),
        (_balanced(256), "nodes"),
        ("sin(" * 100 + "x" + ")" * 100, "nested"),
    ],
)
def test_rejections(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=f"(?i){reason}"):
        parse_expression(text)


def test_huge_input_is_rejected_before_parsing() -> None:
    with pytest.raises(ExpressionError, match="limit"):
        parse_expression("x+" * 1_000_000 + "x")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_expression_error(text: str) -> None:
    try:
        parse_expression(text)
    except ExpressionError:
        pass


# Text built from the language's own tokens reaches far deeper than random unicode.
_TOKENS = st.sampled_from(
    [*FUNCTIONS, "x", "y", "pi", "e", "1", "2.5", "1e308", "(", ")", ",", "+", "-", "*", "/", "**"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=40))
def test_token_soup_parses_or_raises_expression_error(tokens: list[str]) -> None:
    try:
        expr = parse_expression(" ".join(tokens))
    except ExpressionError:
        return
    out = expr.evaluate({"x": X, "y": Y})
    assert out.dtype == np.float64
