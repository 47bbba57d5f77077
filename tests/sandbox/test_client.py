"""Tests for minact.sandbox.client: what the main process makes of the worker's answers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from minact.errors import EvaluationError
from minact.lab.loader import load_lab
from minact.lab.task import Lab
from minact.sandbox.client import TrainItem, WorkerClient, WorkerSettings
from minact.sandbox.process import WorkerProcess, from_outside

# A worker that says hello, then answers every train request with one result too few for
# each item: the first task's result only.
SHORT_ANSWERS = """
import json, sys
ok = {"status": "ok", "reason": "", "ood": [1.0, 1.0], "id": [0.5, 0.5], "seconds": 0.0}
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "train":
        print(json.dumps({"ok": True, "results": [[ok] for _ in req["items"]]}), flush=True)
    else:
        print(json.dumps({"ok": True, "device": "cpu"}), flush=True)
"""

SOURCE = "def activation(x):\n    return x"

# A worker on a GPU whose CUDA context an item breaks for good (a device-side assert): it
# says so for that request and for every later one, as a real context would fail them all.
STICKY = """
import json, sys
ok = {"status": "ok", "reason": "", "ood": [1.0], "id": [0.5], "seconds": 0.0}
broken = False
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] != "train":
        print(json.dumps({"ok": True, "device": "cuda"}), flush=True)
        continue
    broken = broken or any("BREAK" in item["source"] for item in req["items"])
    if broken:
        error = "CUDA error: device-side assert triggered"
        print(json.dumps({"ok": False, "error": error, "broken": True}), flush=True)
    else:
        results = [[ok for _ in item["tasks"]] for item in req["items"]]
        print(json.dumps({"ok": True, "results": results}), flush=True)
"""


def test_a_broken_cuda_context_fails_its_culprit_alone(tiny_lab: Lab, tmp_path: Path) -> None:
    client = WorkerClient(tmp_path, WorkerSettings(device="cpu"))
    client._process.argv = [sys.executable, "-c", STICKY]
    task = tiny_lab.tasks[:1]
    culprit = SOURCE.replace("return x", "return x  # BREAK")
    items = [TrainItem(SOURCE, task), TrainItem(culprit, task), TrainItem(SOURCE, task)]
    try:
        results = client.train(items, lambda n: 60.0)
    finally:
        client.stop()
    # Its batch-mates were asked again in a fresh worker, not in the broken one.
    assert [r.status for r in results[0]] == ["ok"]
    assert [r.status for r in results[2]] == ["ok"]
    (failure,) = results[1]
    assert failure.status == "crashed" and "device-side assert" in failure.reason


def test_a_missing_task_result_fails_the_item_instead_of_shifting_the_rest(
    tiny_lab: Lab, tmp_path: Path
) -> None:
    client = WorkerClient(tmp_path, WorkerSettings(device="cpu"))
    client._process.argv = [sys.executable, "-c", SHORT_ANSWERS]
    items = [TrainItem(SOURCE, tiny_lab.tasks), TrainItem(SOURCE, tiny_lab.tasks[:1])]
    try:
        results = client.train(items, lambda n: 60.0)
    finally:
        client.stop()
    assert len(tiny_lab.tasks) == 2
    # The item with two tasks got one result: both of its tasks fail, with the reason.
    assert [r.status for r in results[0]] == ["crashed", "crashed"]
    assert "answered 1 results for 2 items" in results[0][0].reason
    # The item with one task was answered in full when asked alone.
    assert [r.status for r in results[1]] == ["ok"]


BIG = """
[lab]
seeds = 1
steps = 2
width = 2048
depth = 1
n_train = 65536
n_test = 64

[[task]]
name = "big"
family = "f"
target = "sin(x)"
train = [-1, 1]
"""


def test_memory_running_out_in_training_is_a_crash_from_outside(tmp_path: Path) -> None:
    # A real worker under a 1.5 GB address-space cap (as under a user's `ulimit -v`; on a
    # GPU, other work takes the memory): one hidden layer of this task is 512 MB.
    (tmp_path / "big.toml").write_text(BIG)
    lab = load_lab(tmp_path / "big.toml")
    settings = WorkerSettings(device="cpu", threads=1, memory_bytes=1_500_000_000)
    client = WorkerClient(tmp_path / "home", settings)
    try:
        results = client.train([TrainItem(SOURCE, lab.tasks)], lambda n: 120.0)
    finally:
        client.stop()
    # Not an `error` (a verdict on the code, cached for good): a crash, retried by a later
    # call, whose cause is outside the code.
    (result,) = results[0]
    assert result.status == "crashed", result.reason
    assert from_outside(result.reason) and "allocate" in result.reason


def test_an_interrupt_while_a_worker_starts_leaves_no_process_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # interrupt() runs on another thread than a pool's request; where it comes between the
    # process's start and its hello, its kill reached the previous process (or none), and
    # the new one ran on after the evaluation ended.
    client = WorkerClient(tmp_path, WorkerSettings(device="cpu"))
    client._process.argv = [sys.executable, "-c", SHORT_ANSWERS]
    started = WorkerProcess.start

    def start_then_interrupted(process: WorkerProcess) -> None:
        started(process)
        client._interrupted = True  # what interrupt() sets before its kill, which came early

    monkeypatch.setattr(WorkerProcess, "start", start_then_interrupted)
    with pytest.raises(EvaluationError, match="interrupted"):
        client.start()
    assert not client.running
