"""Tests for minact.sandbox.pool: several real worker processes behind one Workers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from minact import seeds
from minact.cache import FitnessCache
from minact.errors import EvaluationError
from minact.evaluate import Evaluator, EvaluatorConfig
from minact.lab.task import Lab
from minact.sandbox import pool
from minact.sandbox.client import TrainItem, WorkerClient, WorkerSettings
from minact.sandbox.process import worker_environment

# A worker that says hello and answers each train request with one result per task of each
# item whose source names its own pid; a source containing CRASH makes it exit.
FAKE_WORKER = """
import json, os, sys
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "train":
        if any("CRASH" in i["source"] for i in req["items"]):
            sys.exit(3)
        res = {"status": "ok", "reason": str(os.getpid()), "ood": [1.0], "id": [1.0],
               "seconds": 0.0}
        print(json.dumps({"ok": True, "results": [[res for _ in i["tasks"]]
                                                  for i in req["items"]]}), flush=True)
    elif req["op"] == "exit":
        break
    else:
        print(json.dumps({"ok": True, "device": "cpu"}), flush=True)
"""


def _fake_pool(tmp_path: Path, n: int) -> pool.WorkerPool:
    clients = []
    for i in range(n):
        c = WorkerClient(tmp_path / f"w{i}", WorkerSettings(device="cpu", threads=1))
        c._process.argv = [sys.executable, "-c", FAKE_WORKER]
        clients.append(c)
    return pool.WorkerPool(clients)


def test_two_workers_score_exactly_as_one(tiny_lab: Lab, tmp_path: Path) -> None:
    cands = [seeds.seed_candidate(n) for n in ("gelu", "tanh", "silu", "elu")]
    fitness: dict[int, list[tuple[str, float | None]]] = {}
    for n in (1, 2):
        config = EvaluatorConfig(device="cpu", threads=1, workers=n)
        with (
            FitnessCache(tmp_path / f"cache{n}", "t") as cache,
            Evaluator(tiny_lab, cache, config) as ev,
        ):
            assert ev.preferred_batch() == n
            scores = ev.score(cands)
            assert ev.info["threads"] == 1
            assert ev.info.get("workers", 1) == n
        fitness[n] = [(s.name, s.fitness) for s in scores]
    # Same order (the reference first, then the input's), same numbers bit for bit.
    assert [name for name, _ in fitness[1]] == ["relu", "gelu", "tanh", "silu", "elu"]
    assert fitness[2] == fitness[1]
    assert all(f is not None for _, f in fitness[2])
    # Each worker had its own home folder.
    assert (tmp_path / "cache2" / "worker").is_dir() and (tmp_path / "cache2" / "worker-1").is_dir()


def test_items_go_to_every_worker_in_order_and_only_the_culprit_fails(
    tiny_lab: Lab, tmp_path: Path
) -> None:
    workers = _fake_pool(tmp_path, 2)
    sources = ["def activation(x):\n    return x"] * 3
    sources.insert(1, "def activation(x):\n    return x  # CRASH")
    try:
        results = workers.train([TrainItem(s, tiny_lab.tasks) for s in sources], lambda n: 30.0)
    finally:
        workers.stop()
    assert [[r.status for r in item] for item in results] == [
        ["ok", "ok"],
        ["crashed", "crashed"],
        ["ok", "ok"],
        ["ok", "ok"],
    ]
    assert "exited with code 3" in results[1][0].reason
    assert all(item[0].reason.isdigit() for item in results if item[0].status == "ok")
    assert not workers.running


def test_any_started_worker_speaks_for_the_pool(tmp_path: Path) -> None:
    workers = _fake_pool(tmp_path, 2)
    assert workers.info == {}
    workers.clients[1].start()  # workers start on their first request, in any order
    try:
        assert workers.info["device"] == "cpu" and workers.info["workers"] == 2
    finally:
        workers.stop()


def test_a_pool_starts_only_the_workers_its_work_needs(tiny_lab: Lab, tmp_path: Path) -> None:
    workers = _fake_pool(tmp_path, 5)
    try:
        workers.start()
        items = [
            TrainItem(f"def activation(x):\n    return {k} * x", tiny_lab.tasks) for k in (1, 2)
        ]
        assert len(workers.train(items, lambda n: 30)) == 2
        assert [c.running for c in workers.clients] == [True, True, False, False, False]
    finally:
        workers.stop()


def test_interrupt_reaches_every_worker(tiny_lab: Lab, tmp_path: Path) -> None:
    workers = _fake_pool(tmp_path, 3)
    workers.start()  # one worker: the others start on their first request
    assert [c.running for c in workers.clients] == [True, False, False]
    for c in workers.clients[1:]:
        c.start()
    workers.interrupt()
    assert not any(c.running for c in workers.clients)
    with pytest.raises(EvaluationError, match="interrupted"):
        workers.train([TrainItem("def activation(x):\n    return x", tiny_lab.tasks)], lambda n: 5)


def test_auto_pins_one_worker_per_visible_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    workers = pool.local_workers(tmp_path / "worker", WorkerSettings(device="auto"), 0)
    assert isinstance(workers, pool.WorkerPool) and workers.size == 2
    assert [c.settings.visible_devices for c in workers.clients] == ["3", "5"]
    env = worker_environment(tmp_path, 0, workers.clients[1].settings.visible_devices)
    assert env["CUDA_VISIBLE_DEVICES"] == "5"
    # Hidden devices count as none: auto falls back to the CPU split.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert pool.cuda_devices() == []


def test_auto_on_cpu_splits_the_cores_into_single_thread_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "affinity_cores", lambda: 2)  # no CPU quota below the mask
    monkeypatch.setattr(pool, "cpu_cores", lambda: 2)
    workers = pool.local_workers(tmp_path / "worker", WorkerSettings(device="cpu"), 0)
    expected = min(pool.cpu_cores(), pool.MAX_AUTO_CPU_WORKERS)
    assert workers.size == expected
    clients = workers.clients if isinstance(workers, pool.WorkerPool) else [workers]
    assert all(c.settings.threads == 1 for c in clients)
    # One worker asked for by number keeps torch's default threads, as before pools.
    one = pool.local_workers(tmp_path / "worker", WorkerSettings(device="cpu"), 1)
    assert isinstance(one, WorkerClient) and one.settings.threads == 0
