"""Tests of how `minact evolve` starts: checks before any training, and no run left "running".

A dead server, a model the server does not serve, a rejected key or a folder that cannot be
written ends the run with exit 1 and one line naming the cause, before the 14 built-ins train
(the cache stays empty) and without leaving a run directory behind.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.runs.rundir import RunLog
from minact.search import server as server_checks
from tests.conftest import TINY_TASKS
from tests.llm_server import Drip, LLMServer, Raw, numbered_replies, serving

runner = CliRunner()
NO_LLM_ENV = {"MINACT_LLM_URL": None, "MINACT_MODEL": None, "MINACT_API_KEY": None,
              "OPENAI_API_KEY": None}  # fmt: skip


def _evolve(tmp: Path, *args: str, env: dict[str, str | None] | None = None) -> Any:
    common = ["--tasks", str(TINY_TASKS), "--cache-dir", str(tmp / "cache")]
    common += ["--runs-dir", str(tmp / "runs"), "--budget", "2", "--workers", "1"]
    return runner.invoke(app, ["evolve", *common, *args], env={**NO_LLM_ENV, **(env or {})})


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def _nothing_started(tmp: Path) -> None:
    # The folders the start created are gone again: nothing was written to them.
    assert not (tmp / "runs").exists(), "no run directory (nor an empty runs folder) is left"
    assert not (tmp / "cache").exists(), "no worker started, nothing trained or cached"


def test_a_dead_server_ends_the_run_at_once_with_one_line(tmp_path: Path) -> None:
    with LLMServer() as server:
        url = server.url  # closed at once: connections are refused from here on
    result = _evolve(tmp_path, "--model", "m", "--llm-url", url)
    assert result.exit_code == 1
    (line,) = _error_lines(result.stderr)
    assert line.startswith("error: cannot reach the LLM server") and "--llm-url" in line
    _nothing_started(tmp_path)
    # Folders the user had stay, empty or not.
    (tmp_path / "runs").mkdir()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "mine.txt").write_text("kept")
    again = _evolve(tmp_path, "--model", "m", "--llm-url", url)
    assert again.exit_code == 1
    assert (tmp_path / "runs").is_dir() and not any((tmp_path / "runs").iterdir())
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["mine.txt"]


def test_a_model_the_server_does_not_serve_ends_the_run(tmp_path: Path) -> None:
    with LLMServer(
        numbered_replies(lambda k: f"torch.tanh({k} * x)"), models=serving("a", "b")
    ) as s:
        result = _evolve(tmp_path, "--model", "nope", "--llm-url", s.url)
        posts = [r for r in s.requests if r.method == "POST"]
    assert result.exit_code == 1
    (line,) = _error_lines(result.stderr)
    assert "--model 'nope'" in line and "it serves: a, b" in line
    assert posts == []
    _nothing_started(tmp_path)


@pytest.mark.parametrize("model", [[], ["--model", "m"]])
def test_a_web_page_at_the_url_ends_the_run(tmp_path: Path, model: list[str]) -> None:
    # --llm-url names a web UI (no /v1): its page came back with status 200 to every request,
    # each retried with backoff as if the server were busy.
    page = b"<!DOCTYPE html><html><head><title>Open WebUI</title></head><body></body></html>"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
    with LLMServer(gets={"/models": Raw(head + page)}) as s:
        root = s.url.removesuffix("/v1")
        result = _evolve(tmp_path, *model, "--llm-url", root)
        posts = [r for r in s.requests if r.method == "POST"]
    assert result.exit_code == 1
    (line,) = _error_lines(result.stderr)
    assert line == (
        f"error: --llm-url {root}: GET {root}/models answered with an HTML page titled 'Open"
        " WebUI', not the API's list of models; give the API's base URL (it usually ends in /v1)"
    )
    assert posts == []
    _nothing_started(tmp_path)


def test_a_rejected_key_ends_the_run_and_is_never_shown(tmp_path: Path) -> None:
    wrong = "sk-wrong-key-0123456789"
    with LLMServer(models=serving("m"), key="sk-right") as server:
        result = _evolve(tmp_path, "--model", "m", "--llm-url", server.url,
                         env={"MINACT_API_KEY": wrong})  # fmt: skip
    assert result.exit_code == 1
    (line,) = _error_lines(result.stderr)
    assert "rejected the API key" in line and "401" in line and wrong not in line
    _nothing_started(tmp_path)


@pytest.mark.parametrize("key", ["sk-line\nbreak-0123456789", "sk-s\u00e9cret-0123456789"])
def test_a_key_no_header_can_carry_ends_the_run_and_is_never_shown(
    tmp_path: Path, key: str
) -> None:
    # A line break was quoted unmasked in httpx's error; a non-ASCII letter was a traceback.
    with LLMServer(models=serving("m")) as server:
        result = _evolve(tmp_path, "--model", "m", "--llm-url", server.url,
                         env={"MINACT_API_KEY": key})  # fmt: skip
        requests = list(server.requests)
    assert result.exit_code == 1
    (line,) = _error_lines(result.stderr)
    assert "the API key (MINACT_API_KEY or OPENAI_API_KEY) holds a character" in line
    assert "0123456789" not in result.output + result.stderr and requests == []
    _nothing_started(tmp_path)


@pytest.mark.parametrize(("timeout", "given"), [("1", "1.2"), ("1.5", "1.5"), ("100", "1.8")])
def test_the_check_of_the_server_is_given_as_long_as_llm_timeout_within_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, timeout: str, given: str
) -> None:
    # A slow server (busy, or answering a list of megabytes): GET /models was cut at 5 s
    # whatever --llm-timeout said. The bounds (5 s to 60 s) are made small here, so that
    # the check of a server that never finishes its answer ends within seconds.
    monkeypatch.setattr(server_checks, "CHECK_SECONDS", 1.2)
    monkeypatch.setattr(server_checks, "CHECK_MOST", 1.8)
    with LLMServer(gets={"/v1/models": Drip(every=0.1)}) as s:
        result = _evolve(tmp_path, "--model", "m", "--llm-url", s.url, "--llm-timeout", timeout)
    assert result.exit_code == 1
    (line,) = _error_lines(result.stderr)
    assert line.startswith(f"error: the LLM server did not answer GET {s.url}/models usefully:")
    assert f": no whole answer within {given} s (" in line
    # Where the user's timeout could give it longer, the message says how.
    hint = "; --llm-timeout gives a slow server up to 1.8 s; is --llm-url right?"
    assert line.endswith(hint) == (given != "1.8")
    _nothing_started(tmp_path)


def test_the_right_key_and_model_pass_the_check(tmp_path: Path) -> None:
    with LLMServer(numbered_replies(lambda k: f"torch.tanh({k + 2} * x)"), models=serving("m"),
                   key="sk-right") as server:  # fmt: skip
        result = _evolve(tmp_path, "--model", "m", "--llm-url", server.url, "--budget", "1",
                         env={"MINACT_API_KEY": "sk-right"})  # fmt: skip
    assert result.exit_code == 0, result.stderr
    # A fresh cache: the wait for the built-ins is said, not silent.
    assert "scoring 14 built-in activations: 0/14" in result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_an_unwritable_cache_or_runs_folder_ends_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(
        app, ["evolve", "--tasks", str(TINY_TASKS), "--cache-dir", str(blocker / "cache"),
              "--runs-dir", str(tmp_path / "runs")], env=NO_LLM_ENV,
    )  # fmt: skip
    # A cache folder under a file can never be made: a usage error, as the flag is parsed
    # (tests/cli/test_bounds.py); a runs folder is checked when the run starts.
    assert result.exit_code == 2
    tight = "".join(re.sub("[│╭╮╰╯─]", "", result.stderr).split())  # the box wraps lines
    assert "".join(f"{blocker / 'cache'}: {blocker} is a file, not a directory".split()) in tight
    result = _evolve(tmp_path, "--runs-dir", str(blocker / "runs"))
    assert result.exit_code == 1 and "--runs-dir" in result.stderr
    assert "cannot write there" in result.stderr
    assert not (blocker.parent / "runs").exists()


def _no_room() -> None:
    # A file may be created, but not one byte written to it: as on a full disk (EFBIG for
    # ENOSPC), where an empty file needs no room.
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_full_disk_ends_the_run_before_any_training(tmp_path: Path) -> None:
    cache = tmp_path / "new" / "cache"
    cmd = [sys.executable, "-m", "minact", "evolve", "--tasks", str(TINY_TASKS), "--offline"]
    cmd += ["--cache-dir", str(cache), "--runs-dir", str(tmp_path / "runs")]
    env = {k: v for k, v in os.environ.items() if k not in NO_LLM_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=env, preexec_fn=_no_room, timeout=600
    )
    assert done.returncode == 1, done.stderr
    (line,) = _error_lines(done.stderr)
    assert line.startswith(f"error: --cache-dir {cache}: cannot write there (File too large)")
    assert not (tmp_path / "new").exists() and not (tmp_path / "runs").exists()


def test_rescore_takes_the_latest_run_with_candidates(tmp_path: Path) -> None:
    done = _evolve(tmp_path, "--budget", "1", "--run-id", "good")
    assert done.exit_code == 0, done.stderr
    # A newer run that ended before its first proposal (as a killed start would leave it).
    empty = RunLog.create(tmp_path / "runs", "zz-empty")
    empty.write_run({"status": "failed", "message": "killed at start"})
    empty.close()
    result = runner.invoke(
        app, ["rescore", "--tasks", str(TINY_TASKS), "--runs-dir", str(tmp_path / "runs"),
              "--cache-dir", str(tmp_path / "cache"), "--top", "1", "--workers", "1"],
        env=NO_LLM_ENV,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "runs" / "good" / f"rescore-{TINY_TASKS.stem}").is_dir()


def test_the_first_requests_do_not_wait_for_the_builtins_and_replay_alike(tmp_path: Path) -> None:
    with LLMServer(numbered_replies(lambda k: f"torch.sin({k + 2} * x) + x"),
                   models=serving("m")) as server:  # fmt: skip
        cold = _evolve(tmp_path, "--model", "m", "--llm-url", server.url, "--budget", "4",
                       "--concurrency", "2", "--record", "--run-id", "cold", "--json")  # fmt: skip
    assert cold.exit_code == 0, cold.stderr
    run = tmp_path / "runs" / "cold"
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    first_seed = kinds.index("seed")
    # Built and sent on a fresh cache before the first built-in was scored: 2 x concurrency.
    opening = [e for e in events[:first_seed] if e["event"] == "proposal"]
    assert [(e["index"], e["opening"]) for e in opening] == [(k, True) for k in range(4)]
    # The same replies with the built-ins cached (scored at once): the same run.
    warm = _evolve(tmp_path, "--replay", str(run / "llm.jsonl"), "--budget", "4",
                   "--concurrency", "2", "--run-id", "warm", "--json")  # fmt: skip
    assert warm.exit_code == 0, warm.stderr

    def proposals(name: str) -> list[dict[str, Any]]:
        lines = (tmp_path / "runs" / name / "events.jsonl").read_text().splitlines()
        keep = ("index", "island", "parent", "other", "style", "opening")  # not who answered
        return [{k: e.get(k) for k in keep} for e in map(json.loads, lines)
                if e["event"] == "proposal"]  # fmt: skip

    def picks(out: str) -> list[tuple[str, float | None]]:
        return [(x["code_hash"], x["fitness"]) for x in json.loads(out)["candidates"]]

    assert proposals("cold") == proposals("warm")
    assert picks(cold.stdout) == picks(warm.stdout)
