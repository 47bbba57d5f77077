"""Flags with a range: a value outside it is a usage error naming the flag, before any work."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.cli._shared import MAX_SEEDS
from minact.lab.checks import INT_RULES
from tests.conftest import TINY_TASKS

runner = CliRunner()
DEAD = ["--model", "m", "--llm-url", "http://127.0.0.1:9/v1"]


def test_seed_counts_are_bounded_like_a_lab_files() -> None:
    assert INT_RULES["seeds"][1] == MAX_SEEDS


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["evolve", "--offline", "--seed", "9" * 300], "--seed"),
        (["evolve", "--offline", "--seed", "-1"], "--seed"),
        (["evolve", "--offline", "--confirm", "1", "--confirm-seeds", "100000"], "--confirm-seeds"),
        (["rescore", "--tasks", str(TINY_TASKS), "--seeds", "1000000"], "--seeds"),
    ],
    ids=["huge-seed", "negative-seed", "confirm-seeds", "rescore-seeds"],
)
def test_an_out_of_range_value_names_its_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    where = ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*args, *where])
    assert result.exit_code == 2, result.output
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # the box wraps lines
    assert f"Invalid value for '{flag}'" in flat
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        # A dead server: without the refusal the run would end at once on it, not train.
        (["evolve", "--tasks", "large", "--confirm", "1", *DEAD], "--confirm-seeds"),
        (["rescore", "--suite", "large"], "--seeds"),
    ],
    ids=["confirm-seeds", "rescore-seeds"],
)
def test_seeds_that_take_a_lab_past_its_work_limit_are_refused_up_front(
    tmp_path: Path, args: list[str], flag: str
) -> None:
    # 100 networks per task is within the flag's range, but the large lab's work
    # with them is past the loader's cap: refused before anything trains, as the file would be.
    where = ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*args, flag, "100", *where])
    assert result.exit_code == 1, result.output
    flat = " ".join(result.stderr.split())
    assert f"{flag} 100:" in flat and "above the limit of 1e+12" in flat
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["evolve", "--offline", "--runs-dir", ""], "--runs-dir"),
        (["evolve", "--offline", "--cache-dir", " "], "--cache-dir"),
        (["evolve", "--offline", "--tasks", ""], "--tasks"),
        (["evolve", "--offline", "--resume", ""], "--resume"),
        (["show", "abcd", "--runs-dir", ""], "--runs-dir"),
        (["report", ""], "RUN_DIR"),
        (["rescore", "--tasks", "a\0b"], "--tasks"),
    ],
    ids=["runs-dir", "cache-dir", "tasks", "resume", "show", "report", "nul"],
)
def test_an_empty_path_is_a_usage_error_not_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], flag: str
) -> None:
    # Path("") is "."; a run or a cache written among the user's own files is not what an
    # empty value (an unset shell variable, say) meant.
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())
    assert f"Invalid value for '{flag}'" in flat
    assert list(tmp_path.iterdir()) == []


def _flat(text: str) -> str:
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())  # the box wraps lines


@pytest.mark.parametrize(
    ("args", "flag", "says"),
    [
        (
            ["evolve", "--offline", "--llm-timeout", "inf"],
            "--llm-timeout",
            "less than or equal to 86400",
        ),
        (["evolve", "--offline", "--threads", "100000"], "--threads", "less than or equal to 256"),
        # A number of tokens past any model's: it reached run.json and every request.
        (
            ["evolve", "--offline", "--budget", "1", "--max-tokens", str(10**30)],
            "--max-tokens",
            "to 1000000",
        ),
        (
            ["evolve", "--offline", "--budget", "1", "--context-tokens", str(10**30)],
            "--context-tokens",
            "less than or equal to 10000000",
        ),
        # An ensemble with the mutator drew a model for each of 2 x 10**9 openings.
        (
            ["evolve", "--model", "a,offline", "--concurrency", str(10**9), *DEAD[2:]],
            "--concurrency",
            "less than or equal to 1024",
        ),
        # A run that could never end, and a number past JSON readers' integers in run.json.
        (
            ["evolve", "--offline", "--budget", str(10**30)],
            "--budget",
            "less than or equal to 1000000",
        ),
        (
            ["evolve", "--offline", "--budget", "99999999999999999999"],
            "--budget",
            "less than or equal to 1000000",
        ),
        (
            ["evolve", "--offline", "--budget", "1", "--max-calls", str(10**30)],
            "--max-calls",
            "less than or equal to 4001024",
        ),
        (["score", "relu", "--threads", "100000"], "--threads", "less than or equal to 256"),
        # Counts kept in run.json: 10**30 was taken, past JSON readers' integers.
        *[
            ([*cmd, flag, str(10**30)], flag, f"less than or equal to {bound}")
            for cmd, flag, bound in [
                (["evolve", "--offline"], "--prompt-chars", "40000000"),
                (["evolve", "--offline"], "--follow-ups", "100"),
                (["evolve", "--offline"], "--llm-retries", "100"),
                (["evolve", "--offline"], "--batch-size", "4096"),
                (["evolve", "--offline"], "--validate-top", "1000000"),
                (["evolve", "--offline"], "--confirm", "1000000"),
                (["score", "relu"], "--batch-size", "4096"),
                (["rescore", "--suite", "classic"], "--top", "1000000"),
            ]
        ],
        # Digits int() refuses: a superscript, and more than the 4300 it converts.
        (["score", "relu", "--workers", "\u00b2"], "--workers", "give a number of workers"),
        (["score", "relu", "--workers", "9" * 5000], "--workers", "give a number of workers"),
        (
            ["rescore", "--suite", "classic", "--threads", "257"],
            "--threads",
            "less than or equal to 256",
        ),
        # Each weight finite, their sum not: the draw would divide by inf.
        (
            ["evolve", "--model", "a,b", "--model-weights", "1e308,1e308", *DEAD[2:]],
            "--model-weights",
            "the weights' sum is not finite",
        ),
        # An empty item would shift the models against their URLs or weights.
        (["evolve", "--model", "a,,b", *DEAD[2:]], "--model", "has an empty item"),
        (["evolve", *DEAD[:2], "--llm-url", "http://127.0.0.1:9/v1,"], "--llm-url", "empty item"),
        (["evolve", *DEAD[:2], "--llm-url", "127.0.0.1:9/v1"], "--llm-url", "give an http://"),
        (["evolve", *DEAD[:2], "--llm-url", "file:///etc/passwd"], "--llm-url", "an http://"),
        (["evolve", *DEAD[:2], "--llm-url", "http://a b/v1"], "--llm-url", "holds a space"),
        (["evolve", *DEAD[:2], "--llm-url", "http://h:99999/v1"], "--llm-url", "is no URL"),
    ],
    ids=[
        "timeout-inf",
        "threads",
        "max-tokens",
        "context-tokens",
        "concurrency",
        "budget",
        "budget-20-digits",
        "max-calls",
        "score-threads",
        *[f"{c}-run-json" for c in ("prompt-chars", "follow-ups", "retries", "batch")],
        *[f"{c}-run-json" for c in ("validate-top", "confirm", "score-batch", "top")],
        "workers-superscript",
        "workers-5000-digits",
        "rescore-threads",
        "weights-sum",
        "model-gap",
        "url-gap",
        "no-scheme",
        "file",
        "space",
        "port",
    ],
)
def test_a_bad_value_is_a_usage_error_before_any_work(
    tmp_path: Path, args: list[str], flag: str, says: str
) -> None:
    where = ["--cache-dir", str(tmp_path / "cache")]
    where += ["--runs-dir", str(tmp_path / "runs")] if args[0] != "score" else []
    result = runner.invoke(app, [*args, *where])
    assert result.exit_code == 2, result.output
    flat = _flat(result.stderr)
    assert f"Invalid value for '{flag}'" in flat or f"Invalid value for {flag}" in flat, flat
    assert says in flat
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("offline", [False, True], ids=["llm", "offline"])
@pytest.mark.parametrize(
    "url", ["http://user:s3cr3t-pw@127.0.0.1:9/v1", "http://user:s3cr3t-pw@[::1/v1"]
)
def test_a_password_in_the_url_is_refused_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, offline: bool
) -> None:
    # An offline run keeps MINACT_LLM_URL in run.json too: the password would be written.
    monkeypatch.setenv("MINACT_LLM_URL", url)
    args = ["evolve", "--budget", "1", "--tasks", str(TINY_TASKS), "--model", "m"]
    args += ["--offline"] if offline else []
    args += ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "s3cr3t" not in result.output
    assert "holds a password" in _flat(result.stderr) and "user:***@" in result.stderr
    assert not (tmp_path / "runs").exists()


HASH_COMMANDS = [["show"], ["export"], ["rescore", "--suite", "classic"]]


@pytest.mark.parametrize("command", HASH_COMMANDS, ids=["show", "export", "rescore"])
@pytest.mark.parametrize(
    "given", ["zzzz", "abc", "12-4", "a" * 65], ids=["not-hex", "short", "dash", "too-long"]
)
def test_a_hash_of_the_wrong_form_is_a_usage_error_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], given: str
) -> None:
    monkeypatch.chdir(tmp_path)  # export writes into the current folder
    where = ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*command, given, *where])
    assert result.exit_code == 2, result.output
    flat = _flat(result.stderr)
    assert f"Invalid value for HASH: {given!r} is not a hash prefix" in flat, flat
    assert "4 to 64 hex digits (0-9, a-f)" in flat
    assert list(tmp_path.iterdir()) == []  # no cache made, nothing trained or written


@pytest.mark.parametrize("command", HASH_COMMANDS, ids=["show", "export", "rescore"])
def test_a_hash_prefix_that_matches_nothing_still_could_not_be_done(
    tmp_path: Path, command: list[str]
) -> None:
    # Of the right form (upper case and spaces are forgiven): the lookup ran, and failed.
    where = ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*command, " ABCD ", *where])
    assert result.exit_code == 1, result.output
    said = "error: no candidate's hash starts with 'abcd' (in the runs or the cache)\n"
    assert result.stderr == said


def _file(tmp_path: Path) -> Path:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    return blocker


@pytest.mark.parametrize("command", [["evolve", "--offline", "--budget", "1"], ["score", "relu"]])
@pytest.mark.parametrize("from_env", [True, False], ids=["env", "flag"])
@pytest.mark.parametrize("under", [False, True], ids=["file", "under-a-file"])
def test_a_cache_dir_that_is_a_file_is_a_usage_error_naming_where_it_came_from(
    tmp_path: Path, command: list[str], from_env: bool, under: bool
) -> None:
    blocker = _file(tmp_path)
    cache = blocker / "cache" if under else blocker
    args = [*command, "--tasks", str(TINY_TASKS), "--runs-dir", str(tmp_path / "runs")]
    args = args if command[0] == "evolve" else args[:-2]
    env = {"MINACT_CACHE_DIR": str(cache)} if from_env else {}
    result = runner.invoke(app, args + ([] if from_env else ["--cache-dir", str(cache)]), env=env)
    assert result.exit_code == 2, result.output
    tight = "".join(_flat(result.stderr).split())  # a long path wraps anywhere in the box
    named = "MINACT_CACHE_DIR" if from_env else "'--cache-dir'"
    said = f"{cache}: {blocker}" if under else str(cache)
    told = f"Invalid value for {named}: {said} is a file, not a directory"
    assert "".join(told.split()) in tight, result.stderr
    assert "Errno" not in result.output
    assert sorted(tmp_path.iterdir()) == [blocker]  # no runs folder: refused before any work


def test_a_file_called_cache_where_the_default_cache_goes_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINACT_CACHE_DIR", raising=False)
    (tmp_path / "cache").write_text("")
    result = runner.invoke(app, ["score", "relu", "--tasks", str(TINY_TASKS)])
    assert result.exit_code == 2, result.output
    flat = _flat(result.stderr)
    assert "Invalid value for '--cache-dir': cache is a file, not a directory" in flat, flat
    assert "./cache is the default cache folder" in flat


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_cache_dir_that_cannot_be_made_says_why_without_an_errno(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        args = ["score", "relu", "--tasks", str(TINY_TASKS), "--cache-dir", str(locked / "c")]
        result = runner.invoke(app, args)
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 1, result.output
    flat = " ".join(result.stderr.split())
    assert f"cannot open the cache at {locked / 'c'}: Permission denied;" in flat, flat
    assert "Errno" not in flat
