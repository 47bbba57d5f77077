"""Flags with a range: a value outside it is a usage error naming the flag, before any work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.cli._shared import MAX_SEEDS
from minact.lab.checks import INT_RULES
from tests.conftest import TINY_TASKS

runner = CliRunner()
DEAD = ["--model", "m", "--llm-url", "http://127.0.0.1:9/v1"]


def test_seed_counts_are_bounded_like_a_lab_files() -> None:
    assert INT_RULES["seeds"][1] == MAX_SEEDS


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["evolve", "--offline", "--seed", "9" * 300], "--seed"),
        (["evolve", "--offline", "--seed", "-1"], "--seed"),
        (["evolve", "--offline", "--confirm", "1", "--confirm-seeds", "100000"], "--confirm-seeds"),
        (["rescore", "--tasks", str(TINY_TASKS), "--seeds", "1000000"], "--seeds"),
    ],
    ids=["huge-seed", "negative-seed", "confirm-seeds", "rescore-seeds"],
)
def test_an_out_of_range_value_names_its_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    where = ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*args, *where])
    assert result.exit_code == 2, result.output
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # the box wraps lines
    assert f"Invalid value for '{flag}'" in flat
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        # A dead server: without the refusal the run would end at once on it, not train.
        (["evolve", "--tasks", "large", "--confirm", "1", *DEAD], "--confirm-seeds"),
        (["rescore", "--suite", "large"], "--seeds"),
    ],
    ids=["confirm-seeds", "rescore-seeds"],
)
def test_seeds_that_take_a_lab_past_its_work_limit_are_refused_up_front(
    tmp_path: Path, args: list[str], flag: str
) -> None:
    # 100 networks per task is within the flag's range, but the large lab's work
    # with them is past the loader's cap: refused before anything trains, as the file would be.
    where = ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*args, flag, "100", *where])
    assert result.exit_code == 1, result.output
    flat = " ".join(result.stderr.split())
    assert f"{flag} 100:" in flat and "above the limit of 1e+12" in flat
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["evolve", "--offline", "--runs-dir", ""], "--runs-dir"),
        (["evolve", "--offline", "--cache-dir", " "], "--cache-dir"),
        (["evolve", "--offline", "--tasks", ""], "--tasks"),
        (["evolve", "--offline", "--resume", ""], "--resume"),
        (["show", "abcd", "--runs-dir", ""], "--runs-dir"),
        (["report", ""], "RUN_DIR"),
        (["rescore", "--tasks", "a\0b"], "--tasks"),
    ],
    ids=["runs-dir", "cache-dir", "tasks", "resume", "show", "report", "nul"],
)
def test_an_empty_path_is_a_usage_error_not_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], flag: str
) -> None:
    # Path("") is "."; a run or a cache written among the user's own files is not what an
    # empty value (an unset shell variable, say) meant.
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())
    assert f"Invalid value for '{flag}'" in flat
    assert list(tmp_path.iterdir()) == []
