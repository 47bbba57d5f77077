"""An ensemble one of whose servers fails every request: the other model carries the run,
and the report says the failing model's calls failed."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS
from tests.llm_server import LLMServer, Status, numbered_replies, serving

runner = CliRunner()


def test_a_model_whose_server_fails_is_shown_failing_and_the_other_carries_the_run(
    tmp_path: Path,
) -> None:
    good = LLMServer(numbered_replies(lambda k: f"torch.sin({k + 2} * x) + x"))
    down = LLMServer(lambda body: Status(503), models=serving("other"))
    with good, down:
        args = ["evolve", "--tasks", str(TINY_TASKS), "--runs-dir", str(tmp_path / "runs")]
        args += ["--cache-dir", str(tmp_path / "cache"), "--run-id", "r", "--budget", "4"]
        args += ["--seed", "1", "--llm-retries", "1", "--model", "test-model,other"]
        result = runner.invoke(app, [*args, "--llm-url", f"{good.url},{down.url}"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "r"
    counters = json.loads((run / "run.json").read_text())["counters"]
    assert counters["evaluated"] == 4 and counters["llm_errors"] > 0
    failed = int(counters["models"]["other"]["errors"])
    assert failed == counters["models"]["other"]["calls"] == counters["llm_errors"]
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in (run / "report.md").read_text().splitlines()
        if line.startswith(("| test-model |", "| other |"))
    }
    assert rows["other"][1] == f"{failed} ({failed} failed)"
    assert rows["test-model"][1] == str(counters["models"]["test-model"]["calls"])
