"""Tests for minact.prompt: prompts within budget, and replies back to candidate source."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minact.candidate import Hash
from minact.lab.task import Lab
from minact.score import Score, TaskScore
from minact.search.population import Failure, Member
from minact.search.prompt import build_messages
from minact.search.reply import ParseFailure, parse_reply

PARENT = "def activation(x):\n    y = F.gelu(x)\n    return y + 0.1 * torch.sin(x)"


def _member(source: str = PARENT, fitness: float = -0.2, name: str = "p") -> Member:
    tasks = {"sine": TaskScore(1.0, 0.1, 0.0, -0.4), "product": TaskScore(2.0, 0.2, 0.0, 0.0)}
    score = Score(name, Hash(name * 8), source, "ok", "", Hash(name * 9), fitness, 0.01, 1.5, tasks)
    return Member(score, 0, 0, "llm")


def test_messages_hold_lab_contract_parent_and_failures(tiny_lab: Lab) -> None:
    failures = [Failure("def activation(x):\n    return x.mean()", "invalid", "method `.mean()`")]
    messages = build_messages(
        tiny_lab, _member(), [_member("def activation(x):\n    return x", -0.5, "t")], [], failures
    )
    system, user = messages[0]["content"], messages[1]["content"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "sin(3 * x)" in system and "x1 * x2" in system
    assert "OUT OF DISTRIBUTION" in system and "LOWER is better" in system
    assert "16x GELU" in system
    assert PARENT in user and "sine -0.40" in user and "TOP #1" in user
    assert "RECENT FAILURE (invalid): method `.mean()`" in user


def test_the_prompt_says_what_the_labs_fitness_is(tiny_lab: Lab) -> None:
    # Under "mean_ood_mse" the model was told fitness was a log-ratio with ReLU at 0, and
    # shown mean OOD MSEs (all positive) as if every candidate lost to ReLU.
    system, _ = (m["content"] for m in build_messages(tiny_lab, _member(), [], [], []))
    assert "log(OOD error / ReLU's OOD error)" in system and "0 equals ReLU" in system
    mse = replace(tiny_lab, fitness="mean_ood_mse")
    system, user = (m["content"] for m in build_messages(mse, _member(fitness=1.5), [], [], []))
    assert "0 equals" not in system and "OOD mean squared error" in system
    assert "fitness +1.500 (a mean OOD MSE; against ReLU, per task log-ratio: " in user


def test_messages_respect_the_character_budget(tiny_lab: Lab) -> None:
    big = [
        _member("def activation(x):\n    return x" + " + x" * 400, -0.1, f"t{i}") for i in range(6)
    ]
    small = build_messages(tiny_lab, _member(), big, big, [], max_chars=3500)
    total = sum(len(m["content"]) for m in small)
    assert total <= 3500 and PARENT in small[1]["content"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("```python\ndef activation(x):\n    return x\n```", "def activation(x):\n    return x\n"),
        (
            "Sure!\n```py\nimport torch\ndef activation(x):\n    return torch.sin(x)\n```\nDone.",
            "import torch\ndef activation(x):\n    return torch.sin(x)\n",
        ),
        # The parent quoted first, the answer last.
        (
            "Old:\n```python\ndef activation(x):\n    return x\n```\nNew:\n```python\n"
            "def activation(x):\n    return 2 * x\n```",
            "def activation(x):\n    return 2 * x\n",
        ),
        # A reply cut off by the token cap: the open block still counts.
        (
            "```python\ndef activation(x):\n    return x * 3\n",
            "def activation(x):\n    return x * 3\n",
        ),
        # One function under another name is taken as the activation.
        (
            "```python\nimport torch\ndef gelu_sine(x):\n    return torch.sin(x)\n```",
            "import torch\ndef activation(x):\n    return torch.sin(x)\n",
        ),
        # No fences at all.
        (
            "import torch\ndef activation(x):\n    return torch.tanh(x)\nThis is smooth.",
            "import torch\ndef activation(x):\n    return torch.tanh(x)\n",
        ),
    ],
)
def test_code_blocks_are_found(reply: str, expected: str) -> None:
    assert parse_reply(reply, PARENT) == expected


def test_search_replace_diffs_apply_to_the_parent() -> None:
    diff = (
        "<<<<<<< SEARCH\n    return y + 0.1 * torch.sin(x)\n=======\n"
        "    return y + 0.2 * torch.cos(x)\n>>>>>>> REPLACE"
    )
    assert parse_reply(diff, PARENT) == PARENT.replace("0.1 * torch.sin", "0.2 * torch.cos")
    # Indentation and trailing spaces in the SEARCH text are forgiven.
    loose = "<<<<<<< SEARCH\ny = F.gelu(x)   \n=======\ny = F.silu(x)\n>>>>>>> REPLACE"
    assert parse_reply(loose, PARENT) == PARENT.replace("F.gelu", "F.silu")
    missing = "<<<<<<< SEARCH\n    return x\n=======\n    return 2 * x\n>>>>>>> REPLACE"
    result = parse_reply(missing, PARENT)
    assert isinstance(result, ParseFailure) and "not in the parent" in result.reason


def test_a_loose_search_keeps_the_indentation_of_the_lines_it_matches() -> None:
    """A blank line above the matched lines is neither replaced nor where the indentation
    is taken from (the replacement once landed at column 0, outside the function)."""
    parent = "import torch\n\ndef activation(x):\n    y = torch.tanh(x)\n\n    return y\n"
    diff = "<<<<<<< SEARCH\nreturn y \n=======\nreturn 2 * y\n>>>>>>> REPLACE"
    assert parse_reply(diff, parent) == parent.replace("return y", "return 2 * y").rstrip("\n")


def test_a_loose_search_in_a_long_child_is_one_search() -> None:
    """A first block that makes the child 40,000 lines long, then blocks matched loosely at
    its end: each is found by one search, where a window compared at every line took
    quadratic time (16 s of the main process for one block)."""
    parent = "def activation(x):\n    y = x\n    return y\n"
    grow = "<<<<<<< SEARCH\n    return y\n=======\n" + "    y = y + 1\n" * 40_000
    grow += "    return y\n>>>>>>> REPLACE\n"
    loose = "<<<<<<< SEARCH\n  y = y + 1\n return y\n=======\nreturn y\n>>>>>>> REPLACE\n"
    result = parse_reply(grow + loose * 3, parent)
    assert isinstance(result, str)
    lines = result.splitlines()
    assert lines[-1] == "    return y" and lines.count("    y = y + 1") == 40_000 - 3
    missing = "<<<<<<< SEARCH\n  y = y + 2\n=======\nq\n>>>>>>> REPLACE\n"
    result = parse_reply(grow + missing, parent)
    assert isinstance(result, ParseFailure) and "diff block 2" in result.reason


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("   \n", "empty reply"),
        ("I would use GELU with a sine.", "no ```python block"),
        ("```python\nprint('hello')\n```", "no ```python block"),
        ("```python\ndef f(x):\n    return x\ndef g(x):\n    return f(x)\n```", "no ```python"),
        ("def activation(x) return x", "not valid Python"),
        ("Écrivez une fonction d'activation: 这是一个回复", "no ```python block"),
    ],
)
def test_replies_without_code_are_parse_failures(reply: str, reason: str) -> None:
    result = parse_reply(reply, PARENT)
    assert isinstance(result, ParseFailure) and reason in result.reason


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_reply_never_raises(text: str) -> None:
    assert isinstance(parse_reply(text, PARENT), (str, ParseFailure))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "```",
                "```python\n",
                "def activation(x):",
                "\n",
                "    return x",
                "<<<<<<< SEARCH\n",
                "=======\n",
                ">>>>>>> REPLACE",
                "y = F.gelu(x)",
                "import torch\n",
                "x",
                " ",
            ]
        ),
        max_size=30,
    )
)
def test_parse_reply_never_raises_on_fragments(parts: list[str]) -> None:
    assert isinstance(parse_reply("".join(parts), PARENT), (str, ParseFailure))


def test_a_long_reply_is_read_with_bounded_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reply at the size cap (100,000 characters) of markers or lines that never parse is
    read once: few parses, not one per line or per marker."""
    import ast

    parses: list[int] = []
    real = ast.parse

    def counted(source: str, *args: Any, **kwargs: Any) -> ast.Module:
        parses.append(len(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counted)
    unfenced = "def activation(x):\n    return (x\n" + "a\n" * 50_000
    result = parse_reply(unfenced, PARENT)
    assert isinstance(result, ParseFailure) and "not valid Python" in result.reason
    assert len(parses) <= 64 and max(parses) <= 16_100  # 16,000 characters from the def
    # Prose after code that leaves a bracket open on every line: the def and its body.
    parses.clear()
    prose = (
        "import torch\ndef activation(x):\n    return torch.tanh(x)\n" + "It is (smooth.\n" * 5000
    )
    assert (
        parse_reply(prose, PARENT) == "import torch\ndef activation(x):\n    return torch.tanh(x)\n"
    )
    assert len(parses) <= 18
    # Prose after top-level code the function reads: cut at the prose's first line.
    parses.clear()
    tail = "import torch\ndef activation(x):\n    return A * x\n\nA = 0.1\n"
    assert parse_reply(tail + "That is all.\n" * 5000, PARENT) == tail
    assert len(parses) <= 3
    # Thousands of markers before a block: a divider line outside a block is text; an
    # opening marker opens a block whose SEARCH text then holds the rest up to the divider.
    block = "<<<<<<< SEARCH\n    return y + 0.1 * torch.sin(x)\n=======\n"
    block += "    return y + 0.2 * torch.cos(x)\n>>>>>>> REPLACE"
    after = parse_reply("=" * 99_000 + "\n" + block, PARENT)
    assert after == PARENT.replace("0.1 * torch.sin", "0.2 * torch.cos")
    for noise in ("<<<<<<< SEARCH" * 7000 + "\n", "<<<<<<< SEARCH\n" * 7000):
        result = parse_reply(noise + block, PARENT)
        assert isinstance(result, ParseFailure) and "not in the parent" in result.reason
