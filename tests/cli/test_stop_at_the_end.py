"""A stop (Ctrl-C, SIGTERM) that comes once the search has ended: run.json, the ranking and
the report must agree whichever moment it lands, and the report keeps its curves.

A run writes its report first and run.json, saying how it ended, last; the first stop
waits for both, a second one while the files are written stops at once and leaves run.json
saying that the report is missing (`minact report` or a --resume writes it). A run stopped
during the search draws the curves of its best candidates as `minact report` would,
although the stop ended the workers that trained them.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.seeds import SEEDS
from tests.conftest import TINY_TASKS

pytestmark = pytest.mark.slow

runner = CliRunner()


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the built-ins' scores on the tiny lab (and no curve): each test
    copies it, so that no run trains them again and every curve is drawn afresh."""
    cache = tmp_path_factory.mktemp("scored") / "cache"
    args = ["score", *SEEDS, "--tasks", str(TINY_TASKS), "--cache-dir", str(cache)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return cache


# The child's report files take their time: a stop surely comes while they are written.
_SLOW_FILES = """
import time
from minact.report import files
write = files.write
files.write = lambda *a, **k: (time.sleep(30), write(*a, **k))[1]
"""


def _start(tmp_path: Path, scored: Path, budget: int, patch: str = "") -> subprocess.Popen[str]:
    cache = tmp_path / "cache"
    shutil.copytree(scored, cache)
    args = ["evolve", "--offline", "--budget", str(budget), "--tasks", str(TINY_TASKS),
            "--cache-dir", str(cache), "--runs-dir", str(tmp_path / "runs"), "--run-id", "r",
            "--seed", "3", "--workers", "1"]  # fmt: skip
    code = f"{patch}\nfrom minact.cli import app\napp(args={args!r}, prog_name='minact')"
    cmd = [sys.executable, "-c", code]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _events(run: Path) -> list[dict[str, Any]]:
    try:
        lines = (run / "events.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.endswith("}")]


def _wait_for(proc: subprocess.Popen[str], run: Path, ready: Any) -> None:
    deadline = time.monotonic() + 300
    while not ready(_events(run)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not get there"
        time.sleep(0.01)


def _ended(events: list[dict[str, Any]]) -> bool:
    return any(e["event"] == "end" for e in events)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_once_the_search_ended_waits_for_the_report_and_its_curves(
    tmp_path: Path, scored: Path, sig: signal.Signals
) -> None:
    proc = _start(tmp_path, scored, 2)
    run = tmp_path / "runs" / "r"
    _wait_for(proc, run, _ended)
    proc.send_signal(sig)  # the report is being written now: curves, figures, files
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "stopping once the run's report is written" in stderr
    assert stderr.rstrip().endswith("stopped once the run had ended and its report was written")
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished", meta
    ranking = json.loads((run / "ranking.json").read_text())
    assert ranking["run"]["status"] == "finished"  # the report says what run.json says
    report = (run / "report.md").read_text()
    assert "**finished**" in report and "no curve for" not in report, report
    assert (run / "plots" / "activations.svg").is_file()


def test_a_second_stop_leaves_the_run_marked_for_its_report_and_a_resume_writes_it(
    tmp_path: Path, scored: Path
) -> None:
    proc = _start(tmp_path, scored, 2, _SLOW_FILES)
    run = tmp_path / "runs" / "r"
    _wait_for(proc, run, _ended)
    proc.send_signal(signal.SIGINT)
    time.sleep(3.0)  # the curves are drawn: the files are being written
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert not (run / "ranking.json").exists()
    meta = json.loads((run / "run.json").read_text())
    # Never "finished" without its report: the run says what is missing and how to write it.
    assert meta["status"] == "interrupted", meta
    assert meta["message"].startswith("stopped while its report was written, after the search")
    assert f"`minact report {run}` writes the report" in meta["message"]
    last = stderr.rstrip().splitlines()[-1]
    assert last == f"interrupted: {meta['message']}"

    again = ["evolve", "--resume", str(run), "--cache-dir", str(tmp_path / "cache")]
    resumed = runner.invoke(app, again)
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert json.loads((run / "ranking.json").read_text())["run"]["status"] == "finished"
    assert "no curve for" not in (run / "report.md").read_text()


def test_a_search_stopped_midway_still_plots_its_best_candidates(
    tmp_path: Path, scored: Path
) -> None:
    proc = _start(tmp_path, scored, 500)
    run = tmp_path / "runs" / "r"

    def two_new(events: list[dict[str, Any]]) -> bool:
        scores = [e.get("score") or {} for e in events if e["event"] == "outcome"]
        return sum(s.get("status") == "ok" and not s.get("baseline") for s in scores) >= 2

    _wait_for(proc, run, two_new)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    # The stop ended the workers that trained them; the report draws them all the same.
    report = (run / "report.md").read_text()
    assert "no curve for" not in report and "no curve for" not in stderr, report
    assert (run / "plots" / "activations.svg").is_file()
