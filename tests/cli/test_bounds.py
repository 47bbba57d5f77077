"""Flags with a range: a value outside it is a usage error naming the flag, before any work."""

from __future__ import annotations

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
        (["score", "relu", "--threads", "100000"], "--threads", "less than or equal to 256"),
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
        "score-threads",
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
