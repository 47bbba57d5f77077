"""A run killed after its "end" line but before its report, then resumed.

The kill is made where it happens: a child process runs `minact evolve` with the report
writer (or the log's closing, just after the end line) replaced by `os._exit`, so nothing
after that point runs, as under SIGKILL. The resume must write the missing report and
run.json without a second "end" line (nor a "resume" line: the session adds nothing), and
logs that already hold two end lines (written by earlier versions) must still replay.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.runs.history import History
from minact.runs.rundir import RunLog
from tests.conftest import TINY_TASKS, offline_run

runner = CliRunner()

# The child: `minact evolve` with one step replaced by an immediate exit (no cleanup at all).
_KILLED_AT = {
    # after the end line, as the report files are written: run.json, written after them,
    # still says "running"
    "report": "from minact.report import files as m; m.write = lambda *a, **k: os._exit(9)",
    # right after the end line: run.json still says "running"
    "end_line": "from minact.runs import rundir as m; m.RunLog.close = lambda *a: os._exit(9)",
}


def _killed_run(base: Path, at: str) -> Path:
    """Runs a 2-candidate offline search in a child killed at `at`; returns its run dir."""
    args = ["evolve", "--offline", "--budget", "2", "--tasks", str(TINY_TASKS), "--seed", "2"]
    args += ["--cache-dir", str(base / "cache"), "--runs-dir", str(base / "runs")]
    args += ["--run-id", "r"]
    code = f"import os\n{_KILLED_AT[at]}\nfrom minact.cli import app\napp(args={args!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr
    return base / "runs" / "r"


def _events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def _resume(run: Path, cache: Path, *more: str) -> Any:
    return runner.invoke(app, ["evolve", "--resume", str(run), "--cache-dir", str(cache), *more])


@pytest.mark.slow
@pytest.mark.parametrize("at", list(_KILLED_AT))
def test_a_resume_after_the_end_line_writes_the_report_and_no_second_end(
    tmp_path: Path, at: str
) -> None:
    run = _killed_run(tmp_path, at)
    logged = (run / "events.jsonl").read_bytes()
    assert _events(run)[-1]["event"] == "end" and not (run / "report.md").exists()
    assert json.loads((run / "run.json").read_text())["status"] == "running"

    result = _resume(run, tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert (run / "events.jsonl").read_bytes() == logged  # not a line more
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished" and meta["counters"]["evaluated"] == 2
    doc = json.loads((run / "ranking.json").read_text())
    assert len([c for c in doc["candidates"] if not c["baseline"]]) == 2
    assert "finished" in (run / "report.md").read_text()

    # Resumed again with a larger budget, the run goes on as any resumed run does.
    more = _resume(run, tmp_path / "cache", "--budget", "3")
    assert more.exit_code == 0, more.output
    kinds = [e["event"] for e in _events(run)]
    assert kinds.count("end") == 2 and kinds.count("resume") == 1
    assert kinds.index("resume") > kinds.index("end") and kinds[-1] == "end"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished offline run (2 candidates on the tiny lab); each test copies it."""
    base = tmp_path_factory.mktemp("ended")
    return {"run": offline_run(base, budget=2, seed=2, run_id="r"), "cache": base / "cache"}


# What earlier versions left: a resume of such a run logged "resume" and "end" again.
TWO_ENDS = {
    "resume_between": [{"event": "resume", "proposer": "offline", "time": 2.0}],
    "back_to_back": [],
}


@pytest.mark.parametrize("between", list(TWO_ENDS))
def test_a_log_with_two_end_lines_replays_reports_and_resumes(
    finished: dict[str, Path], tmp_path: Path, between: str
) -> None:
    run = Path(shutil.copytree(finished["run"], tmp_path / "runs" / "r"))
    once = History.from_events(RunLog.open(run).events())
    with (run / "events.jsonl").open("a") as f:
        for e in [*TWO_ENDS[between], {"event": "end", "status": "finished", "time": 3.0}]:
            f.write(json.dumps(e) + "\n")
    logged = (run / "events.jsonl").read_bytes()
    twice = History.from_events(RunLog.open(run).events())
    assert twice.ended == "finished" and twice.skipped == 0
    assert twice.scored() == once.scored() and twice.counters() == once.counters()

    cache = ["--cache-dir", str(finished["cache"])]
    reported = runner.invoke(app, ["report", str(run), *cache])
    assert reported.exit_code == 0, reported.output
    best = next(c for c in json.loads((run / "ranking.json").read_text())["candidates"])
    shown = runner.invoke(app, ["show", best["code_hash"][:10], "--runs-dir", str(run.parent)])
    assert shown.exit_code == 0 and best["code_hash"] in shown.stdout, shown.output
    resumed = _resume(run, finished["cache"])
    assert resumed.exit_code == 0, resumed.output
    assert (run / "events.jsonl").read_bytes() == logged


@pytest.mark.parametrize(
    ("tail", "ended"),
    [
        ([{"event": "end", "status": "finished"}], "finished"),
        ([{"event": "end", "status": "interrupted"}, {"event": "end"}], ""),
        ([{"event": "end", "status": "finished"}, {"event": "resume"}], None),
        ([{"event": "end", "status": 5}], ""),
        ([], None),
    ],
    ids=["end", "two-ends", "resumed", "bad-status", "no-end"],
)
def test_history_ended_is_the_last_lines_status(
    tail: list[dict[str, Any]], ended: str | None
) -> None:
    events = [{"event": "start"}, *tail]
    assert History.from_events(events).ended == ended
