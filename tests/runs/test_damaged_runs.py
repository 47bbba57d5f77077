"""Damaged, old and hand-edited run directories, driven through the CLI as a user meets them.

A runs folder is the user's: runs get copied, edited, interrupted and mixed. One run that
cannot be read must not break `show`, `export` and `rescore` for the others (it is skipped
with a one-line warning, and is an error only where it is named); an event of the wrong
shape is skipped and counted; a run.json value of the wrong type is named with its key.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS

runner = CliRunner()

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One finished offline run (2 candidates on the tiny lab), shared by the tests: each
    test copies it."""
    base = tmp_path_factory.mktemp("damaged")
    args = ["evolve", "--offline", "--budget", "2", "--tasks", str(TINY_TASKS)]
    args += ["--cache-dir", str(base / "cache"), "--runs-dir", str(base / "runs")]
    result = runner.invoke(app, [*args, "--run-id", "good", "--seed", "1"])
    assert result.exit_code == 0, result.stderr
    run = base / "runs" / "good"
    doc = json.loads((run / "ranking.json").read_text())
    best = next(c for c in doc["candidates"] if c["status"] == "ok" and not c["baseline"])
    hashes = [c["code_hash"] for c in doc["candidates"] if c["code_hash"]]
    return {"run": run, "cache": base / "cache", "hash": best["code_hash"], "hashes": hashes}


def _copy(finished: dict[str, Any], runs: Path, name: str) -> Path:
    return Path(shutil.copytree(finished["run"], runs / name))


def _edit_run(run: Path, edit: Edit) -> None:
    data = json.loads((run / "run.json").read_text())
    edit(data)
    (run / "run.json").write_text(json.dumps(data))


def _edit_events(run: Path, edit: Callable[[list[dict[str, Any]]], None]) -> None:
    path = run / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    edit(events)
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def _invoke(finished: dict[str, Any], runs: Path, *args: str) -> Any:
    return runner.invoke(
        app, [*args, "--runs-dir", str(runs), "--cache-dir", str(finished["cache"])]
    )


def _truncate(run: Path) -> None:
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text[: len(text) // 3])


def _set(key: str, value: Any) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        _edit_run(run, lambda d: d.__setitem__(key, value))

    return damage


def _drop(key: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        _edit_run(run, lambda d: d.pop(key))

    return damage


def _nested(run: Path) -> None:
    (run / "run.json").write_text("[" * 100_000 + "]" * 100_000)  # past json's recursion


BROKEN = {
    "truncated": (_truncate, "unreadable"),
    "nested": (_nested, "unreadable"),
    "old": (_drop("lab_summary"), "no lab summary; the run predates reports"),
    "bad_summary": (_set("lab_summary", {"lab": 5, "tasks": 7}), "key 'lab_summary.lab'"),
    "bad_counters": (_set("counters", "x"), "key 'counters' has a bad value ('x'"),
    "bad_created": (_set("created", "yesterday"), "key 'created' has a bad value"),
    # A resume of a finished run reads a model's context to fit its prompt.
    "bad_context": (
        _set("models", [{"name": "m", "weight": 1.0, "context": 5}]),
        "key 'models[0].context' has a bad value (5: expected [tokens, source])",
    ),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_run_is_skipped_with_a_warning_and_the_others_served(
    finished: dict[str, Any], tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    _copy(finished, runs, "good")
    damage, why = BROKEN[kind]
    damage(_copy(finished, runs, "broken"))
    prefix = finished["hash"][:10]
    with caplog.at_level(logging.WARNING, logger="minact"):
        shown = _invoke(finished, runs, "show", prefix)
        target = tmp_path / "act.py"
        exported = _invoke(finished, runs, "export", prefix, "-o", str(target))
    assert shown.exit_code == 0, shown.stderr
    assert finished["hash"] in shown.stdout and f"from run {runs / 'good'}" in shown.stdout
    assert exported.exit_code == 0, exported.stderr
    assert "def act_" in target.read_text()
    warnings = [m for m in caplog.messages if m.startswith("warning: skipping run")]
    assert len(warnings) == 2  # once per command, naming the run and why
    assert all(str(runs / "broken") in m and why in m for m in warnings), warnings
    assert all("\n" not in m for m in warnings)


@pytest.mark.parametrize("kind", ["truncated", "old", "bad_counters"])
def test_a_broken_run_named_explicitly_is_an_error(
    finished: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    runs = tmp_path / "runs"
    damage, why = BROKEN[kind]
    broken = _copy(finished, runs, "broken")
    damage(broken)
    result = _invoke(finished, runs, "show", finished["hash"][:10], "--run", str(broken))
    assert result.exit_code == 1 and why in result.stderr
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["report", str(broken), "--cache-dir", str(finished["cache"])])
    assert result.exit_code == 1 and why in result.stderr and "error:" in result.stderr


def test_rescore_takes_the_latest_run_it_can_read(
    finished: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    _copy(finished, runs, "good")
    newer = _copy(finished, runs, "newer")
    _drop("lab_summary")(newer)
    stat = (runs / "good" / "run.json").stat()
    os.utime(newer / "run.json", (stat.st_atime + 60, stat.st_mtime + 60))  # the latest
    args = ["rescore", "--tasks", str(TINY_TASKS), "--top", "1", "--workers", "1"]
    with caplog.at_level(logging.WARNING, logger="minact"):
        result = _invoke(finished, runs, *args)
    assert result.exit_code == 0, result.stderr
    assert f"rescore report: {runs / 'good'}/rescore-" in result.stderr
    assert any(str(newer) in m and "predates reports" in m for m in caplog.messages)


def test_the_warning_is_one_line_on_stderr(finished: dict[str, Any], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _copy(finished, runs, "good")
    _truncate(_copy(finished, runs, "broken"))
    args = ["show", finished["hash"][:10], "--runs-dir", str(runs)]
    args += ["--cache-dir", str(finished["cache"])]
    done = subprocess.run(
        [sys.executable, "-m", "minact", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: skipping run {runs / 'broken'}: ")
    assert finished["hash"] in done.stdout


def _first(kind: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["event"] == kind)


def _last(kind: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return [e for e in events if e["event"] == kind][-1]


# Valid JSON of the wrong shape, one edit each, as the reviewer made them.
WRONG_SHAPES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "seed_score_string": lambda ev: _first("seed", ev).__setitem__("score", "x"),
    "seed_score_list": lambda ev: _first("seed", ev).__setitem__("score", [1, 2]),
    "seed_tasks_string": lambda ev: _first("seed", ev)["score"].__setitem__("tasks", "x"),
    "seed_tasks_list": lambda ev: _first("seed", ev)["score"].__setitem__("tasks", [1, 2]),
    "seed_task_short": lambda ev: _first("seed", ev)["score"].__setitem__(
        "tasks", {"sine": [1, 2]}
    ),
    "outcome_score_string": lambda ev: _last("outcome", ev).__setitem__("score", "x"),
    "outcome_tasks_list": lambda ev: _last("outcome", ev)["score"].__setitem__("tasks", [1, 2]),
    "outcome_parent_list": lambda ev: _last("outcome", ev).__setitem__("parent", [1]),
    "proposal_cut_list": lambda ev: _first("proposal", ev).__setitem__("cut", [1]),
    "reply_string": lambda ev: _first("reply", ev).__setitem__("reply", "x"),
    "reply_latency_string": lambda ev: _first("reply", ev)["reply"].__setitem__("latency", "x"),
}


@pytest.mark.parametrize("shape", list(WRONG_SHAPES))
def test_events_of_the_wrong_shape_are_skipped_and_counted_once(
    finished: dict[str, Any], tmp_path: Path, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    run = _copy(finished, runs, "edited")
    _edit_events(run, WRONG_SHAPES[shape])
    with caplog.at_level(logging.WARNING, logger="minact"):
        report = runner.invoke(app, ["report", str(run), "--cache-dir", str(finished["cache"])])
        assert report.exit_code == 0, report.output
        assert "Traceback" not in report.output
        assert json.loads((run / "ranking.json").read_text())["candidates"]
        warned = [m for m in caplog.messages if "of the wrong shape" in m]
        assert warned == [f"warning: {run / 'events.jsonl'}: skipped 1 event of the wrong shape"
                          " (valid JSON that is not what minact wrote)"]  # fmt: skip
        caplog.clear()
        prefix = finished["hash"][:10]
        shown = _invoke(finished, runs, "show", prefix)
        exported = _invoke(finished, runs, "export", prefix, "-o", str(tmp_path / "act.py"))
    assert shown.exit_code == 0, shown.output
    assert finished["hash"] in shown.stdout
    assert exported.exit_code == 0, exported.output
    assert len([m for m in caplog.messages if "skipped 1 event" in m]) == 2  # once a command


def test_rescore_of_several_hashes_says_once_what_it_skipped(
    finished: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    run = _copy(finished, runs, "edited")
    _edit_events(run, WRONG_SHAPES["reply_latency_string"])
    _drop("lab_summary")(_copy(finished, runs, "old"))
    hashes = [h[:10] for h in finished["hashes"][:3]]
    args = ["rescore", *hashes, "--tasks", str(TINY_TASKS), "--workers", "1"]
    with caplog.at_level(logging.WARNING, logger="minact"):
        result = _invoke(finished, runs, *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert len([m for m in caplog.messages if "skipped 1 event" in m]) == 1
    assert len([m for m in caplog.messages if "skipping run" in m]) == 1


def test_a_malformed_check_event_is_skipped(finished: dict[str, Any], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = _copy(finished, runs, "checked")
    with (run / "events.jsonl").open("a") as f:
        f.write(json.dumps({"event": "confirmation", "lab_summary": {}, "scores": ["x"]}) + "\n")
        f.write(json.dumps({"event": "validation", "lab_summary": [], "scores": [{"a": 1}]}) + "\n")
    report = runner.invoke(app, ["report", str(run), "--cache-dir", str(finished["cache"])])
    assert report.exit_code == 0, report.output
    assert "checks" not in json.loads((run / "ranking.json").read_text())


def test_a_lab_summary_without_some_scored_tasks_is_still_shown(
    finished: dict[str, Any], tmp_path: Path
) -> None:
    # A hand-edited run.json whose lab lists fewer tasks than the scores hold: the tasks it
    # no longer names count towards no family, and the commands still answer.
    runs = tmp_path / "runs"
    run = _copy(finished, runs, "edited")
    _edit_run(run, lambda d: d["lab_summary"].__setitem__("tasks", d["lab_summary"]["tasks"][:1]))
    shown = _invoke(finished, runs, "show", finished["hash"][:10])
    assert shown.exit_code == 0, shown.output
    assert finished["hash"] in shown.stdout
    reported = runner.invoke(app, ["report", str(run), "--cache-dir", str(finished["cache"])])
    assert reported.exit_code == 0, reported.output
    doc = json.loads((run / "ranking.json").read_text())
    assert all(len(c["families"]) <= 1 for c in doc["candidates"])


def test_an_export_quoting_backslashes_and_controls_still_compiles(
    finished: dict[str, Any], tmp_path: Path
) -> None:
    # The docstring quotes the run's path and the proposal's note: `\N{` or a NUL there
    # must not stop the module from compiling.
    import ast

    runs = tmp_path / "runs"
    run = _copy(finished, runs, "odd")
    note = "C:\\Users\\me \\N{x} \x00 \x1b[2J"

    def edit(events: list[dict[str, Any]]) -> None:
        for e in events:
            if e["event"] == "outcome":
                e["note"] = note

    _edit_events(run, edit)
    target = tmp_path / "act.py"
    result = _invoke(finished, runs, "export", finished["hash"][:10], "-o", str(target))
    assert result.exit_code == 0, result.output
    doc = ast.get_docstring(ast.parse(target.read_text())) or ""
    assert "C:\\Users\\me \\N{x} \\x00 \\x1b[2J" in doc
