"""Hostile tasks files the other tests do not hold: values nested thousands deep and values
a megabyte long. Each is a one-line ConfigError naming the file (and the task and key where
there is one), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from minact.lab import loader
from minact.lab.checks import MAX_NESTING, deep_key, nesting, shown
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


LONG = "a" * 100_000
GRAPH = '[[task]]\nname = "g"\nfamily = "f"\nkind = "graph"\nalgorithm = "bfs"\nnodes = 8\n'


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (f'lab = "{LONG}"\n' + TASK, "key 'lab' must be a table ([lab]), got 'aaaa"),
        (f'task = "{LONG}"\n', "needs at least one [[task]] or [[family]] table, got task = 'aa"),
        (f'task = ["{LONG}"]\n', "[[task]] #1: must be a table ([[task]]), got 'aaa"),
        (f'family = ["{LONG}"]\n', "[[family]] #1: must be a table ([[family]]), got 'aa"),
        (f'[lab]\ncascade = "{LONG}"\n' + TASK, "key 'cascade' must be a table ([lab.cascade]"),
        (TASK + f'vars = ["{LONG}"]\n', "key 'vars' must list each of the target's variables"),
        (GRAPH + f'test_nodes = 32\ntarget = "{LONG}"\n', "key 'target' = 'aaaa"),
    ],
    ids=["lab", "task-list", "task-table", "family-table", "cascade", "vars", "misplaced"],
)
def test_a_long_value_of_the_wrong_type_is_shortened_in_the_message(
    tmp_path: Path, text: str, said: str
) -> None:
    # These messages quoted the whole value: a tasks file of 1 MB gave a message of 1 MB.
    message = load_error(tmp_path, text)
    assert said in message and "..." in message and len(message) < 1000, message[:2000]


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


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[lab]\nstep = 25\n" + TASK, "[lab]: unknown key 'step' = 25; known: width, "),
        (TASK + "trian = [-1.0, 1.0]\n", "(#1): unknown key 'trian' = [-1.0, 1.0]; known: name, "),
        (TASK.replace("[[task]]", "[[tasks]]"), "unknown key 'tasks' = [{"),
    ],
    ids=["lab", "task", "table"],
)
def test_a_misspelt_key_is_refused_with_the_key_it_is_closest_to(
    tmp_path: Path, text: str, said: str
) -> None:
    message = load_error(tmp_path, text)
    meant = {"step": "steps", "trian": "train", "tasks": "task"}[said.split("'")[1]]
    assert said in message and message.endswith(f"; did you mean {meant!r}?"), message


def test_a_key_like_none_is_refused_without_a_guess_and_lists_each_key_once(
    tmp_path: Path,
) -> None:
    message = load_error(tmp_path, TASK + "colour = 1\n")
    assert "did you mean" not in message
    known = message.split("; known: ")[1].split(", ")
    assert "train" in known and len(known) == len(set(known)), known


@pytest.mark.parametrize(
    "key",
    [".".join(["a"] * 17), '"a".' * 16 + "'b'", "a . " * 16 + "b", "x = { " + "a." * 16 + "b"],
    ids=["bare", "quoted", "spaced", "inline"],
)
def test_a_dotted_key_past_the_nesting_limit_is_refused_before_tomllib_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    # tomllib takes time and memory quadratic in a dotted key's parts (9 s for a key of
    # 32 KB; a 1 MB file never ends), and any key of more parts than tables may nest is
    # refused after the parse anyway.
    def unread(text: str) -> object:
        raise AssertionError("tomllib read the file")

    monkeypatch.setattr(loader.tomllib, "loads", unread)
    message = load_error(tmp_path, TASK + key + " = 1" + (" }" if "{" in key else "") + "\n")
    assert message.endswith(
        f"line 5: a dotted key of more than {MAX_NESTING} parts: "
        f"tables and arrays nest more than {MAX_NESTING} deep"
    )


def test_keys_within_the_nesting_limit_and_dotted_strings_are_left_to_tomllib() -> None:
    assert deep_key(".".join(["a"] * MAX_NESTING) + " = 1\n") is None
    assert deep_key('target = "' + "a." * 40 + 'a"\nx = [' + "1.5, " * 40 + "1]\n") is None
    assert deep_key("x = 1\n\n" + "a." * MAX_NESTING + "a = 1\n") == 3
