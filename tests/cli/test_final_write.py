"""`minact evolve` whose last write of run.json fails (a full disk): the run is not left
marked "running", the error names the file, and a resume records how the run ended."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS

runner = CliRunner()


def _evolve(tmp: Path, *args: str) -> Any:
    common = ["--tasks", str(TINY_TASKS), "--cache-dir", str(tmp / "cache")]
    common += ["--runs-dir", str(tmp / "runs"), "--offline", "--budget", "1"]
    return runner.invoke(app, ["evolve", *common, *args])


def test_a_run_json_that_cannot_be_rewritten_at_the_end_is_not_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.replace
    written: list[str] = []

    def full_disk(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        # The run's first run.json is written; every replacement after it finds no room.
        if Path(dst).name == "run.json":
            written.append(str(dst))
            if len(written) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    result = _evolve(tmp_path, "--run-id", "r")
    monkeypatch.setattr(os, "replace", real)
    run = tmp_path / "runs" / "r"
    assert len(written) > 1  # the final write was tried, and failed
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())  # the error line may be wrapped
    assert f"cannot write {run / 'run.json'}: No space left on device" in said
    assert f"`minact evolve --resume {run}`" in said
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed"  # not "running": no process is running it
    assert "No space left on device" in meta["message"]
    assert meta["options"]["budget"] == 1  # what a resume needs is kept
    resumed = _evolve(tmp_path, "--resume", str(run))
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
