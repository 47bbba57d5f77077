"""A replay says when it no longer repeats the recorded run; a resume asks as before.

Replies are served by proposal number. A replay given another `--seed` or
`--concurrency`, or another lab, asks other prompts than the recording answered, and
used to serve the recorded replies to them without a word: a run that looked like the
recorded one and was not. Now the first request that differs is named during the run
and again at its end; a replay that repeats its recording says nothing of the kind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS
from tests.llm_server import LLMServer, Reply

runner = CliRunner()
DIVERGED = "is not repeated from proposal"


def _respond(body: dict[str, Any]) -> Reply:
    """Replies that arrive out of order: each prompt's own length decides its pace."""
    content = body["messages"][-1]["content"]
    slow = len(content) % 3 * 0.02
    scale = 1 + len(content) % 7 / 10
    code = f"def activation(x):\n    return torch.tanh(x) * {scale}\n"
    return Reply(f"```python\nimport torch\n{code}```", chunk_chars=6, chunk_delay=slow)


def _evolve(base: Path, run_id: str | None, *args: str, tasks: Path = TINY_TASKS) -> Any:
    """Runs `minact evolve` with its cache and runs under `base`; `run_id` None: a resume."""
    common = ["evolve", "--tasks", str(tasks), "--cache-dir", str(base / "cache")]
    common += ["--runs-dir", str(base / "runs")] + (["--run-id", run_id] if run_id else [])
    return runner.invoke(app, [*common, *args])


def _picks(run: Path) -> list[tuple[str, float | None]]:
    doc = json.loads((run / "ranking.json").read_text())
    return [(x["code_hash"], x["fitness"]) for x in doc["candidates"]]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Returns the base folder of a run recorded with 3 requests in flight at once."""
    base = tmp_path_factory.mktemp("recorded")
    with LLMServer(_respond) as server:
        args = ["--budget", "4", "--seed", "2", "--concurrency", "3", "--record"]
        result = _evolve(base, "rec", *args, "--llm-url", server.url, "--llm-retries", "1")
    assert result.exit_code == 0, result.stderr
    return base


def test_a_replay_with_the_recorded_settings_repeats_the_run_and_says_nothing(
    recorded: Path,
) -> None:
    record = recorded / "runs" / "rec" / "llm.jsonl"
    again = _evolve(recorded, "same", "--replay", str(record))
    assert again.exit_code == 0, again.stderr
    assert DIVERGED not in again.stderr
    assert _picks(recorded / "runs" / "same") == _picks(recorded / "runs" / "rec")


@pytest.mark.parametrize(
    ("flags", "tasks"),
    [
        (["--seed", "5"], TINY_TASKS),
        (["--concurrency", "1"], TINY_TASKS),
        ([], TINY_TASKS.parent / "other_tasks.toml"),
    ],
    ids=["seed", "concurrency", "lab"],
)
def test_a_replay_that_asks_otherwise_than_the_recording_says_so(
    recorded: Path, flags: list[str], tasks: Path
) -> None:
    record = recorded / "runs" / "rec" / "llm.jsonl"
    args = ["--replay", str(record), *flags]
    again = _evolve(recorded, f"other-{tasks.stem}-{''.join(flags).strip('-')}", *args, tasks=tasks)
    assert again.exit_code == 0, again.stderr
    said = " ".join(again.stderr.split())  # the same words however the lines were wrapped
    # Which proposal is the first to ask otherwise depends on the change (the first ones
    # ask alike at any concurrency: their parents are the built-ins).
    warned = re.search(f"warning: --replay {re.escape(str(record))} {DIVERGED} ([0-9]+) on", said)
    assert warned is not None, said
    assert "it asks another prompt than the recorded run did" in said
    # Said again at the end, where it is not lost among the progress lines.
    assert f"note: --replay {record} {DIVERGED} {warned[1]} on" in said


def test_a_resumed_run_asks_with_the_per_task_scores_in_the_labs_order(tmp_path: Path) -> None:
    # The scores a resume reads back from the event log list their tasks by name
    # ("product" before "sine"); the prompts of the run before the stop, and of a run
    # never stopped, list them in the lab's order. The resumed run asked otherwise, so a
    # model replied otherwise, and a replay of its recording said it was not repeated.
    with LLMServer(_respond) as server:
        args = ["--concurrency", "1", "--llm-url", server.url, "--llm-retries", "1"]
        first = _evolve(tmp_path, "r", "--budget", "2", "--record", *args)
        assert first.exit_code == 0, first.stderr
        before = len(server.requests)
        resumed = _evolve(tmp_path, None, "--resume", str(tmp_path / "runs" / "r"), "--budget", "3")
        asked = " ".join(
            m["content"] for r in server.requests[before:] if r.json for m in r.json["messages"]
        )
    assert resumed.exit_code == 0, resumed.stderr
    assert "per task log-ratio: sine" in asked and "log-ratio: product" not in asked
    record = tmp_path / "runs" / "r" / "llm.jsonl"
    again = _evolve(tmp_path, "again", "--replay", str(record), "--budget", "3")
    assert again.exit_code == 0, again.stderr
    assert DIVERGED not in again.stderr
    assert _picks(tmp_path / "runs" / "again") == _picks(tmp_path / "runs" / "r")
