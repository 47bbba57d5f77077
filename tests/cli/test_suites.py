"""Tests for the built-in labs by name (`minact suites`, `--tasks NAME`) and the ranking
stability that `minact score` prints."""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.errors import ConfigError
from minact.jobs.score import agreement
from minact.jobs.suites import list_suites
from minact.lab.loader import load_lab
from minact.lab.suites import SUITES, suite_path
from tests.conftest import TINY_TASKS

runner = CliRunner()


def test_suites_lists_every_builtin_lab_with_its_size() -> None:
    result = runner.invoke(app, ["suites"])
    assert result.exit_code == 0, result.stderr
    for name in SUITES:
        assert name in result.stdout
    rows = {row.name: row for row in list_suites()}
    assert rows["algorithmic"].kinds == ("graph",) and rows["algorithmic"].tasks == 6
    assert rows["classic"].tasks == 10 and rows["classic"].networks == 30
    assert rows["transfer"].families == ("sets", "classification", "regression")


def test_a_builtin_name_works_wherever_a_tasks_file_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "algorithmic").mkdir()  # a folder is no tasks file: the name still works
    assert load_lab(Path("classic")).path == suite_path("classic")
    assert load_lab(Path("algorithmic")).tasks[0].kind == "graph"
    (tmp_path / "classic").write_text(TINY_TASKS.read_text())  # a local file wins
    assert [t.name for t in load_lab(Path("classic")).tasks] == ["sine", "product"]
    with pytest.raises(ConfigError, match="no such tasks file; pass an existing one or a built-in"):
        load_lab(Path("nope"))


def test_rescore_names_the_suites_it_knows(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["rescore", "--suite", "nope", "--runs-dir", str(tmp_path), "--cache-dir", str(tmp_path)],
    )
    assert result.exit_code == 1
    assert (
        "the built-in suites are: default, classic, large, transfer, algorithmic, real"
        in result.stderr
    )


def test_score_on_a_small_lab_says_stability_cannot_be_measured(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["score", "gelu", "--tasks", str(TINY_TASKS), "--cache-dir", str(tmp_path / "c")]
    )
    assert result.exit_code == 0, result.stderr
    assert "ranking stability: not enough to measure how stable this ranking is" in result.stdout
    assert "(2 candidates and 2 tasks; needs at least 5 candidates and 6 tasks)" in result.stdout


def _doc(per_task: dict[str, list[float]], families: dict[str, str]) -> Any:
    """A ranking document with the given log-ratios per candidate (one list entry per task)."""
    tasks = list(families)
    return {
        "lab": {"fitness": "mean_log_ratio"},
        "tasks": [{"name": t, "family": f} for t, f in families.items()],
        "candidates": [
            {
                "name": name,
                "status": "ok",
                "tasks": {
                    t: {"log_ratio": v, "ood_loss": math.exp(v)}
                    for t, v in zip(tasks, values, strict=True)
                },
            }
            for name, values in per_task.items()
        ]
        + [{"name": "broken", "status": "nonfinite", "tasks": {}}],
    }


def test_agreement_of_a_ranking_document() -> None:
    families = {f"t{i}": ("a" if i < 3 else "b") for i in range(6)}
    # family a ranks c0 < c1 < ... < c5; family b the reverse
    per_task = {f"c{k}": [float(k)] * 3 + [float(-k)] * 3 for k in range(6)}
    out = agreement(_doc(per_task, families))
    assert (out.candidates, out.tasks) == (6, 6)
    assert out.families == {"a": -1.0, "b": -1.0}
    assert "the a, b tasks rank them against the rest" in out.verdict


def test_a_tasks_path_that_cannot_be_searched_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a user without the right to search a folder on the way sees it (tests may run as root).
    locked = tmp_path / "locked" / "tasks.toml"

    def refuse(self: Path, *args: object, **kwargs: object) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "stat", refuse)
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ConfigError, match="cannot read the tasks file: Permission denied"):
        load_lab(locked)
