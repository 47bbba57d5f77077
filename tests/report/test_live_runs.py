"""`minact report` of a run another process is still writing: the run may end, and write its
own report, while this one is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact import seeds
from minact.cli import app
from minact.lab.task import Lab
from minact.report import build
from minact.runs.rundir import RunLog, write_atomic
from tests.report.test_report import C0, C4, SEED_FITNESS, put_curves, write_run

runner = CliRunner()


def test_a_report_of_a_run_that_ends_meanwhile_leaves_the_runs_own_report(
    tmp_path: Path, tiny_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "runs" / "r1"
    write_run(run, tiny_lab)
    put_curves(tmp_path / "cache", [C0, C4, *(seeds.seed_candidate(n) for n in SEED_FITNESS)])
    ended, log = (run / "run.json").read_text(), (run / "events.jsonl").read_text()
    # The run as `minact report` finds it: searching, its built-ins scored, nothing new yet.
    meta = {**json.loads(ended), "status": "running", "message": ""}
    (run / "run.json").write_text(json.dumps(meta))
    searching = log.splitlines(keepends=True)[: 1 + len(SEED_FITNESS)]  # start, the seeds
    (run / "events.jsonl").write_text("".join(searching))
    built = build.build

    def the_run_ends_meanwhile(*args: Any, **kwargs: Any) -> Any:
        data = built(*args, **kwargs)
        if json.loads((run / "run.json").read_text())["status"] == "running":
            # What the run's process writes as it ends: the rest of its log, its report
            # (left out here), then run.json saying how it ended.
            (run / "events.jsonl").write_text(log)
            write_atomic(run / "run.json", ended)
        return data

    monkeypatch.setattr(build, "build", the_run_ends_meanwhile)
    with RunLog(run).held():  # the run's process
        result = runner.invoke(app, ["report", str(run), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    ranking = json.loads((run / "ranking.json").read_text())
    assert ranking["run"]["status"] == "finished"
    assert {"c0", "c4"} <= {c["name"] for c in ranking["candidates"]}
    assert "status: **finished**" in (run / "report.md").read_text()
