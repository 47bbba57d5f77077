"""SIGTERM (`kill`, `timeout`, a container stopping) stops a command as Ctrl-C does: its
worker processes end with it, and a run is marked interrupted, never left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from minact.cache import FitnessCache
from minact.evaluate import EVALUATOR_VERSION
from minact.seeds import seed_candidates
from tests.conftest import TINY_TASKS

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")


def _slow_lab(tmp_path: Path) -> Path:
    """The tiny lab, training for ever: a command is surely busy when the signal comes."""
    lab = tmp_path / "slow.toml"
    lab.write_text(TINY_TASKS.read_text().replace("steps = 25", "steps = 1000000"))
    return lab


def _workers(cache: Path) -> list[int]:
    """Returns the pids of processes whose working folder is inside `cache` (the workers')."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == cache.resolve() or cache.resolve() in cwd.parents:
            found.append(int(entry.name))
    return found


def _stop_when_training(proc: subprocess.Popen[str], cache: Path) -> str:
    """Sends SIGTERM once the command trains; returns its stderr."""
    deadline = time.monotonic() + 120
    while len(_workers(cache)) < 2:  # both workers of the pool
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no worker started"
        time.sleep(0.2)
    time.sleep(8.0)  # training now, on every worker the command starts
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while _workers(cache) and time.monotonic() < deadline:  # the group is killed: give it time
        time.sleep(0.2)
    left = _workers(cache)
    for pid in left:  # not to leave it training on the test machine
        os.kill(pid, signal.SIGKILL)
    assert left == [], "a worker outlived its command"
    return stderr


@pytest.mark.slow
def test_sigterm_stops_score_and_its_worker(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "minact", "score", "relu", "--tasks", str(_slow_lab(tmp_path)),
           "--cache-dir", str(cache), "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr = _stop_when_training(proc, cache)
    assert proc.returncode == 130 and stderr.endswith("interrupted\n"), stderr


@pytest.mark.slow
def test_sigterm_marks_a_run_interrupted_and_blames_no_candidate(tmp_path: Path) -> None:
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    cmd = [sys.executable, "-m", "minact", "evolve", "--offline", "--budget", "5", "--tasks",
           str(_slow_lab(tmp_path)), "--cache-dir", str(cache), "--runs-dir", str(runs),
           "--run-id", "r", "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _stop_when_training(proc, cache)
    meta = json.loads((runs / "r" / "run.json").read_text())
    assert meta["status"] == "interrupted", meta["status"]
    # The workers killed by the stop were training built-ins: that is no crash of theirs.
    # Cached as one, a second stop in the same training made it final, and the resumed
    # run reported the candidate as crashed where the run never stopped had scored it.
    with FitnessCache(cache, EVALUATOR_VERSION) as fitness:
        crashes = {c.name: fitness.crashes(c.code_hash) for c in seed_candidates()}
    assert not any(crashes.values()), crashes


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_checks_after_the_search_marks_the_run_and_writes_its_report(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # The search trains on the tiny lab; --validate then trains on a lab that never ends.
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    cmd = [sys.executable, "-m", "minact", "evolve", "--offline", "--budget", "2", "--tasks",
           str(TINY_TASKS), "--validate", str(_slow_lab(tmp_path)), "--validate-top", "1",
           "--cache-dir", str(cache), "--runs-dir", str(runs), "--run-id", "r",
           "--workers", "1"]  # fmt: skip
    lines: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
        reader.start()
        deadline = time.monotonic() + 300
        while not any(line.startswith("validating the top") for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        time.sleep(3.0)  # training on the endless lab now
        proc.send_signal(sig)
        proc.wait(timeout=120)
        reader.join(timeout=10)
    assert proc.returncode == 130, "".join(lines)
    meta = json.loads((runs / "r" / "run.json").read_text())
    assert meta["status"] == "interrupted", meta
    assert "during the checks" in meta["message"]
    assert (runs / "r" / "report.md").is_file() and (runs / "r" / "ranking.json").is_file()
    events = (runs / "r" / "events.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["event"] == "end"
    assert _workers(cache) == []
