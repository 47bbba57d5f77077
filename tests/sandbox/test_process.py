"""Tests for minact.process: a worker that misbehaves never takes the parent down."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from minact.cache import FitnessCache
from minact.evaluate import Evaluator, EvaluatorConfig
from minact.lab.task import Lab
from minact.sandbox import process
from minact.sandbox.process import MAX_REPLY_BYTES, WorkerCrashed, WorkerProcess, WorkerTimeout

# Stand-ins for a compromised or broken worker: each reads one request, then misbehaves.
FAKES = {
    "huge_reply": "import sys; sys.stdin.readline(); sys.stdout.write('x' * {n}); "
    "sys.stdout.flush()",
    "garbage": "import sys; sys.stdin.readline(); print('not json'); sys.stdout.flush()",
    "pickle": "import sys, pickle; sys.stdin.readline(); sys.stdout.buffer.write("
    "pickle.dumps(object) + b'\\n'); sys.stdout.flush()",
    "list": "import sys; sys.stdin.readline(); print('[1, 2]'); sys.stdout.flush()",
    "exit": "import sys; sys.stdin.readline(); sys.exit(3)",
    "segfault": "import os, signal, sys; sys.stdin.readline(); "
    "os.kill(os.getpid(), signal.SIGSEGV)",
    "stderr_flood": "import sys; sys.stdin.readline(); sys.stderr.write('e' * 10_000_000); "
    "sys.exit(1)",
}


@pytest.mark.parametrize("kind", sorted(FAKES))
def test_a_misbehaving_worker_is_a_crash_not_a_parent_failure(tmp_path: Path, kind: str) -> None:
    code = FAKES[kind].replace("{n}", str(MAX_REPLY_BYTES + 10))
    worker = WorkerProcess(tmp_path, argv=[sys.executable, "-c", code])
    worker.start()
    with pytest.raises(WorkerCrashed) as info:
        worker.request({"op": "hello"}, timeout=60)
    assert not worker.running
    expected = {"exit": "exited with code 3", "segfault": "SIGSEGV", "huge_reply": "bytes"}
    assert expected.get(kind, "") in str(info.value)
    assert len(worker.stderr_tail()) < 20_000  # the tail is bounded, whatever was written


def test_a_silent_worker_times_out_and_is_killed(tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path, argv=[sys.executable, "-c", "import time; time.sleep(600)"])
    worker.start()
    with pytest.raises(WorkerTimeout):
        worker.request({"op": "hello"}, timeout=0.5)
    assert not worker.running


# Answers two seconds after it reads its request: later than a 1 s deadline on an idle machine.
LATE = "import sys, time; sys.stdin.readline(); time.sleep(2.0); print('{}'); sys.stdout.flush()"


def test_a_deadline_stretches_with_the_load_of_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = WorkerProcess(tmp_path, argv=[sys.executable, "-c", LATE])
    monkeypatch.setattr(process, "load_factor", lambda: 1.0)  # an idle machine: on time or out
    with pytest.raises(WorkerTimeout):
        worker.request({"op": "hello"}, timeout=1.0)
    # Ten times oversubscribed: the worker got a tenth of a core, and its 2 s are not its fault.
    monkeypatch.setattr(process, "load_factor", lambda: 10.0)
    try:
        assert worker.request({"op": "hello"}, timeout=1.0) == {}
    finally:
        worker.stop()


def test_a_hang_ends_at_the_wall_clock_cap_however_busy_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "load_factor", lambda: 1e9)
    worker = WorkerProcess(tmp_path, argv=[sys.executable, "-c", "import time; time.sleep(600)"])
    with pytest.raises(WorkerTimeout, match="busy machine"):
        worker.request({"op": "hello"}, timeout=0.25)
    assert not worker.running


class _StoppedOnce:
    """A clock that jumps 100 s at its second reading: this process stopped (SIGSTOP, a
    suspended job) for that long while its first wait for a reply was running."""

    def __init__(self) -> None:
        self.readings = 0

    def monotonic(self) -> float:
        self.readings += 1
        return time.monotonic() + (100.0 if self.readings >= 2 else 0.0)


def test_time_the_parent_spent_stopped_is_not_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "load_factor", lambda: 1.0)
    monkeypatch.setattr(process, "time", _StoppedOnce())
    worker = WorkerProcess(tmp_path, argv=[sys.executable, "-c", LATE])
    try:
        assert worker.request({"op": "hello"}, timeout=60.0) == {}
    finally:
        worker.stop()


class _AlwaysLate:
    """A clock on which every wait for a reply ends 6 s late (as on a machine so loaded that
    each poll wakes long after it asked): each looks like a stop of this process."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 6.0
        return self.now


def test_a_hang_still_ends_when_every_poll_looks_like_a_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "load_factor", lambda: 1.0)
    monkeypatch.setattr(process, "time", _AlwaysLate())
    worker = WorkerProcess(tmp_path, argv=[sys.executable, "-c", "import time; time.sleep(600)"])
    with pytest.raises(WorkerTimeout):
        worker.request({"op": "hello"}, timeout=0.25)  # about 25 polls of the fake clock
    assert not worker.running


# Stops itself at once, as a worker frozen by a user (kill -STOP) is.
FROZEN = "import os, signal; os.kill(os.getpid(), signal.SIGSTOP)"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_timeout_of_a_worker_stopped_from_outside_says_so(tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path, argv=[sys.executable, "-c", FROZEN])
    worker.start()
    for _ in range(1200):  # until it has stopped itself
        if process._stopped(worker._proc):
            break
        time.sleep(0.05)
    with pytest.raises(WorkerTimeout) as info:
        worker.request({"op": "hello"}, timeout=0.5)
    assert not worker.running
    assert process.STOPPED in str(info.value)
    # No verdict on the code: a later call retries it, however often it happens.
    assert process.from_outside(str(info.value))


def test_the_load_factor_is_at_least_one() -> None:
    assert process.load_factor() >= 1.0


def test_the_worker_runs_under_resource_limits(tiny_lab: Lab, tmp_path: Path) -> None:
    cap = 6 << 30
    with FitnessCache(tmp_path / "c", "t") as cache:
        with Evaluator(tiny_lab, cache, EvaluatorConfig(memory_bytes=cap)) as ev:
            ev.score([])  # starts the worker
            proc = ev._worker._process._proc
            assert proc is not None
            limits = Path(f"/proc/{proc.pid}/limits").read_text()
    address = next(line for line in limits.splitlines() if line.startswith("Max address space"))
    assert str(cap) in address
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4] == "0"


# The first run of this worker answers one request and exits, leaving its stdout open in a
# detached grandchild until the test writes to the `release` FIFO; later runs answer each
# request with their run number.
LINGERING_STDOUT = """
import json, os, subprocess, sys
runs = len(os.listdir("runs")) + 1 if os.path.isdir("runs") else 1
os.makedirs("runs", exist_ok=True)
open(os.path.join("runs", str(runs)), "w").close()
if runs == 1:
    subprocess.Popen(
        [sys.executable, "-c", "open('release').read()"],
        stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
for line in sys.stdin:
    print(json.dumps({"ok": True, "run": runs}), flush=True)
    if runs == 1:
        sys.exit(0)
"""


def test_a_dead_workers_late_end_of_stream_does_not_reach_the_next_worker(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "release")
    worker = WorkerProcess(tmp_path, argv=[sys.executable, "-c", LINGERING_STDOUT])
    worker.start()
    first = worker._proc
    assert first is not None
    assert worker.request({"op": "hello"}, timeout=60) == {"ok": True, "run": 1}
    first.wait(timeout=60)
    assert not worker.running
    (old_reader,) = [t for t in threading.enumerate() if t.name == f"worker-{first.pid}-stdout"]
    worker.start()
    # Only now does the first worker's stdout reach its end: its reader sees EOF after the
    # second worker started (the order a restart after a crash can take).
    with open(tmp_path / "release", "w") as release:
        release.write("go")
    old_reader.join(timeout=60)
    assert not old_reader.is_alive()
    try:
        assert worker.request({"op": "hello"}, timeout=60) == {"ok": True, "run": 2}
    finally:
        worker.stop()
