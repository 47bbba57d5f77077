"""How minact writes numbers: never "-0.000", a dash for what is not a number, and no format
option that the oldest supported Python (3.10) lacks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import minact
from minact.numbers import number_text


@pytest.mark.parametrize(
    ("value", "spec", "text"),
    [
        (-0.0004, "+.3f", "+0.000"),
        (-0.0004, ".3f", "0.000"),
        (-0.0, ".4g", "0"),
        (-0.0004, ".1%", "0.0%"),
        (-0.3, "+.3f", "-0.300"),
        (-4e-05, ".4g", "-4e-05"),
        (-1e-10, "+.3e", "-1.000e-10"),
        (float("nan"), ".3f", "—"),
        (float("-inf"), "+.3f", "—"),
        (None, ".3f", "—"),
    ],
)
def test_a_number_is_written_without_a_sign_no_digit_backs(
    value: float | None, spec: str, text: str
) -> None:
    assert number_text(value, spec) == text


def test_no_format_spec_uses_the_z_option_that_python_3_10_lacks() -> None:
    # format(-0.0, "z.3f") raises ValueError on 3.10, which pyproject's requires-python admits.
    found = [
        f"{path.name}: {m.group(0)}"
        for path in Path(minact.__file__).parent.rglob("*.py")
        for m in re.finditer(r"\{[^{}\n]*:[+\- ]?z[0-9.]", path.read_text(encoding="utf-8"))
    ]
    assert not found, found
