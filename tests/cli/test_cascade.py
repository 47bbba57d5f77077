"""`minact evolve` on a lab with an evaluation cascade, driven as a user drives it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import ASSETS

runner = CliRunner()
LAB = ASSETS / "cascade_tasks.toml"
CACHE: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One cache for the module: the seeds train once."""
    CACHE.append(tmp_path_factory.mktemp("cascade-cli-cache"))
    yield
    CACHE.pop()


def _invoke(*args: str) -> Any:
    return runner.invoke(app, [*args, "--tasks", str(LAB), "--cache-dir", str(CACHE[-1])])


def _evolve(runs: Path, run_id: str, *args: str) -> Any:
    common = ["--offline", "--seed", "5", "--runs-dir", str(runs), "--run-id", run_id]
    return _invoke("evolve", *common, *args)


def _outcomes(run: Path) -> list[tuple[Any, ...]]:
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    return [
        (
            e["index"],
            e["kind"],
            e["score"]["code_hash"],
            e["score"]["status"],
            e["score"]["fitness"],
        )
        for e in events
        if e["event"] == "outcome" and e["score"]
    ]


def test_evolve_screens_candidates_and_reports_them(tmp_path: Path) -> None:
    result = _evolve(tmp_path, "a", "--budget", "8")
    assert result.exit_code == 0, result.stderr
    run = tmp_path / "a"
    meta = json.loads((run / "run.json").read_text())
    counters = meta["counters"]
    assert meta["cascade"]["top"] == 1 and len(meta["cascade"]["stage_tasks"]) == 2
    assert counters["evaluated"] == 8  # screened candidates count in the budget
    assert 0 < counters["screened"] < 8
    assert "screened" not in counters["failures"]
    doc = json.loads((run / "ranking.json").read_text())
    screened = [c for c in doc["candidates"] if c["status"] == "screened"]
    assert len(screened) == counters["screened"]
    for c in screened:
        assert c["rank"] is None and c["fitness"] is None
        assert isinstance(c["partial_fitness"], float)
        assert sorted(c["tasks"]) == sorted(meta["cascade"]["stage_tasks"])
    ok = [c for c in doc["candidates"] if c["status"] == "ok"]
    assert all(len(c["tasks"]) == 4 and c["partial_fitness"] is None for c in ok)
    # A candidate that went on trained its stage-1 tasks in this run too: it reads them back
    # from the cache for the full lab, yet none of its tasks came from an earlier call.
    went_on = [c for c in ok if not c["baseline"]]
    assert went_on and all(c["cached_tasks"] in (0, 4) for c in went_on)
    cells = {}
    for line in result.stdout.splitlines():
        row = [c.strip() for c in line.split("│")][1:-1]
        if len(row) > 2 and row[0].isdigit():
            cells[row[1]] = row[-2]  # the "cache" column; the last one is the code
    assert {cells[c["name"]] for c in went_on} <= {"new", "hit"}
    # Screened rows follow the ranked ones, best stage-1 fitness first.
    statuses = [c["status"] for c in doc["candidates"]]
    assert statuses.index("screened") > max(i for i, s in enumerate(statuses) if s == "ok")
    partial = [c["partial_fitness"] for c in screened]
    assert partial == sorted(partial)
    md = (run / "report.md").read_text()
    assert "## Screened by the cascade" in md
    assert "failed: screened" not in md  # not a failure
    assert f"screened by the cascade: {counters['screened']} of 8" in md
    assert "Screened by the cascade" in (run / "report.html").read_text()
    # The terminal says "screened" once: the reason opens with it.
    assert "screened after stage 1" in result.stdout and "screened:" not in result.stdout
    hash_ = screened[0]["code_hash"][:10]
    shown = runner.invoke(
        app, ["show", hash_, "--runs-dir", str(tmp_path), "--cache-dir", str(CACHE[-1])]
    )
    assert shown.exit_code == 0, shown.stderr
    assert "status screened after stage 1: " in shown.stdout


def test_the_same_seed_gives_the_same_run_and_a_resume_replays_screened_outcomes(
    tmp_path: Path,
) -> None:
    straight = _evolve(tmp_path, "straight", "--budget", "8")
    assert straight.exit_code == 0, straight.stderr
    again = _evolve(tmp_path, "again", "--budget", "8")
    assert again.exit_code == 0, again.stderr
    first = _outcomes(tmp_path / "straight")
    assert any(o[3] == "screened" for o in first)
    assert _outcomes(tmp_path / "again") == first
    half = _evolve(tmp_path, "half", "--budget", "4")
    assert half.exit_code == 0, half.stderr
    resumed = _invoke("evolve", "--resume", str(tmp_path / "half"), "--budget", "8")
    assert resumed.exit_code == 0, resumed.stderr
    assert _outcomes(tmp_path / "half") == first


def test_score_and_rescore_evaluate_in_full(tmp_path: Path) -> None:
    result = _invoke("score", "relu", "tanh", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [c["status"] for c in doc["candidates"]] == ["ok", "ok"]
    assert all(len(c["tasks"]) == 4 for c in doc["candidates"])


def test_a_resume_keeps_the_cascade_it_started_with(tmp_path: Path) -> None:
    assert _evolve(tmp_path, "r", "--budget", "2").exit_code == 0
    changed = tmp_path / "changed.toml"
    changed.write_text(LAB.read_text().replace("margin = 0.0", "margin = 0.5"))
    result = runner.invoke(
        app,
        ["evolve", "--resume", str(tmp_path / "r"), "--budget", "3", "--tasks", str(changed),
         "--cache-dir", str(CACHE[-1])],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "[lab.cascade]" in result.stderr and "a resumed run keeps it" in result.stderr
