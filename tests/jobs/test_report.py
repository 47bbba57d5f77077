"""`minact report` of a run whose tasks file is gone: the curves come from the packaged lab,
whatever a tasks.toml in the working directory holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from minact.jobs.report import write_report
from tests.conftest import TINY_TASKS, offline_run


def test_a_run_whose_lab_is_gone_reports_despite_a_broken_local_tasks_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = tmp_path / "lab.toml"
    shutil.copy(TINY_TASKS, lab)
    monkeypatch.setattr("tests.conftest.TINY_TASKS", lab)
    run = offline_run(tmp_path, budget=1, seed=0, run_id="r")
    lab.unlink()
    here = tmp_path / "here"
    here.mkdir()
    (here / "tasks.toml").write_text('[[task]]\nname = "a"\nfamily = "f"\ntarget = "1/x"\n')
    monkeypatch.chdir(here)
    written = write_report(run, tmp_path / "fresh-cache")  # no curve cached: all drawn again
    assert {p.name for p in written} >= {"report.md", "report.html"}
    text = (run / "report.md").read_text(encoding="utf-8")
    assert "no activation curves" not in text and "1 / x" not in text, text
