"""What events.jsonl holds, line for line: replies ready together are logged in proposal
order (an offline run's log is the same whatever the seed's run), and a resume logs no
second "proposal" line for a proposal its log already holds."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from minact.cli import app
from minact.lab.task import Lab
from minact.search.loop import SearchConfig, run
from minact.search.proposers import OfflineProposer
from tests.conftest import TINY_TASKS
from tests.fakes import FakeEvaluator
from tests.llm_server import LLMServer, numbered_replies

runner = CliRunner()


def _offline_events(lab: Lab, seed: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    config = SearchConfig(budget=15, concurrency=4, seed=seed)
    asyncio.run(run(config, lab, OfflineProposer(), FakeEvaluator(), events.append))
    return events


def test_an_offline_run_logs_its_replies_in_proposal_order(tiny_lab: Lab) -> None:
    # The mutator's replies are all ready at once; they were logged in the order of a set
    # of tasks (their addresses), so two runs with one seed wrote different logs.
    first = _offline_events(tiny_lab, seed=11)
    replies = [e["index"] for e in first if e["event"] == "reply"]
    assert replies == sorted(replies) and len(replies) >= 15
    assert _offline_events(tiny_lab, seed=11) == first


def _lines(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def test_a_resume_logs_each_proposal_once(tmp_path: Path) -> None:
    common = ["--cache-dir", str(tmp_path / "cache"), "--llm-retries", "1"]
    with LLMServer(numbered_replies(lambda k: f"torch.sin({k + 2} * x) + x")) as server:
        args = ["evolve", "--tasks", str(TINY_TASKS), "--runs-dir", str(tmp_path / "runs")]
        args += ["--run-id", "r", "--budget", "4", "--concurrency", "2", "--seed", "3"]
        result = runner.invoke(app, [*args, "--llm-url", server.url, *common])
        assert result.exit_code == 0, result.output
        # Killed once outcome 0 was logged: proposals 1 to 3 were logged, not their outcomes.
        run = tmp_path / "runs" / "r"
        lines = (run / "events.jsonl").read_text().splitlines(keepends=True)
        first = next(i for i, line in enumerate(lines) if '"event": "outcome"' in line)
        (run / "events.jsonl").write_text("".join(lines[: first + 1]))
        logged = [e["index"] for e in _lines(run) if e["event"] == "proposal"]
        assert logged[:4] == [0, 1, 2, 3]

        more = ["evolve", "--resume", str(run), "--budget", "6", "--llm-url", server.url]
        result = runner.invoke(app, [*more, *common])
        assert result.exit_code == 0, result.output
    events = _lines(run)
    proposals = Counter(e["index"] for e in events if e["event"] == "proposal")
    outcomes = [e["index"] for e in events if e["event"] == "outcome"]
    assert outcomes == list(range(len(outcomes))) and len(outcomes) >= 6
    assert sorted(proposals) == outcomes and set(proposals.values()) == {1}
    meta = json.loads((run / "run.json").read_text())
    assert meta["counters"]["proposals"] == len(outcomes)
