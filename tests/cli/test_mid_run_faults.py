"""Files of a search changed under it while it runs, seen from the command line: the run's
log and the cache. The fault is done by the LLM server when a request arrives, so it falls
mid-run at the same point every time (one proposal in flight at a time)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cache import FitnessCache
from minact.cli import app
from minact.evaluate import EVALUATOR_VERSION
from minact.runs import rundir
from tests.conftest import TINY_TASKS
from tests.llm_server import LLMServer, numbered_replies

runner = CliRunner()


def _evolve_with_fault(tmp: Path, fault: Callable[[], None], at: int = 3) -> Any:
    """Runs a search of 5 candidates whose LLM server calls `fault` on request `at`."""
    replies = numbered_replies(lambda k: f"x * {k + 2}")
    count = [0]

    def respond(body: dict[str, Any]) -> Any:
        count[0] += 1
        if count[0] == at:
            fault()
        return replies(body)

    with LLMServer(respond) as server:
        args = ["evolve", "--tasks", str(TINY_TASKS), "--cache-dir", str(tmp / "cache")]
        args += ["--runs-dir", str(tmp / "runs"), "--run-id", "r", "--budget", "5"]
        args += ["--concurrency", "1", "--llm-url", server.url, "--llm-retries", "1"]
        return runner.invoke(app, args)


def _sources(cache_dir: Path) -> set[str]:
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        return {code_hash for code_hash, _ in cache.sources()}


def test_a_replaced_event_log_stops_the_run_with_an_error(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    other = tmp_path / "other.jsonl"

    def replace_log() -> None:
        other.write_text('{"event": "start", "time": 0}\n')
        other.replace(run / "events.jsonl")

    result = _evolve_with_fault(tmp_path, replace_log)
    assert result.exit_code == 1, result.stderr
    assert isinstance(result.exception, SystemExit)
    assert f"error: {run / 'events.jsonl'} was removed or replaced" in result.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed" and "replaced" in meta["message"]
    assert not (run / "ranking.json").exists()  # never a ranking of the other file


def test_a_truncated_event_log_stops_the_run_with_an_error(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"

    def truncate_log() -> None:
        with (run / "events.jsonl").open("r+") as f:
            f.truncate(0)

    result = _evolve_with_fault(tmp_path, truncate_log)
    assert result.exit_code == 1, result.stderr
    assert f"error: {run / 'events.jsonl'} was truncated" in result.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_a_removed_run_directory_is_named_in_the_error(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    result = _evolve_with_fault(tmp_path, lambda: shutil.rmtree(run))
    assert result.exit_code == 1, result.stderr
    assert isinstance(result.exception, SystemExit)
    assert f"error: {run} was moved or removed while the run was writing it" in result.stderr


def test_a_cache_folder_removed_mid_run_is_made_again_and_said(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = _evolve_with_fault(tmp_path, lambda: shutil.rmtree(cache))
    assert result.exit_code == 0, result.stderr
    assert f"the cache at {cache} was removed or replaced while the command ran" in result.stderr
    # The candidates evaluated after the removal are in the new cache, not in a deleted file.
    events = (tmp_path / "runs" / "r" / "events.jsonl").read_text().splitlines()
    evaluated = [
        e["score"]["code_hash"]
        for e in map(json.loads, events)
        if e["event"] == "outcome" and e.get("kind") == "evaluated"
    ]
    assert evaluated and set(evaluated[-2:]) <= _sources(cache)


def test_a_run_stopped_by_a_full_disk_is_marked_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = [False]
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    append, write_atomic = rundir.RunLog.append, rundir.write_atomic

    # From the fault on, nothing new fits in the run folder: no new line in events.jsonl,
    # no new file (run.json is replaced through one); run.json's own bytes stay writable.
    def appending(log: rundir.RunLog, event: dict[str, Any]) -> None:
        if full[0]:
            raise rundir._cannot("write", log.events_path, enospc)
        append(log, event)

    def writing(path: Path, text: str) -> None:
        if full[0]:
            raise rundir._cannot("write", path, enospc)
        write_atomic(path, text)

    monkeypatch.setattr(rundir.RunLog, "append", appending)
    monkeypatch.setattr(rundir, "write_atomic", writing)
    result = _evolve_with_fault(tmp_path, lambda: full.__setitem__(0, True))
    assert result.exit_code == 1, result.stderr
    run = tmp_path / "runs" / "r"
    assert f"error: cannot write {run / 'events.jsonl'}: No space left on device" in result.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed" and "No space left on device" in meta["message"]
    assert meta["budget"] == 5  # the run's settings are kept, for a --resume
    # Once there is room again, the run goes on from what it had logged.
    full[0] = False
    with LLMServer(numbered_replies(lambda k: f"x * {k + 2}")) as server:
        args = ["evolve", "--resume", str(run), "--cache-dir", str(tmp_path / "cache")]
        resumed = runner.invoke(app, [*args, "--llm-url", server.url])
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
