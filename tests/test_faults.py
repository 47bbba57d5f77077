"""Faulty LLM servers, seen from a whole `minact evolve` run: each fault is retried,
counted or reported; the run finishes, or stops with exit code 1 and a clear message;
nothing evaluated is lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app

from .conftest import TINY_TASKS
from .llm_server import (
    Empty,
    Huge,
    InvalidJsonChunk,
    LLMServer,
    Redirect,
    Reply,
    Status,
    Trickle,
    Truncate,
    WrongContentType,
    numbered_replies,
    serving,
)

runner = CliRunner()
CACHE: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    CACHE.append(tmp_path_factory.mktemp("faults-cache"))
    yield
    CACHE.pop()


def _tanh(k: int) -> str:
    return f"torch.tanh({k} * x) + 0.1 * x"


def _evolve(tmp: Path, url: str, *extra: str) -> Any:
    return runner.invoke(
        app,
        [
            "evolve",
            "--budget",
            "2",
            "--concurrency",
            "1",
            "--llm-url",
            url,
            "--model",
            "m",
            "--tasks",
            str(TINY_TASKS),
            "--cache-dir",
            str(CACHE[-1]),
            "--runs-dir",
            str(tmp / "runs"),
            "--llm-retries",
            "2",
            "--llm-timeout",
            "3",
            *extra,
        ],
    )


def _run_meta(tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    (run,) = list((tmp / "runs").iterdir())
    return (
        json.loads((run / "run.json").read_text()),
        json.loads((run / "ranking.json").read_text()),
    )


TRANSIENT = {
    "429 with Retry-After": Status(429, headers={"Retry-After": "1"}),
    "429 without Retry-After": Status(429),
    "500": Status(500),
    "502 plain text": Status(502, body="Bad Gateway"),
    "503": Status(503),
    "stream cut mid-reply": Truncate("```python\nimport torch\ndef activation(x):\n", 30),
}


@pytest.mark.parametrize("fault", list(TRANSIENT), ids=list(TRANSIENT))
def test_transient_faults_are_retried_and_the_run_finishes(tmp_path: Path, fault: str) -> None:
    with LLMServer(numbered_replies(_tanh, start=1), models=serving("m")) as server:
        server.push(TRANSIENT[fault])
        result = _evolve(tmp_path, server.url)
    assert result.exit_code == 0, result.stderr
    meta, ranking = _run_meta(tmp_path)
    c = meta["counters"]
    assert meta["status"] == "finished" and c["evaluated"] == 2
    assert c["retries"] >= 1 and c["llm_errors"] == 0
    new = [x for x in ranking["candidates"] if not x["baseline"]]
    assert len(new) == 2  # nothing evaluated is lost


def test_a_web_page_in_place_of_a_reply_is_one_llm_error_not_retried(tmp_path: Path) -> None:
    # A 200 carrying a page (a web UI, a portal) gets the same page when asked again: that
    # request fails at once, and the run goes on with the next.
    with LLMServer(numbered_replies(_tanh, start=1), models=serving("m")) as server:
        server.push(WrongContentType())
        result = _evolve(tmp_path, server.url)
    assert result.exit_code == 0, result.stderr
    meta, ranking = _run_meta(tmp_path)
    c = meta["counters"]
    assert meta["status"] == "finished" and c["evaluated"] == 2
    assert c["retries"] == 0 and c["llm_errors"] == 1
    (run,) = list((tmp_path / "runs").iterdir())
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    (error,) = [e for e in events if e["event"] == "outcome" and e["kind"] == "llm_error"]
    assert "Welcome to nginx" in error["reason"] and "/v1" in error["reason"]
    assert len([x for x in ranking["candidates"] if not x["baseline"]]) == 2


def test_a_reply_that_trickles_past_the_deadline_is_one_llm_error(tmp_path: Path) -> None:
    # --llm-timeout covers the whole request: no retry is left once the trickle has used it.
    with LLMServer(numbered_replies(_tanh, start=1), models=serving("m")) as server:
        server.push(Trickle("```python\nslow", bytes_per_second=2.0))
        result = _evolve(tmp_path, server.url)
    assert result.exit_code == 0, result.stderr
    meta, ranking = _run_meta(tmp_path)
    c = meta["counters"]
    assert meta["status"] == "finished" and c["evaluated"] == 2 and c["llm_errors"] == 1
    (run,) = list((tmp_path / "runs").iterdir())
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    (error,) = [e for e in events if e["event"] == "outcome" and e["kind"] == "llm_error"]
    assert "deadline" in error["reason"]
    assert len([x for x in ranking["candidates"] if not x["baseline"]]) == 2


REPLIES = {
    "invalid JSON in a chunk": (
        InvalidJsonChunk(
            "```python\nimport torch\ndef activation(x):\n    return torch.sin(x) + x\n```"
        ),
        None,
    ),
    "a 10 MB reply": (Huge(megabytes=10), "no ```python block"),
    "an empty reply": (Empty(), "empty reply"),
    "a reply in another language": (
        Reply("Je ne peux pas écrire de code. 我不能。"),
        "no ```python block",
    ),
}


@pytest.mark.parametrize("fault", list(REPLIES), ids=list(REPLIES))
def test_bad_replies_are_counted_and_the_run_finishes(tmp_path: Path, fault: str) -> None:
    behaviour, reason = REPLIES[fault]
    with LLMServer(numbered_replies(_tanh, start=1), models=serving("m")) as server:
        server.push(behaviour)
        result = _evolve(tmp_path, server.url)
    assert result.exit_code == 0, result.stderr
    meta, _ = _run_meta(tmp_path)
    c = meta["counters"]
    assert meta["status"] == "finished" and c["evaluated"] == 2
    if reason is not None:
        # The bad reply is answered with a follow-up (the next reply is good): one verdict.
        assert c["parse_failures"] + c["follow_up_reasons"].get("parse_failure", 0) == 1
        (run,) = list((tmp_path / "runs").iterdir())
        events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
        first = next(e for e in events if e["event"] in ("outcome", "follow_up"))
        assert first["kind"] == "parse_failure" and reason in first["reason"]


def test_a_redirect_is_not_followed_and_stops_the_run(tmp_path: Path) -> None:
    with LLMServer(
        lambda body: Redirect("http://attacker.example/v1/chat/completions"), models=serving("m")
    ) as server:
        result = _evolve(tmp_path, server.url)
        chat = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert result.exit_code == 1
    assert "LLM failed" in result.stderr and "attacker.example" in result.stderr
    meta, _ = _run_meta(tmp_path)
    errors = meta["counters"]["llm_errors"]
    assert meta["status"] == "llm_failed" and errors >= 8
    # One request per proposal at most (those in flight at the stop are cancelled, some
    # before they were sent): never followed, never retried.
    assert len(chat) <= errors and meta["counters"]["retries"] == 0


def test_a_server_that_keeps_failing_stops_with_a_clear_message(tmp_path: Path) -> None:
    with LLMServer(lambda body: Status(401), models=serving("m")) as server:
        result = _evolve(tmp_path, server.url)
    assert result.exit_code == 1
    assert "401" in result.stderr and "API key" in result.stderr
    meta, ranking = _run_meta(tmp_path)
    assert meta["status"] == "llm_failed"
    assert all(x["baseline"] for x in ranking["candidates"])  # the seeds are still reported


def test_a_run_stopped_by_a_failing_server_resumes_against_a_mended_one(tmp_path: Path) -> None:
    # The resumed run replayed the log's errors in a row and stopped again at once with the
    # old failure, never asking the server it was resumed to ask. (The failed calls count
    # towards the call cap: it is raised.)
    with LLMServer(lambda body: Status(401), models=serving("m")) as server:
        assert _evolve(tmp_path, server.url).exit_code == 1
    meta, _ = _run_meta(tmp_path)
    assert meta["status"] == "llm_failed" and meta["counters"]["llm_errors"] >= 8
    (run,) = list((tmp_path / "runs").iterdir())
    with LLMServer(numbered_replies(_tanh), models=serving("m")) as server:
        args = ["evolve", "--resume", str(run), "--llm-url", server.url, "--max-calls", "30"]
        result = runner.invoke(app, [*args, "--cache-dir", str(CACHE[-1])])
        asked = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert result.exit_code == 0, result.output
    meta, ranking = _run_meta(tmp_path)
    assert meta["status"] == "finished" and asked
    assert meta["counters"]["llm_errors"] >= 8  # the stopped run's errors are kept
    assert sum(not x["baseline"] for x in ranking["candidates"]) == 2


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('{"error": {"message": "model not loaded\\u001b[2J"}}', "model not loaded\\x1b[2J"),
        ('{"object": "list", "data": []}', "a JSON object with no choices"),
    ],
)
def test_json_that_is_no_completion_stops_the_run_without_retries(
    tmp_path: Path, body: str, said: str
) -> None:
    # A 200 with valid JSON that is no chat completion was retried as if transient: every
    # call spent its retries and backoff on the same answer before the run gave up.
    with LLMServer(lambda b: WrongContentType(body, "application/json"), models=serving("m")) as s:
        result = _evolve(tmp_path, s.url)
        chat = [r for r in s.requests if r.path.endswith("/chat/completions")]
    assert result.exit_code == 1
    assert "LLM failed" in result.stderr and said in result.stderr
    assert "\x1b" not in result.stderr  # the server's text, its control characters escaped
    meta, ranking = _run_meta(tmp_path)
    assert meta["status"] == "llm_failed" and len(chat) <= meta["counters"]["llm_errors"]
    assert all(x["baseline"] for x in ranking["candidates"]) and ranking["candidates"]
