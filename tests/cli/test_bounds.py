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
