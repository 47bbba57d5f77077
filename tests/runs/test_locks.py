"""The lock on a run's outputs, held by another process that does not let it go.

A `minact report` that hung, or was stopped (SIGSTOP, Ctrl-Z), while it wrote a run's report
holds events.jsonl's lock; `report` and the end of `evolve` used to wait for it for ever.
They wait a bounded time (locks.WRITING_WAIT_S, shortened here), then say which run and
why, and the run's events stay for a later `minact report`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.runs import locks
from tests.conftest import offline_run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX file locks")

runner = CliRunner()
NO_LLM_ENV = {"MINACT_LLM_URL": None, "MINACT_MODEL": None, "MINACT_API_KEY": None,
              "OPENAI_API_KEY": None}  # fmt: skip

# Takes the lock as `minact report` does, says so, and keeps it until its stdin closes.
_HOLDER = """
import fcntl, os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
select.select([sys.stdin], [], [], 600)
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One finished offline run on the tiny lab, copied by each test, and its cache."""
    base = tmp_path_factory.mktemp("locks")
    return {"run": offline_run(base, budget=1, seed=4, run_id="good"), "cache": base / "cache"}


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes a writer give up on a held lock after a fraction of a second."""
    monkeypatch.setattr(locks, "WRITING_WAIT_S", 0.3)


def _holding(events: Path) -> Iterator[subprocess.Popen[str]]:
    """Yields once, while another process holds `events`' lock."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(events)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline() == "held\n"
            yield proc
        finally:
            proc.stdin.close()  # lets the lock go
            proc.wait(timeout=60)


def _refusal(run: Path) -> str:
    return (
        f"error: {run}: another minact process is writing the run's report and did not "
        f"finish in 0.3 s (stopped or hung?); the run's events are kept: once it ends, "
        f"`minact report {run}` writes the report\n"
    )


def test_report_gives_up_on_a_held_lock_and_keeps_the_run(
    finished: dict[str, Any], tmp_path: Path, short_wait: None
) -> None:
    run = Path(shutil.copytree(finished["run"], tmp_path / "good"))
    (run / "report.md").unlink()
    events = (run / "events.jsonl").read_bytes()
    args = ["report", str(run), "--cache-dir", str(finished["cache"])]
    for _ in _holding(run / "events.jsonl"):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.stderr == _refusal(run)
        assert not (run / "report.md").exists()  # nothing written between the other's files
    assert (run / "events.jsonl").read_bytes() == events
    result = runner.invoke(app, args)  # the lock let go: the report is written
    assert result.exit_code == 0, result.output
    assert (run / "report.md").is_file()


def test_a_resumed_run_ends_with_its_events_kept_when_its_report_cannot_be_written(
    finished: dict[str, Any], tmp_path: Path, short_wait: None
) -> None:
    run = Path(shutil.copytree(finished["run"], tmp_path / "good"))
    args = ["evolve", "--offline", "--resume", str(run), "--budget", "2", "--workers", "1"]
    args += ["--cache-dir", str(finished["cache"])]
    for _ in _holding(run / "events.jsonl"):
        result = runner.invoke(app, args, env=NO_LLM_ENV)
        assert result.exit_code == 1, result.output
        assert result.stderr.endswith(_refusal(run)), result.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed"  # not left "running"
    assert meta["message"].count(f"`minact report {run}` writes the report") == 1
    result = runner.invoke(app, ["report", str(run), "--cache-dir", str(finished["cache"])])
    assert result.exit_code == 0, result.output
    ranking = json.loads((run / "ranking.json").read_text())
    assert {"c0", "c1"} <= {c["name"] for c in ranking["candidates"]}  # both sessions' work
