"""Hostile tasks files the other tests do not hold: values nested thousands deep and values
a megabyte long. Each is a one-line ConfigError naming the file (and the task and key where
there is one), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from minact.lab.checks import MAX_NESTING, nesting, shown
from tests.lab import load_error

TASK = '[[task]]\nname = "sine"\nfamily = "harmonic"\ntarget = "sin(3*x)"\n'


@pytest.mark.parametrize(
    "text",
    [
        # Dotted headers nest without recursion in the parser; the repr of the value in the
        # "unknown key" message raised RecursionError, a traceback from the CLI.
        "[" + ".".join(["a"] * 5000) + "]\n" + TASK,
        TASK + "[task." + ".".join(["a"] * 5000) + "]\n",
        "[lab.train." + ".".join(["a"] * 5000) + "]\n" + TASK,
        "[lab]\ntrain = " + "[" * 100 + "]" * 100 + "\n" + TASK,
    ],
    ids=["top-level", "in-a-task", "in-a-known-key", "arrays"],
)
def test_values_nested_too_deep_are_refused_in_one_line(tmp_path: Path, text: str) -> None:
    message = load_error(tmp_path, text)
    assert message.endswith(f"tables and arrays nest more than {MAX_NESTING} deep")


def test_a_long_value_is_shortened_in_the_message(tmp_path: Path) -> None:
    long_sum = "+".join(["x"] * 20000)
    message = load_error(tmp_path, TASK.replace("sin(3*x)", long_sum))
    assert "[[task]] 'sine' (#1): key 'target' 'x+x+x" in message
    assert "...+x+x" in message and "the limit is 2000" in message and len(message) < 500
    message = load_error(tmp_path, TASK + "bogus = [" + "1, " * 100000 + "1]\n")
    assert "unknown key 'bogus' = [1, 1, 1, 1, 1, 1, 1, 1, ...]" in message
    assert len(message) < 1000


def test_nesting_counts_tables_and_arrays_and_stops_past_the_limit() -> None:
    assert nesting(1.0) == 0
    assert nesting({"task": [{"train": [[-1.0, 1.0]]}]}) == 5
    deep: object = 0
    for _ in range(10000):
        deep = [deep]
    assert nesting(deep) == MAX_NESTING + 1


def test_shown_is_repr_for_short_values() -> None:
    for value in ("sin(x)", 3, 1.5, [-1.0, 1.0], [[0, 1], [0, 2]], True):
        assert shown(value) == repr(value)
