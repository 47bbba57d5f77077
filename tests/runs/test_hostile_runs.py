"""A runs folder a reviewer filled with what breaks readers: every command answers with a
one-line error or a warning, never a traceback, and the good run is still served."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS

runner = CliRunner()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Returns a runs folder with one good run and one of each kind of damage."""
    base = tmp_path_factory.mktemp("hostile")
    runs, cache = base / "runs", base / "cache"
    args = ["evolve", "--offline", "--budget", "2", "--tasks", str(TINY_TASKS), "--seed", "5"]
    result = runner.invoke(app, [*args, "--cache-dir", str(cache), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    good = next(runs.iterdir())
    good = good.rename(runs / "good")
    doc = json.loads((good / "ranking.json").read_text())
    best = next(c for c in doc["candidates"] if not c["baseline"])["code_hash"]

    def copy(name: str) -> Path:
        return Path(shutil.copytree(good, runs / name))

    (runs / "not-a-run").mkdir()
    (runs / "not-a-run" / "notes.txt").write_text("mine")
    text = (good / "run.json").read_text()
    (copy("truncated") / "run.json").write_text(text[: len(text) // 2])
    (copy("binary") / "run.json").write_bytes(bytes(range(256)) * 4)
    (copy("garbage-events") / "events.jsonl").write_bytes(bytes(range(255, -1, -1)) * 8)
    events = (good / "events.jsonl").read_bytes()
    (copy("cut-events") / "events.jsonl").write_bytes(events[:-25])
    edited = copy("hand-edited")
    doc["candidates"] = [{**c, "fitness": "good", "tasks": 3} for c in doc["candidates"]]
    (edited / "ranking.json").write_text(json.dumps(doc))
    copy("same-id")  # run.json says run_id "…" as good's does
    (runs / "loop").symlink_to("loop")
    return {"runs": runs, "cache": cache, "hash": best}


def _no_traceback(result: Any) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["show", "export"])
def test_show_and_export_serve_the_good_run_and_warn_of_the_bad(
    hostile: dict[str, Any], tmp_path: Path, command: str, caplog: pytest.LogCaptureFixture
) -> None:
    args = [command, hostile["hash"][:10], "--runs-dir", str(hostile["runs"])]
    args += ["--cache-dir", str(hostile["cache"])]
    if command == "export":
        args += ["-o", str(tmp_path / "act.py")]
    with caplog.at_level(logging.WARNING, logger="minact"):
        result = runner.invoke(app, args)
    _no_traceback(result)
    assert result.exit_code == 0 and hostile["hash"][:8] in result.output, result.output
    assert all("\n" not in m for m in caplog.messages)
    prefix = "warning: skipping run "
    skipped = [m.removeprefix(prefix) for m in caplog.messages if m.startswith(prefix)]
    assert {m.split(": ")[0] for m in skipped} == {
        str(hostile["runs"] / name) for name in ("binary", "truncated")
    }
    # A log of binary garbage is searched, and said to be so once.
    damaged = [m for m in caplog.messages if not m.startswith(prefix)]
    events = hostile["runs"] / "garbage-events" / "events.jsonl"
    assert len(damaged) == 1 and damaged[0].startswith(f"warning: {events}: skipped 17 unreadable")


@pytest.mark.parametrize(
    ("run", "code", "said"),
    [
        ("truncated", 1, "run.json: unreadable"),
        ("binary", 1, "run.json: unreadable"),
        ("loop", 1, "a symbolic link to no directory (broken or a loop)"),
        ("not-a-run", 1, "not a run directory (no run.json)"),
        ("garbage-events", 0, "wrote"),
        ("cut-events", 0, "wrote"),
        ("hand-edited", 0, "wrote"),
    ],
)
def test_report_of_each_run_is_one_line_or_a_report(
    hostile: dict[str, Any], run: str, code: int, said: str
) -> None:
    result = runner.invoke(
        app, ["report", str(hostile["runs"] / run), "--cache-dir", str(hostile["cache"])]
    )
    _no_traceback(result)
    assert result.exit_code == code and said in result.stderr, result.output
    if code:
        assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("run", ["garbage-events", "cut-events"])
def test_report_of_a_damaged_log_warns_once_and_a_cut_line_does_not(
    hostile: dict[str, Any], run: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="minact"):
        result = runner.invoke(
            app, ["report", str(hostile["runs"] / run), "--cache-dir", str(hostile["cache"])]
        )
    assert result.exit_code == 0, result.output
    damaged = [m for m in caplog.messages if "unreadable" in m]
    if run == "cut-events":  # one cut last line is what a killed run leaves: no warning
        assert damaged == []
    else:  # a ranking of nothing, said to come from a log of garbage
        events = hostile["runs"] / run / "events.jsonl"
        assert len(damaged) == 1 and damaged[0].startswith(f"warning: {events}: skipped 17")


@pytest.mark.parametrize("run", ["truncated", "binary", "loop", "not-a-run"])
def test_resume_of_an_unreadable_run_is_one_line(hostile: dict[str, Any], run: str) -> None:
    args = ["evolve", "--resume", str(hostile["runs"] / run), "--cache-dir", str(hostile["cache"])]
    result = runner.invoke(app, args)
    _no_traceback(result)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
