"""Tests for minact.sandbox.worker: a request the worker cannot serve gets {"ok": false}."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minact.sandbox import worker
from minact.sandbox.process import WorkerProcess
from tests.conftest import TINY_TASKS

# Requests that make a handler raise (missing keys, values of the wrong type) or that name
# no handler at all; the worker must answer each one and go on serving.
BROKEN = [
    {"op": "admit"},  # no "probe": KeyError inside the handler
    {"op": "admit", "probe": [-1, 1], "max_cost": 1.0, "items": 7},  # TypeError
    {"op": "curves", "lo": "left", "hi": 1, "n": 3, "items": []},  # ValueError
    {"op": ["admit"]},  # an op that is not a name
    {"op": "nosuch"},
]
GOOD = {"op": "curves", "lo": -1.0, "hi": 1.0, "n": 3, "items": []}


def _serve(requests: list[object]) -> list[dict[str, object]]:
    replies = io.StringIO()
    worker._serve(io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), replies)
    return [json.loads(line) for line in replies.getvalue().splitlines()]


def test_a_handler_that_raises_answers_not_ok_and_the_worker_serves_on() -> None:
    replies = _serve([*BROKEN, GOOD])
    assert len(replies) == len(BROKEN) + 1
    for reply in replies[:-1]:
        assert reply["ok"] is False and reply["error"]
    assert "KeyError" in str(replies[0]["error"]) and "probe" in str(replies[0]["error"])
    assert "ValueError" in str(replies[2]["error"])
    assert replies[-1] == {"ok": True, "results": []}


def test_a_real_worker_survives_a_request_its_handler_chokes_on(tmp_path: Path) -> None:
    process = WorkerProcess(tmp_path)
    process.start()
    try:
        reply = process.request({"op": "admit"}, timeout=120)
        assert reply["ok"] is False and "KeyError" in str(reply["error"])
        assert process.running
        assert process.request(GOOD, timeout=120) == {"ok": True, "results": []}
    finally:
        process.stop()


# Started under an address-space limit lower than the cap minact asks for (a shell's
# `ulimit -v`, a batch scheduler's), the worker keeps that limit instead of failing to
# raise it.
_UNDER_A_LIMIT = """
import resource, sys, tempfile
from pathlib import Path
limit = min(16 << 30, resource.getrlimit(resource.RLIMIT_AS)[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from minact.sandbox.process import WorkerProcess
process = WorkerProcess(Path(tempfile.mkdtemp()))
process.start()
try:
    hello = {"op": "hello", "device": "cpu", "threads": 1, "memory_bytes": 2 * limit}
    print(process.request(hello, timeout=120)["ok"])
    print(process.request({"op": "curves", "lo": -1.0, "hi": 1.0, "n": 3, "items": []}, 120))
finally:
    process.stop()
"""


@pytest.mark.skipif(not hasattr(os, "sysconf"), reason="address-space limits are POSIX")
def test_a_worker_started_under_a_lower_memory_limit_keeps_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _UNDER_A_LIMIT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True", "{'ok': True, 'results': []}"], done.stdout


# A parent that starts a worker training for ever, says its pid, and waits to be killed.
_PARENT = """
import dataclasses, sys, tempfile, threading, time
from pathlib import Path
from minact.lab.loader import load_lab
from minact.sandbox.client import TrainItem, WorkerClient, WorkerSettings
lab = load_lab(Path(sys.argv[1]))
tasks = tuple(dataclasses.replace(t, settings=dataclasses.replace(t.settings, steps=10**8))
              for t in lab.tasks)
client = WorkerClient(Path(tempfile.mkdtemp()), WorkerSettings(device="cpu", threads=1))
client.start()
item = TrainItem("def activation(x):\\n    return x", tasks)
threading.Thread(target=client.train, args=([item], lambda n: 3600.0), daemon=True).start()
time.sleep(2.0)
print(client._process._proc.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state  # a zombie has ended


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_worker_ends_when_its_parent_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(TINY_TASKS)], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())  # training now: it reads no stdin till done
        assert _alive(worker)
        parent.kill()  # SIGKILL: no handler of the parent's runs
        parent.wait(timeout=30)
    deadline = time.monotonic() + 60
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = _alive(worker)
    if alive:
        os.kill(worker, signal.SIGKILL)  # not to leave it on the machine
    assert not alive, "the worker outlived its parent"


@pytest.mark.parametrize(
    ("error", "memory"),
    [
        (MemoryError(), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"), True),
        (OSError(12, "Cannot allocate memory"), True),
        # cuBLAS on a GPU whose memory other work holds (torch's words for it).
        (
            RuntimeError(
                "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"
            ),
            True,
        ),
        # A lazy import under the address-space cap: mmap of its shared object fails.
        (ImportError(".../bit_generator.so: failed to map segment from shared object"), True),
        (ImportError("No module named 'scipy'"), False),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
    ],
)
def test_memory_that_ran_out_is_told_from_the_code_s_error(
    error: BaseException, memory: bool
) -> None:
    assert worker._out_of_memory(error) is memory


def test_a_broken_cuda_context_is_said_and_ends_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After a sticky CUDA error every later kernel fails: the worker must not answer the
    # next request as if the candidate in it had failed.
    monkeypatch.setattr(
        worker, "_device_broken", lambda: "RuntimeError: CUDA error: device-side assert"
    )
    replies = io.StringIO()
    worker._serve(io.StringIO(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n"), replies)
    (reply,) = [json.loads(line) for line in replies.getvalue().splitlines()]
    assert reply["ok"] is False and reply["broken"] is True
    assert "device-side assert" in reply["error"]


def test_a_cpu_worker_has_no_cuda_context_to_break() -> None:
    import torch

    torch.ones(3).sum().item()  # torch imported and used, CUDA never initialised
    assert worker._device_broken() == ""


# A device-side assert (an index out of range on the GPU), then what the worker would check.
BREAK_CUDA = """
import torch
from minact.sandbox import worker
x = torch.zeros(2, device="cuda")
try:
    x[torch.tensor([5], device="cuda")].sum().item()
except RuntimeError:
    pass
print("broken:", bool(worker._device_broken()))
"""


@pytest.mark.gpu
def test_a_device_side_assert_is_seen_as_a_broken_context() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    done = subprocess.run(
        [sys.executable, "-c", BREAK_CUDA], capture_output=True, text=True, timeout=300
    )
    assert "broken: True" in done.stdout, done.stderr[-2000:]
