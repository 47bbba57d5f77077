"""`minact evolve --replay FILE` refuses a line of the wrong shape before the run starts.

Each bad line used to raise mid-run (AttributeError, TypeError, OverflowError) and leave the
run directory marked failed; now it is exit code 1, naming the file, the line and what is
wrong, before any run directory exists and before anything trains.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.outcome import Reply
from minact.search.proposers import RecordingProposer, load_replay
from tests.conftest import TINY_TASKS, raised_on_fifo

runner = CliRunner()

GOOD = {
    "index": 0,
    "turn": 0,
    "reply": {"text": "```python\nimport torch\ndef activation(x):\n    return x\n```"},
}


def _line(**changes: Any) -> str:
    """Returns a recorded exchange with `changes` to the record (index, turn) or its reply."""
    record = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if key in ("index", "turn"):
            record[key] = value
        elif key == "reply":
            record["reply"] = value
        else:
            record["reply"][key] = value
    return json.dumps(record)


BAD_LINES = {
    "reply-string": (_line(reply="hello"), "a reply must be an object, got 'hello'"),
    "text-null": (_line(text=None), "'text' must be a string, got None"),
    "text-number": (_line(text=5), "'text' must be a string, got 5"),
    "no-text": (_line(reply={"note": "x"}), "the reply has no 'text'"),
    "tokens-string": (_line(prompt_tokens="many"), "'prompt_tokens' must be an integer >= 0"),
    "tokens-negative": (_line(completion_tokens=-3), "'completion_tokens' must be an integer"),
    "tokens-float": (_line(prompt_tokens=2.5), "'prompt_tokens' must be an integer >= 0"),
    "model-list": (_line(model=["a"]), "'model' must be a string, got ['a']"),
    "error-number": (_line(error=1), "'error' must be a string, got 1"),
    "usage-string": (_line(usage_reported="yes"), "'usage_reported' must be true or false"),
    "latency-nan": ('{"index": 0, "reply": {"text": "", "latency": NaN}}', "'latency' must be"),
    "first-token-string": (_line(first_token="soon"), "'first_token' must be a finite number"),
    "retry-reasons-string": (_line(retry_reasons="busy"), "'retry_reasons' must be a list"),
    "index-overflow": ('{"index": 1e400, "reply": {"text": ""}}', "'index' must be an integer"),
    "index-float": (_line(index=1.5), "'index' must be an integer, got 1.5"),
    "index-negative": (_line(index=-1), "'index' must be >= 0, got -1"),
    "turn-string": (_line(turn="1"), "'turn' must be an integer, got '1'"),
    "no-index": ('{"reply": {"text": ""}}', "it has no 'index'"),
    "no-reply": ('{"index": 0}', "it has no 'reply'"),
    "not-an-object": ("[1, 2]", "a line must be a JSON object, got list"),
    "not-json": ("{", "Expecting property name"),
}


@pytest.mark.parametrize("case", BAD_LINES, ids=list(BAD_LINES))
def test_a_bad_replay_line_is_refused_before_the_run(tmp_path: Path, case: str) -> None:
    bad, expected = BAD_LINES[case]
    record = tmp_path / "llm.jsonl"
    record.write_text(_line() + "\n" + bad + "\n", encoding="utf-8")
    runs = tmp_path / "runs"
    result = runner.invoke(
        app,
        ["evolve", "--budget", "1", "--tasks", str(TINY_TASKS), "--replay", str(record),
         "--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(runs)],
    )  # fmt: skip
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"--replay {record}: line 2 is not a recorded exchange (" in result.stderr
    assert expected in result.stderr
    # Refused before the run starts: no run directory, so none is left marked running.
    assert not runs.exists() or not any(runs.iterdir())


def test_a_recorded_reply_round_trips_and_nulls_read_as_defaults() -> None:
    reply = Reply("text", "note", None, 3, 4, True, 1.5, 2, 0.25, ("429", "timeout"), model="m")
    assert Reply.from_dict(json.loads(json.dumps(reply.to_dict()))) == reply
    nulls = {"text": "", "prompt_tokens": None, "attempts": None, "model": None}
    assert Reply.from_dict(nulls) == Reply("")
    assert Reply.from_dict({"text": "", "latency": 2, "future_field": [1]}).latency == 2.0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_replay_file_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "llm.jsonl"
    os.mkfifo(fifo)  # nobody writes to it: reading it would wait for ever
    results: list[Any] = []
    args = ["evolve", "--budget", "1", "--tasks", str(TINY_TASKS), "--replay", str(fifo)]
    args += ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    assert raised_on_fifo(fifo, lambda _: results.append(runner.invoke(app, args))) is None
    (result,) = results
    assert result.exit_code == 1, result.output
    assert "is not a regular file (a FIFO (named pipe))" in result.stderr


def test_a_record_cut_by_a_kill_then_resumed_with_record_replays(tmp_path: Path) -> None:
    record = tmp_path / "llm.jsonl"
    record.write_text(_line() + "\n" + _line(index=1)[:30], encoding="utf-8")  # killed mid-line
    assert set(load_replay(record)) == {(0, 0)}  # the cut last line is no exchange, skipped

    class Inner:
        kind = "llm"

        async def propose(self, request: Any) -> Reply:
            return Reply("resumed")

    request = type("Request", (), {"index": 1, "turn": 0, "sampling_seed": 0, "messages": []})
    asyncio.run(RecordingProposer(Inner(), record).propose(request()))  # type: ignore[arg-type]
    assert load_replay(record)[(1, 0)].text == "resumed"  # appended on a line of its own


def test_a_reply_holding_a_unicode_line_separator_replays(tmp_path: Path) -> None:
    record = tmp_path / "llm.jsonl"
    line = json.dumps(json.loads(_line(text="a\u2028b\x85c")), ensure_ascii=False)
    record.write_text(line + "\n", encoding="utf-8")
    assert load_replay(record)[(0, 0)].text == "a\u2028b\x85c"
