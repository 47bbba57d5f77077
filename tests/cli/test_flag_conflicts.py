"""Flags of `minact evolve` and `rescore` that contradict each other are a usage error (exit
code 2) that names both; a setting from the environment is overridden by a flag, never a
conflict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.jobs.proposing import describe
from tests.conftest import TINY_TASKS

runner = CliRunner()


def _flat(text: str) -> str:
    """Returns a usage error's text without its box and line breaks."""
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize(
    ("more", "flag"),
    [
        (["--llm-url", "http://127.0.0.1:1/v1"], "--llm-url"),
        (["--model", "big"], "--model"),
        (["--model-weights", "1"], "--model-weights"),
        (["--replay", "llm.jsonl"], "--replay"),
    ],
)
def test_offline_and_a_model_flag_are_refused(tmp_path: Path, more: list[str], flag: str) -> None:
    args = ["evolve", "--offline", *more, "--budget", "1", "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"--offline and {flag} do not go together" in _flat(result.stderr)
    assert not (tmp_path / "runs").exists()  # refused before anything is made


def test_offline_overrides_a_url_and_model_from_the_environment(tmp_path: Path) -> None:
    env = {"MINACT_LLM_URL": "http://127.0.0.1:1/v1", "MINACT_MODEL": "big"}
    missing = tmp_path / "none.toml"
    args = ["evolve", "--offline", "--budget", "1", "--tasks", str(missing)]
    result = runner.invoke(app, args, env=env)
    # No usage error: the run goes on to its lab (missing here), with no server asked.
    assert result.exit_code == 1 and "no such tasks file" in result.stderr, result.output
    line = describe({"proposer": "offline"}, chosen=True)
    assert "no LLM configured" not in line and "--offline" in line


def test_a_model_without_a_server_is_said_unasked(tmp_path: Path) -> None:
    # A user who names a model and forgets its server learns why the mutator runs instead.
    args = ["evolve", "--budget", "1", "--tasks", str(TINY_TASKS), "--run-id", "r"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    env = {"MINACT_LLM_URL": "", "MINACT_MODEL": "qwen-0.5b"}
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("proposer:"))
    assert "the model qwen-0.5b" in line and "no server is named" in line, line
    assert "no LLM configured" not in line
    plain = describe({"proposer": "offline"}, model="offline")  # the mutator: no model unasked
    assert "no LLM configured" in plain


def test_resume_and_run_id_are_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evolve", "--resume", str(tmp_path / "r1"), "--run-id", "zz"])
    assert result.exit_code == 2, result.output
    assert "--resume and --run-id do not go together" in _flat(result.stderr)


def test_weights_that_do_not_fit_the_models_are_refused_without_a_url(tmp_path: Path) -> None:
    # No server configured: the run would go on with the offline mutator, but weights that
    # are not one per model are a usage error all the same, as "0,0" or "-1" are.
    args = ["evolve", "--model", "a,offline", "--model-weights", "1", "--budget", "1"]
    args += ["--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]
    unset: dict[str, str | None] = {"MINACT_LLM_URL": None, "MINACT_MODEL_WEIGHTS": None}
    result = runner.invoke(app, args, env=unset)
    assert result.exit_code == 2, result.output
    flat = _flat(result.stderr)
    assert "--model-weights" in flat and "1 weights for 2 model" in flat, flat
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["abcd1234", "--all-cached"], "HASH and --all-cached do not go together"),
        (["abcd1234", "--top", "3"], "HASH and --top do not go together"),
        (["--all-cached", "--top", "3"], "--all-cached and --top do not go together"),
        (["--all-cached", "--run", "r"], "--all-cached and --run do not go together"),
    ],
)
def test_rescore_refuses_two_ways_of_choosing_candidates(
    tmp_path: Path, args: list[str], said: str
) -> None:
    # Each was dropped for the other without a word: a rescore of what was not asked for.
    where = ["--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]
    result = runner.invoke(app, ["rescore", *args, "--tasks", str(TINY_TASKS), *where])
    assert result.exit_code == 2, result.output
    assert said in _flat(result.stderr), result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_rescore_takes_hashes_from_one_run_and_a_default_top(tmp_path: Path) -> None:
    # --run narrows where a HASH is looked for; --top left at its default is not "given".
    where = ["--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]
    args = ["rescore", "abcd1234", "--run", str(tmp_path / "none"), "--tasks", str(TINY_TASKS)]
    result = runner.invoke(app, [*args, *where])
    assert result.exit_code == 1 and "no such run directory" in result.stderr, result.output


def test_a_resume_keeps_its_models_over_the_environments(tmp_path: Path) -> None:
    # MINACT_MODEL left set was refused as "--model 'm2': ... leave --model out", a flag
    # the user never gave; the run's own settings are the resume's defaults. MINACT_LLM_URL
    # is said as such: it would hand the offline mutator's run to a model.
    where = ["--cache-dir", str(tmp_path / "cache")]
    args = ["evolve", "--budget", "1", "--tasks", str(TINY_TASKS), "--run-id", "r", *where]
    bare: dict[str, str | None] = {"MINACT_LLM_URL": None, "MINACT_MODEL": None}
    started = runner.invoke(app, [*args, "--runs-dir", str(tmp_path / "runs")], env=bare)
    assert started.exit_code == 0, started.stderr
    run = tmp_path / "runs" / "r"
    resume = ["evolve", "--resume", str(run), *where]
    kept = runner.invoke(app, resume, env={**bare, "MINACT_MODEL": "m2"})
    assert kept.exit_code == 0, kept.stderr
    assert json.loads((run / "run.json").read_text())["options"]["model"] is None
    typed = runner.invoke(app, [*resume, "--model", "m2"], env=bare)
    assert typed.exit_code == 1 and "--model 'm2': the run was started without it" in typed.stderr
    url = runner.invoke(app, resume, env={**bare, "MINACT_LLM_URL": "http://127.0.0.1:1/v1"})
    assert url.exit_code == 1, url.stderr
    assert "came from the offline mutator" in _flat(url.stderr)
    assert "MINACT_LLM_URL unset" in _flat(url.stderr)
