"""Tests for `--resume` of a run that has nothing left to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS
from tests.llm_server import LLMServer, numbered_replies, serving

runner = CliRunner()
NO_LLM_ENV: dict[str, str | None] = {"MINACT_LLM_URL": None, "MINACT_MODEL": None}


def _evolve(tmp: Path, *args: str) -> Any:
    common = ["--tasks", str(TINY_TASKS), "--cache-dir", str(tmp / "cache")]
    common += ["--runs-dir", str(tmp / "runs"), "--llm-retries", "1"]
    return runner.invoke(app, ["evolve", *common, *args], env=NO_LLM_ENV)


def test_resuming_a_finished_run_asks_the_server_nothing(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    replies = numbered_replies(lambda k: f"torch.tanh(x) * {2 + k}")
    with LLMServer(replies, models=serving("m1")) as server:
        first = _evolve(tmp_path, "--budget", "2", "--llm-url", server.url, "--model", "m1",
                        "--concurrency", "2", "--run-id", "r")  # fmt: skip
        assert first.exit_code == 0, first.stderr
        before = len(server.requests)
        events = (run / "events.jsonl").read_text()
        resumed = _evolve(tmp_path, "--resume", str(run))
        asked = server.requests[before:]
    assert resumed.exit_code == 0, resumed.stderr
    # Not even the start-up check (GET /models): the log answers every proposal.
    assert asked == []
    assert "the search is complete (evaluated 2 of --budget 2): no LLM is asked" in resumed.stderr
    assert "proposer: LLM" not in resumed.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished" and meta["llm"]["model"] == "m1"
    assert (run / "events.jsonl").read_text() == events  # nothing new to log


def test_resuming_a_finished_run_whose_run_json_names_a_model_without_a_weight(
    tmp_path: Path,
) -> None:
    # run.json may say a model's weight is null (the report shows "—"): the resume of the
    # finished search read it back with float(None), a traceback, and marked the run failed.
    run = tmp_path / "runs" / "r"
    assert _evolve(tmp_path, "--offline", "--budget", "2", "--run-id", "r").exit_code == 0
    meta = json.loads((run / "run.json").read_text())
    meta["models"] = [{"name": "offline", "url": "", "weight": None}]
    (run / "run.json").write_text(json.dumps(meta))
    resumed = _evolve(tmp_path, "--resume", str(run))
    assert resumed.exit_code == 0, resumed.stderr
    assert "the search is complete" in resumed.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
