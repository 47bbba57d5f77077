"""A function or method that is not allowed is named with the allowed one it looks like,
so that a follow-up tells the model what to write; nothing is suggested when nothing is
close."""

from __future__ import annotations

import pytest

from minact.candidate import Candidate, Rejection
from minact.validate import validate


def _reason(expr: str) -> str:
    result = validate(
        "import torch\nimport torch.nn.functional as F\ndef activation(x):\n    return "
        + expr
        + "\n"
    )
    assert isinstance(result, Rejection), result
    return result.reason


@pytest.mark.parametrize(
    ("expr", "hint", "meant"),
    [
        ("F.sine(x)", "`torch.sin`", "torch.sin(x)"),  # F has no sin: torch's
        ("torch.sigmod(x)", "`torch.sigmoid`", "torch.sigmoid(x)"),
        ("torch.special.erff(x)", "`torch.special.erf`", "torch.special.erf(x)"),
        ("F.gelus(x)", "`F.gelu`", "F.gelu(x)"),
        ("torch.is_nan(x)", "`torch.isnan`", "torch.where(torch.isnan(x), 0.0, x)"),
        ("torch.softplus(x)", "`F.softplus`", "F.softplus(x)"),  # another module's name
        ("torch.nn.functional.mishh(x)", "`F.mish`", "F.mish(x)"),
        ("x.tanhh()", "`.tanh()`", "x.tanh()"),
    ],
)
def test_a_misspelt_name_is_named_with_the_allowed_one(expr: str, hint: str, meant: str) -> None:
    assert _reason(expr).endswith(f"(did you mean {hint}?)")
    source = (
        f"import torch\nimport torch.nn.functional as F\ndef activation(x):\n    return {meant}\n"
    )
    assert isinstance(validate(source), Candidate)


@pytest.mark.parametrize("expr", ["torch.unique(x)", "x.item()", "torch.frobnicate(x)"])
def test_nothing_is_suggested_when_nothing_is_close(expr: str) -> None:
    assert "did you mean" not in _reason(expr)


def test_an_import_of_a_misspelt_name_is_named_too() -> None:
    result = validate("from torch.nn.functional import gelus\ndef activation(x):\n"
                      "    return gelus(x)\n")  # fmt: skip
    assert isinstance(result, Rejection)
    assert result.reason.endswith("(did you mean `F.gelu`?)")
