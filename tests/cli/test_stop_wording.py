"""What `minact evolve` says when it is stopped (Ctrl-C, SIGTERM) during the search, and
again while its report is written: the status says "interrupted", the message says what
was stopped, and neither repeats the other.

The stops are sent by the process to itself at fixed points of the run (the search's
start, the report's files), so the test does not depend on timing.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.report import files
from minact.search.loop import Loop
from tests.conftest import TINY_TASKS

runner = CliRunner()


def _stop_at(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    """Makes `owner.name` send SIGINT to this process before it does its work."""
    original = getattr(owner, name)

    if name == "run":  # Loop.run: a coroutine, stopped on the event loop

        async def stopped(*args: Any, **kwargs: Any) -> Any:
            os.kill(os.getpid(), signal.SIGINT)
            return await original(*args, **kwargs)
    else:

        def stopped(*args: Any, **kwargs: Any) -> Any:
            os.kill(os.getpid(), signal.SIGINT)
            return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, stopped)


def _evolve(tmp: Path) -> Any:
    args = ["evolve", "--offline", "--budget", "1", "--tasks", str(TINY_TASKS)]
    args += ["--cache-dir", str(tmp / "cache"), "--runs-dir", str(tmp / "runs"), "--run-id", "r"]
    return runner.invoke(app, args)


def test_a_stop_during_the_search_says_interrupted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stop_at(monkeypatch, Loop, "run")
    result = _evolve(tmp_path)
    assert result.exit_code == 130, result.stderr
    meta = json.loads((tmp_path / "runs" / "r" / "run.json").read_text())
    assert meta["status"] == "interrupted"
    assert meta["message"] == "stopped during the search; evaluated candidates are kept"
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("run r:")]
    assert line == f"run r: interrupted — {meta['message']}"


def test_a_second_stop_while_the_report_is_written_says_interrupted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stop_at(monkeypatch, Loop, "run")  # the first stop: the search ends interrupted
    _stop_at(monkeypatch, files, "write")  # the second: the report is not written
    result = _evolve(tmp_path)
    assert result.exit_code == 130, result.stderr
    run = tmp_path / "runs" / "r"
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "interrupted"
    assert meta["message"] == (
        "stopped again while its report was written, after the search was stopped; its "
        f"candidates are kept: `minact report {run}` writes the report"
    )
    last = result.stderr.rstrip().splitlines()[-1]
    assert last == f"interrupted: {meta['message']}"
