"""Tests for the Ray backend (minact.sandbox.ray_*), on a local Ray cluster of 2 CPUs.

Each Ray actor runs the real sandboxed worker process: scores must equal the local
backend's, a candidate that crashes or hangs its worker fails alone, a killed actor costs
nothing, the worker's environment holds none of the actor's secrets or RAY_* variables,
and a node with another torch version is refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact import seeds
from minact.cache import FitnessCache
from minact.candidate import Candidate
from minact.cli import app
from minact.errors import EvaluationError
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import load_lab
from minact.lab.task import Lab
from minact.sandbox import ray_actor
from minact.sandbox.client import WorkerSettings
from minact.sandbox.ray_workers import RayWorkers
from minact.validate import code_hash
from tests.conftest import TINY_TASKS

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'minact[ray]')")

pytestmark = pytest.mark.slow
runner = CliRunner()
SECRETS = {"AWS_SECRET_ACCESS_KEY": "aws-ray-secret", "MINACT_API_KEY": "sk-ray-secret"}


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    """Starts one local Ray cluster for the module, with secrets in its processes' env."""
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)  # the raylet, hence every actor, inherits them
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 1024 * 1024,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _workers(**kw: Any) -> RayWorkers:
    return RayWorkers(WorkerSettings(device="cpu", threads=1), actors=2, **kw)


def _raw(source: str, name: str) -> Candidate:
    """Returns a candidate as if static validation had missed it: the last line of defence."""
    return Candidate(source, code_hash(source), name=name)


def _longer(lab: Lab, steps: int) -> Lab:
    tasks = tuple(
        dataclasses.replace(t, settings=dataclasses.replace(t.settings, steps=steps))
        for t in lab.tasks
    )
    return dataclasses.replace(lab, tasks=tasks)


def _local(lab: Lab, cands: list[Candidate], cache_dir: Path) -> dict[str, Any]:
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, EvaluatorConfig(device="cpu", threads=1)) as ev:
            return {s.name: (s.fitness, s.mean_ood_mse) for s in ev.score(cands)}


def test_score_with_ray_equals_the_local_backend(tmp_path: Path) -> None:
    docs = {}
    base = ["score", "gelu", "tanh", "silu", "--tasks", str(TINY_TASKS), "--json", "--threads", "1"]
    result = runner.invoke(app, [*base, "--cache-dir", str(tmp_path / "local")])
    assert result.exit_code == 0, result.stderr
    docs["local"] = json.loads(result.stdout)
    # Another process joins the running cluster by its address, as a user's command would;
    # its stdout must hold the JSON document and nothing else.
    address = ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "minact", *base, "--cache-dir", str(tmp_path / "ray")]
    cmd += ["--backend", "ray", "--ray-address", address]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    docs["ray"] = json.loads(proc.stdout)
    worker = docs["ray"]["run"]["worker"]
    assert worker["backend"] == "ray" and worker["workers"] == 2
    assert all(a["torch"] == worker["torch"] and a["device"] == "cpu" for a in worker["actors"])
    local, remote = ({c["name"]: c for c in d["candidates"]} for d in docs.values())
    assert set(local) == set(remote) == {"gelu", "tanh", "silu", "relu"}
    for name, c in local.items():
        assert remote[name]["status"] == "ok"
        assert remote[name]["fitness"] == c["fitness"]
        assert remote[name]["tasks"] == c["tasks"]
    # The other process left the cluster it joined running.
    assert ray.get(ray.remote(lambda: 1).remote(), timeout=60) == 1


def test_a_search_on_ray_scores_as_the_local_backend(tmp_path: Path) -> None:
    args = ["evolve", "--offline", "--budget", "2", "--tasks", str(TINY_TASKS), "--json"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*args, "--backend", "ray"])
    assert result.exit_code == 0, result.stderr
    found = [c for c in json.loads(result.stdout)["candidates"] if not c["baseline"]]
    assert len(found) == 2
    cands = [Candidate(c["source"], c["code_hash"], name=c["name"]) for c in found]
    local = _local(load_lab(TINY_TASKS), cands, tmp_path / "local")
    for c in found:
        assert c["status"] == "ok", c["reason"]
        assert (c["fitness"], c["mean_ood_mse"]) == local[c["name"]]


def test_a_crash_or_a_hang_fails_only_its_candidate(tmp_path: Path) -> None:
    lab = dataclasses.replace(load_lab(TINY_TASKS), timeout=8.0)
    # Both pass admission (1-d probes) and break the worker in training (3-d batches).
    crash = "def activation(x):\n    if x.dim() == 3:\n        torch.os._exit(3)\n    return x\n"
    hang = (
        "def activation(x):\n    if x.dim() == 3:\n"
        "        torch.sys.modules['time'].sleep(600)\n    return x\n"
    )
    cands = [
        seeds.seed_candidate("gelu"),
        _raw(crash, "crash"),
        seeds.seed_candidate("tanh"),
        _raw(hang, "hang"),
    ]
    config = EvaluatorConfig(batch_size=2)  # 2 per actor: each batch holds one culprit
    with FitnessCache(tmp_path / "cache", EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, config, workers=_workers()) as ev:
            out = {s.name: s for s in ev.score(cands)}
    assert out["crash"].status == "crashed", out["crash"].reason
    assert out["hang"].status == "timeout", out["hang"].reason
    for name in ("gelu", "tanh", "relu"):
        assert out[name].ok, out[name].reason


def test_an_actor_killed_mid_batch_loses_nothing(tmp_path: Path) -> None:
    lab = _longer(load_lab(TINY_TASKS), 400)
    cands = [seeds.seed_candidate(n) for n in ("gelu", "tanh", "silu")]
    workers = _workers()
    killed: list[Any] = []

    def kill_soon(stage: str, done: int, total: int) -> None:
        # As the batch is sent: a kill on a timer could come after a fast machine finished
        # it, and then nothing would be tested. The chunk in flight to the victim fails.
        if stage == "train" and done == 0 and not killed:
            assert workers._fleet is not None
            victim = workers._fleet.actors[0]
            killed.append(victim)
            ray.kill(victim)

    with FitnessCache(tmp_path / "rough", EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, progress=kill_soon, workers=workers) as ev:
            rough = {s.name: (s.fitness, s.mean_ood_mse) for s in ev.score(cands)}
            assert killed and workers._fleet is not None
            assert killed[0] not in workers._fleet.actors

    calm = _local(lab, cands, tmp_path / "calm")
    assert rough == calm


def test_the_worker_environment_on_a_node_is_scrubbed() -> None:
    # The actors themselves carry Ray's variables and the secrets...
    actor_env = ray.get(ray.remote(lambda: dict(os.environ)).remote())
    assert any(k.startswith("RAY_") for k in actor_env)
    assert actor_env["AWS_SECRET_ACCESS_KEY"] == SECRETS["AWS_SECRET_ACCESS_KEY"]
    # ...and the worker processes they start see none of them.
    workers = _workers()
    try:
        workers.start()
        envs = workers.environment()
    finally:
        workers.stop()
    assert len(envs) == 2
    for env in envs:
        assert not [k for k in env if k.startswith("RAY") or k in SECRETS]
        assert not any(v in env.values() for v in SECRETS.values())
        assert env["HOME"] == env["TMPDIR"] and "/minact-ray/worker-" in env["HOME"]


def test_a_node_with_another_torch_is_refused() -> None:
    workers = RayWorkers(WorkerSettings(device="cpu", threads=1), actors=1, torch_version="1.0")
    with pytest.raises(EvaluationError, match=r"runs torch 2\S*, this machine 1\.0"):
        workers.start()
    assert not workers.running


def test_an_error_raised_in_an_actor_is_told_in_its_own_words() -> None:
    @ray.remote
    def refuse() -> None:
        raise EvaluationError("the evaluation worker refused to start: it said no")

    with pytest.raises(EvaluationError) as info:
        ray.get(refuse.remote())
    assert "\n" in str(info.value)  # Ray's coloured traceback of the remote call
    assert ray_actor.cause(info.value) == "the evaluation worker refused to start: it said no"


def test_an_interrupt_from_another_thread_stops_the_batch(tmp_path: Path) -> None:
    # Long enough that no machine finishes before the interrupt: it kills the batch anyway.
    lab = _longer(load_lab(TINY_TASKS), 200_000)
    workers = _workers()
    fired: list[threading.Timer] = []

    def interrupt_soon(stage: str, done: int, total: int) -> None:
        if stage == "train" and not fired:
            fired.append(threading.Timer(1.0, ev.interrupt))
            fired[0].start()

    with FitnessCache(tmp_path / "cache", EVALUATOR_VERSION) as cache:
        ev = Evaluator(lab, cache, progress=interrupt_soon, workers=workers)
        with pytest.raises(EvaluationError, match="interrupted"), ev:
            ev.score([seeds.seed_candidate("gelu"), seeds.seed_candidate("tanh")])
    assert fired and not workers.running
    with pytest.raises(EvaluationError, match="interrupted"):
        workers.start()


def test_a_new_actor_removes_the_folders_of_gone_actors() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    parent = Path(tempfile.gettempdir()) / "minact-ray"
    parent.mkdir(exist_ok=True)
    stale = parent / f"worker-{dead.pid}-test"
    (stale / "inductor").mkdir(parents=True, exist_ok=True)
    live = parent / f"worker-{os.getpid()}-test"
    live.mkdir(exist_ok=True)
    # Names of no pid a folder may have (left by anything): kept, never a crash.
    odd = [parent / f"worker-{name}-test" for name in ("\u00b2", "9" * 30, "12a")]
    for folder in odd:
        folder.mkdir(exist_ok=True)
    try:
        fresh = ray_actor._private_home()
        assert fresh.is_dir() and fresh.name.startswith(f"worker-{os.getpid()}-")
        assert not stale.exists() and live.exists()
        assert all(folder.exists() for folder in odd)
        fresh.rmdir()
    finally:
        for folder in [live, *odd]:
            folder.rmdir()
