"""A run folder a start left behind, and a run.json that is no file, through the commands.

A run killed between the creation of its folder and its first run.json (kill -9 at start, a
full disk) leaves a folder with nothing in it, or only the temporary file of a run.json cut
short. `evolve --resume` of it and `evolve --run-id` of its id used to refuse it, each
sending the user to the other; `show` and `export` passed it, and runs whose run.json is a
folder or a FIFO, without a word.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.runs.rundir import RunLog
from tests.conftest import TINY_TASKS, offline_run, raised_on_fifo

runner = CliRunner()
NO_LLM_ENV = {"MINACT_LLM_URL": None, "MINACT_MODEL": None, "MINACT_API_KEY": None,
              "OPENAI_API_KEY": None}  # fmt: skip
LEFTOVER = ".run.json.4242.0123abcd.tmp"  # write_atomic's name for run.json, cut short


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One finished offline run on the tiny lab, its cache, and its best candidate's hash."""
    base = tmp_path_factory.mktemp("lifecycle")
    run = offline_run(base, budget=1, seed=3, run_id="good")
    doc = json.loads((run / "ranking.json").read_text())
    return {"run": run, "cache": base / "cache", "hash": doc["candidates"][0]["code_hash"]}


def _killed_at_start(runs: Path, run_id: str) -> Path:
    """Returns runs/run_id as a start killed while writing its first run.json leaves it."""
    folder = runs / run_id
    folder.mkdir(parents=True)
    (folder / LEFTOVER).write_text('{"run_id": "r1", "sta')
    return folder


def _evolve(cache: Path, *args: str) -> Any:
    common = ["--offline", "--tasks", str(TINY_TASKS), "--cache-dir", str(cache)]
    common += ["--budget", "1", "--workers", "1"]
    return runner.invoke(app, ["evolve", *common, *args], env=NO_LLM_ENV)


def _nothing_recorded(folder: Path) -> str:
    return (
        f"error: {folder}: not a run directory (no run.json): its run recorded nothing (it "
        "stopped before writing run.json), so there is nothing to resume or report; "
        "`minact evolve --runs-dir "
        f"{folder.parent} --run-id {folder.name}` and the settings it was started with start "
        "it afresh there, or remove the folder\n"
    )


def test_a_run_that_recorded_nothing_starts_afresh_under_its_id(
    finished: dict[str, Any], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    folder = _killed_at_start(runs, "r1")
    # No settings were recorded: a resume would run a search the user did not ask for.
    result = _evolve(finished["cache"], "--resume", str(folder))
    assert result.exit_code == 1
    assert result.stderr == _nothing_recorded(folder)
    assert [p.name for p in folder.iterdir()] == [LEFTOVER]  # left as it was
    result = _evolve(finished["cache"], "--runs-dir", str(runs), "--run-id", "r1")
    assert result.exit_code == 0, result.output
    assert f"note: {folder} holds no run.json" in result.stderr
    assert "starts afresh there" in result.stderr
    run = json.loads((folder / "run.json").read_text())
    assert (run["run_id"], run["status"]) == ("r1", "finished")
    assert (folder / "report.md").is_file()
    assert not (folder / LEFTOVER).exists()  # the cut-short write is gone
    assert sorted(p.name for p in runs.iterdir()) == ["r1"]  # no r1-2


def test_a_folder_of_the_users_is_not_taken_for_a_run(
    finished: dict[str, Any], tmp_path: Path
) -> None:
    mine = tmp_path / "runs" / "notes"
    mine.mkdir(parents=True)
    (mine / "todo.txt").write_text("kept")
    result = _evolve(finished["cache"], "--run-id", "notes", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 1
    # Not "pass --resume": a resume of it would refuse it too.
    assert f"error: {mine} exists and holds no run (no run.json); give another --run-id" in (
        result.stderr
    )
    assert sorted(p.name for p in mine.iterdir()) == ["todo.txt"]


def test_report_of_a_run_that_recorded_nothing_says_what_to_do(
    finished: dict[str, Any], tmp_path: Path
) -> None:
    folder = _killed_at_start(tmp_path / "runs", "r1")
    result = runner.invoke(app, ["report", str(folder), "--cache-dir", str(finished["cache"])])
    assert result.exit_code == 1
    assert result.stderr == _nothing_recorded(folder)
    with RunLog(folder).held():  # a start that has not written its run.json yet
        result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {folder}: not a run directory yet (no run.json): its run is starting\n"
    )


def _special_runs(finished: dict[str, Any], runs: Path) -> dict[str, Path]:
    """Returns runs beside a copy of the good one: run.json a folder, a FIFO; none at all."""
    shutil.copytree(finished["run"], runs / "good")
    folder = Path(shutil.copytree(finished["run"], runs / "a-folder"))
    (folder / "run.json").unlink()
    (folder / "run.json").mkdir()
    made = {"a-folder": folder}
    if hasattr(os, "mkfifo"):
        fifo = Path(shutil.copytree(finished["run"], runs / "a-fifo"))
        (fifo / "run.json").unlink()
        os.mkfifo(fifo / "run.json")  # nobody writes to it: a reader must not open it
        made["a-fifo"] = fifo
    made["killed"] = _killed_at_start(runs, "killed")
    (runs / "rescore-tiny").mkdir()  # a rescore's folder: no run, passed in silence
    (runs / "rescore-tiny" / "ranking.json").write_text("{}")
    return made


KINDS = {"a-folder": "(a directory)", "a-fifo": "(a FIFO (named pipe))"}


@pytest.mark.parametrize("command", ["export", "show"])
def test_runs_passed_by_are_named_with_why(
    finished: dict[str, Any], tmp_path: Path, command: str, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    special = _special_runs(finished, runs)
    args = [command, finished["hash"][:12], "--runs-dir", str(runs)]
    args += ["--cache-dir", str(finished["cache"])]
    args += ["-o", str(tmp_path / "act.py")] if command == "export" else []
    with caplog.at_level(logging.WARNING, logger="minact"):  # printed on stderr as it is
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    warnings = caplog.messages
    assert len(warnings) == len(special), result.stderr
    for name, run in special.items():
        (line,) = [w for w in warnings if w.startswith(f"warning: skipping run {run}: ")]
        if name in KINDS:
            assert line.endswith(
                f"cannot read {run / 'run.json'}: it is not a regular file {KINDS[name]}"
            )
        else:
            assert "its run recorded nothing" in line and f"--run-id {run.name}`" in line
    assert not any("rescore-tiny" in w for w in warnings)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_report_and_resume_of_a_run_json_that_is_no_file(
    finished: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    if kind == "a-fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    run = _special_runs(finished, tmp_path / "runs")[kind]
    said = f"cannot read {run / 'run.json'}: it is not a regular file {KINDS[kind]}"
    for args in (["report", str(run)], ["evolve", "--offline", "--resume", str(run)]):
        result = runner.invoke(app, [*args, "--cache-dir", str(finished["cache"])])
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr == f"error: {said}\n", args


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_recording_that_is_no_file_is_refused_before_any_reply(
    finished: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    # A FIFO hung `--record` for good; a folder cost every reply ("the proposer failed"),
    # and the run ended as if its LLM had failed.
    if kind == "a-fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    run = Path(shutil.copytree(finished["run"], tmp_path / "good"))
    record = run / "llm.jsonl"
    os.mkfifo(record) if kind == "a-fifo" else record.mkdir()
    args = ["--resume", str(run), "--record", "--budget", "3"]
    results: list[Any] = []

    def evolve(_: Path) -> None:
        results.append(_evolve(finished["cache"], *args))

    assert raised_on_fifo(record, evolve) is None
    (result,) = results
    said = f"--record: cannot write {record}: it is not a regular file {KINDS[kind]}; move it away"
    assert result.exit_code == 1, result.output
    assert result.stderr.endswith(f"error: {said}\n"), result.stderr
    meta = json.loads((run / "run.json").read_text())
    assert (meta["status"], meta["message"]) == ("failed", said)  # not left "running"


def test_a_recording_of_one_cut_record_is_mended(finished: dict[str, Any], tmp_path: Path) -> None:
    # A kill in the first record leaves no newline at all; the mend reads only the file's
    # end (a recording of a long run is large), back to the start here, and drops it all.
    run = Path(shutil.copytree(finished["run"], tmp_path / "good"))
    (run / "llm.jsonl").write_text('{"index": 0, "tu')
    result = _evolve(finished["cache"], "--resume", str(run), "--record", "--budget", "3")
    assert result.exit_code == 0, result.output
    text = (run / "llm.jsonl").read_text()
    assert not text.startswith('{"index": 0, "tu')  # the cut record is gone
    records = [json.loads(line) for line in text.splitlines()]  # each a record of its own
    assert records and all(r["reply"]["error"] is None for r in records)
