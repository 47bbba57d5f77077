"""Tests for `rescore HASH...`: the candidates' fitness on the labs they came from is shown
and compared only where it is one measure (one lab), driven through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import ASSETS, TINY_TASKS

runner = CliRunner()
OTHER = ASSETS / "other_tasks.toml"


def _new(base: Path, run_id: str, lab: Path, seed: str) -> list[str]:
    """Runs a tiny search on `lab`; returns its new candidates' code hashes."""
    common = ["--tasks", str(lab), "--cache-dir", str(base / "cache")]
    common += ["--runs-dir", str(base / "runs"), "--run-id", run_id, "--seed", seed]
    result = runner.invoke(app, ["evolve", *common, "--budget", "2"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads((base / "runs" / run_id / "ranking.json").read_text())
    return [c["code_hash"] for c in doc["candidates"] if not c["baseline"] and c["fitness"]]


def _rescore(base: Path, hashes: list[str], out: str) -> tuple[dict[str, Any], str]:
    args = ["rescore", *hashes, "--tasks", str(TINY_TASKS), "--runs-dir", str(base / "runs")]
    args += ["--cache-dir", str(base / "cache"), "--out", str(base / out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return json.loads((base / out / "ranking.json").read_text()), result.stderr


def test_fitness_from_runs_on_different_labs_is_neither_shown_nor_compared(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mine, other = _new(tmp_path, "a", TINY_TASKS, "4"), _new(tmp_path, "b", OTHER, "5")
    theirs = [h for h in other if h not in mine]  # each found in its own run only
    assert mine and theirs
    # One lab: its fitness is shown beside the new one, and the lab's tasks are named shared.
    doc, _ = _rescore(tmp_path, mine[:1], "one")
    (row,) = [c for c in doc["candidates"] if c["code_hash"] == mine[0]]
    assert row["original_fitness"] is not None and doc["run"]["from_lab"]["path"]
    # Two labs: a "was" column of fitness on one lab beside fitness on another measured nothing.
    doc, _ = _rescore(tmp_path, [mine[0], theirs[0]], "two")
    picked = [c for c in doc["candidates"] if c["code_hash"] in (mine[0], theirs[0])]
    assert len(picked) == 2 and all(c["original_fitness"] is None for c in picked)
    assert "from_lab" not in doc["run"]  # no one lab to name
    assert "come from runs on 2 different labs" in caplog.text
