"""A run's file replaced by a FIFO, or by a link to /dev/zero, or holding one endless line.

Reading such a file used to wait for ever (a FIFO no one writes to) or fill the memory (one
line with no end): `report`, `show` and `--resume` hung, or took every byte of the machine.
Now the log is refused with one line naming it, and the index, a speed-up only, is passed by.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.runs.rundir import MAX_EVENT_CHARS, RunLog
from tests.conftest import offline_run, raised_on_fifo

runner = CliRunner()
pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One finished offline run on the tiny lab, copied by each test."""
    base = tmp_path_factory.mktemp("special")
    run = offline_run(base, budget=1, seed=2, run_id="good")
    doc = json.loads((run / "ranking.json").read_text())
    return {"run": run, "cache": base / "cache", "hash": doc["candidates"][0]}


def _copy(finished: dict[str, Any], tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished["run"], tmp_path / "runs" / "good"))


def _commands(finished: dict[str, Any], run: Path) -> dict[str, list[str]]:
    cache = ["--cache-dir", str(finished["cache"])]
    return {
        "report": ["report", str(run), *cache],
        "show": ["show", finished["hash"]["code_hash"][:12], "--run", str(run), *cache],
        "resume": ["evolve", "--resume", str(run), *cache],
    }


@pytest.mark.parametrize("command", ["report", "show", "resume"])
def test_an_event_log_that_is_a_fifo_is_refused_at_once(
    finished: dict[str, Any], tmp_path: Path, command: str
) -> None:
    run = _copy(finished, tmp_path)
    (run / "events.jsonl").unlink()
    os.mkfifo(run / "events.jsonl")  # nobody writes to it: reading it would wait for ever
    results: list[Any] = []
    args = _commands(finished, run)[command]
    assert (
        raised_on_fifo(run / "events.jsonl", lambda _: results.append(runner.invoke(app, args)))
        is None
    )
    (result,) = results
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.strip().endswith(
        f"cannot read {run / 'events.jsonl'}: it is not a regular file (a FIFO (named pipe))"
    ), result.output


def test_an_event_log_linked_to_dev_zero_is_refused(
    finished: dict[str, Any], tmp_path: Path
) -> None:
    run = _copy(finished, tmp_path)
    (run / "events.jsonl").unlink()
    (run / "events.jsonl").symlink_to(os.devnull.replace("null", "zero"))  # one endless line
    result = runner.invoke(app, _commands(finished, run)["report"])
    assert result.exit_code == 1, result.output
    assert "it is not a regular file (a character device)" in result.stderr


def test_an_index_that_is_a_fifo_is_passed_by(finished: dict[str, Any], tmp_path: Path) -> None:
    run = _copy(finished, tmp_path)
    (run / ".ranking-index.json").unlink()
    os.mkfifo(run / ".ranking-index.json")
    results: list[Any] = []
    args = _commands(finished, run)["show"]
    fifo = run / ".ranking-index.json"
    assert raised_on_fifo(fifo, lambda _: results.append(runner.invoke(app, args))) is None
    (result,) = results
    assert result.exit_code == 0, result.output
    assert finished["hash"]["code_hash"] in result.stdout


def test_a_line_past_the_limit_is_skipped_reading_at_most_the_limit(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path, "r")
    log.append({"event": "start"})
    with log.events_path.open("a", encoding="utf-8") as f:
        f.write("x" * (2 * MAX_EVENT_CHARS + 5) + "\n")
    log.append({"event": "end"})
    log.close()
    assert [e["event"] for e in log.events()] == ["start", "end"]
    assert log.unreadable == 1
