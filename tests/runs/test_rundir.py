"""Tests for minact.runlog: run directories, the append-only log, damaged tails."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from minact.errors import ConfigError
from minact.runs.rundir import RunExistsError, RunLog


def test_create_append_and_read_back(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path / "runs", "r1")
    log.write_run({"budget": 3})
    for i in range(3):
        log.append({"event": "outcome", "index": i})
    log.close()
    again = RunLog.open(tmp_path / "runs" / "r1")
    assert again.read_run() == {"budget": 3}
    assert [e["index"] for e in again.events()] == [0, 1, 2]


def test_a_truncated_last_line_is_skipped_and_repaired(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path, "r")
    log.write_run({})
    log.append({"event": "outcome", "index": 0})
    log.close()
    with log.events_path.open("a") as f:
        f.write('{"event": "outcome", "ind')  # the process died here
    assert [e["index"] for e in log.events()] == [0]
    log.append({"event": "outcome", "index": 1})
    log.close()
    assert [e["index"] for e in log.events()] == [0, 1]


def test_a_line_nested_past_jsons_recursion_is_skipped(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path, "r")
    log.write_run({})
    log.append({"event": "outcome", "index": 0})
    log.close()
    with log.events_path.open("a") as f:
        f.write("[" * 100_000 + "]" * 100_000 + "\n")
    log.append({"event": "outcome", "index": 1})
    log.close()
    assert [e["index"] for e in log.events()] == [0, 1]


def test_errors_name_the_directory(tmp_path: Path) -> None:
    RunLog.create(tmp_path, "taken")
    with pytest.raises(ConfigError, match="exists; pass --resume"):
        RunLog.create(tmp_path, "taken")
    with pytest.raises(ConfigError, match="--run-id"):
        RunLog.create(tmp_path, "../escape")
    with pytest.raises(ConfigError, match="no such run directory"):
        RunLog.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"not a run directory \(no run.json\)"):
        RunLog.open(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        RunLog.open(tmp_path / "bad")


def test_a_directory_that_cannot_be_made_says_why(tmp_path: Path) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the runs folder should be")
    with pytest.raises(ConfigError) as info:
        RunLog.create(blocker, "r1")
    assert not isinstance(info.value, RunExistsError)
    assert str(info.value) == f"cannot create run directory {blocker / 'r1'}: Not a directory"


@pytest.mark.skipif(sys.platform == "win32", reason="the lock is POSIX's flock")
def test_a_run_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path, "r")
    log.write_run({})
    with log.held():
        other = RunLog.open(tmp_path / "r")  # as another process would open it
        with pytest.raises(ConfigError, match="in use by another minact process;"):
            with other.held():
                pass
    with RunLog.open(tmp_path / "r").held():  # released with the block
        pass


def _log_with(tmp_path: Path, damage: bytes, resumes: int = 0) -> RunLog:
    """Returns a run whose events.jsonl holds two events, `resumes` resume events and `damage`."""
    log = RunLog.create(tmp_path, "r")
    log.write_run({})
    log.append({"event": "outcome", "index": 0})
    for _ in range(resumes):
        log.append({"event": "resume"})
    log.close()
    with log.events_path.open("ab") as f:
        f.write(damage)
    log.append({"event": "outcome", "index": 1})
    log.close()
    return log


def test_one_cut_line_per_writer_is_not_damage(tmp_path: Path) -> None:
    log = _log_with(tmp_path, b'{"event": "outcome", "ind')  # killed, then resumed
    assert [e["index"] for e in log.events()] == [0, 1]
    assert log.unreadable == 1 and log.damage() is None
    again = _log_with(tmp_path / "twice", b'{"event": "out\n{"ev', resumes=1)
    assert len(list(again.events())) == 3 and again.damage() is None


def test_binary_garbage_in_the_log_is_one_warning_naming_file_and_count(tmp_path: Path) -> None:
    # 8 times every byte: 8 "\n" and 8 "\r" (a line end too, read as text), so 17 lines.
    garbage = bytes(range(255, -1, -1)) * 8
    log = _log_with(tmp_path, garbage)
    assert [e["index"] for e in log.events()] == [0, 1]
    said = log.damage()
    assert said is not None and "\n" not in said
    assert said.startswith(f"warning: {log.events_path}: skipped 17 unreadable lines")
    # JSON that is no event counts too: a file of numbers is not minact's log.
    numbers = _log_with(tmp_path / "numbers", b"1\n2\n[3]\n")
    assert len(list(numbers.events())) == 2 and "skipped 3 unreadable" in str(numbers.damage())
