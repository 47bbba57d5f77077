"""Tests for minact.evaluate and minact.process: the real worker process, cache, faults."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import types
from pathlib import Path

import pytest

from minact import seeds
from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash, Rejection
from minact.errors import EvaluationError
from minact.evaluate import Evaluator, EvaluatorConfig
from minact.lab.task import Lab
from minact.sandbox.process import WorkerProcess, worker_environment
from minact.score import Admission, Conditions, Score, TaskResult
from minact.validate import code_hash, validate
from tests.conftest import candidate


def _by_name(scores: list[Score]) -> dict[str, Score]:
    return {s.name: s for s in scores}


def _longer(lab: Lab, steps: int) -> Lab:
    tasks = tuple(
        dataclasses.replace(t, settings=dataclasses.replace(t.settings, steps=steps))
        for t in lab.tasks
    )
    return dataclasses.replace(lab, tasks=tasks)


def test_scores_seeds_then_answers_from_the_cache(tiny_lab: Lab, cache: FitnessCache) -> None:
    with Evaluator(tiny_lab, cache) as ev:
        first = _by_name(ev.score([seeds.seed_candidate("gelu"), seeds.seed_candidate("silu")]))
        assert ev.info["device"] == "cpu"
    assert set(first) == {"relu", "gelu", "silu"}
    assert first["relu"].fitness == 0.0 and first["relu"].baseline
    assert all(s.ok and not s.cached for s in first.values())
    assert set(first["gelu"].tasks) == {"sine", "product"}
    with Evaluator(tiny_lab, cache) as ev:
        again = _by_name(ev.score([seeds.seed_candidate("gelu"), seeds.seed_candidate("silu")]))
        assert ev.info == {}, "all cached: the worker never started"
    assert all(s.cached for s in again.values())
    assert again["gelu"].fitness == first["gelu"].fitness


def test_equal_behaviour_is_trained_once(tiny_lab: Lab, cache: FitnessCache) -> None:
    with Evaluator(tiny_lab, cache) as ev:
        out = _by_name(
            ev.score([candidate("F.silu(x)", "silu"), candidate("x * torch.sigmoid(x)", "xsig")])
        )
    assert out["silu"].code_hash != out["xsig"].code_hash
    assert out["silu"].behaviour_hash == out["xsig"].behaviour_hash
    assert out["silu"].fitness == out["xsig"].fitness
    assert [out["silu"].cached, out["xsig"].cached] == [False, True]
    assert out["xsig"].seconds == 0.0


def test_batch_composition_does_not_change_scores(tiny_lab: Lab, tmp_path: Path) -> None:
    cands = [
        seeds.seed_candidate("gelu"),
        seeds.seed_candidate("tanh"),
        seeds.seed_candidate("snake"),
    ]
    fitness = []
    for size in (1, 4):
        with FitnessCache(tmp_path / f"c{size}", "t") as cache:
            with Evaluator(tiny_lab, cache, EvaluatorConfig(batch_size=size)) as ev:
                fitness.append({s.name: s.fitness for s in ev.score(cands)})
    for name, value in fitness[0].items():
        assert fitness[1][name] == value


def test_failures_are_results_and_nothing_is_written_elsewhere(
    tiny_lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    bad = {
        "log": (candidate("torch.log(x)", "log"), "nonfinite"),
        "inplace": (
            validate("def activation(x):\n    x += 1\n    return x", name="inplace"),
            "bad_output",
        ),
        "scalar": (candidate("float(x)", "scalar"), "error"),
        "costly": (
            candidate(" + ".join(f"torch.sin({i} * x)" for i in range(1, 12)), "costly"),
            "too_costly",
        ),
        "tuple": (candidate("torch.where(x > 0)", "tuple"), "bad_output"),
    }
    with FitnessCache(tmp_path / "cache", "t") as cache, Evaluator(tiny_lab, cache) as ev:
        out = _by_name(ev.score([c for c, _ in bad.values() if isinstance(c, Candidate)]))
    for name, (_, kind) in bad.items():
        assert out[name].status == kind, (name, out[name].reason)
        assert out[name].reason and out[name].fitness is None
    assert out["relu"].ok
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "work"]


def test_a_timeout_kills_the_worker_and_fails_only_the_candidate(
    tiny_lab: Lab, cache: FitnessCache
) -> None:
    slow = _longer(tiny_lab, 600)
    with Evaluator(slow, cache) as ev:
        ev.score([])  # the reference is now cached (the timeout is not part of any key)
    hasty = dataclasses.replace(slow, timeout=0.05)
    with Evaluator(hasty, cache, EvaluatorConfig(batch_size=4)) as ev:
        out = _by_name(ev.score([seeds.seed_candidate("gelu"), seeds.seed_candidate("tanh")]))
        assert not ev._worker.running
    for name in ("gelu", "tanh"):  # retried alone, each timed out on its own
        assert out[name].status == "timeout" and "did not finish within" in out[name].reason
    assert out["relu"].ok


def test_a_hanging_candidate_times_out_while_probed(tiny_lab: Lab, cache: FitnessCache) -> None:
    # Validation refuses big-integer arithmetic now; built as if validation had missed it, this
    # candidate tests the last line of defence, the wall-clock limit.
    source = "def activation(x):\n    n = 10 ** 8\n    return x * 10 ** n\n"
    assert isinstance(validate(source), Rejection)
    hang = Candidate(source, code_hash(source), name="hang")
    # The deadline also covers a fresh worker's first request, which imports and warms up
    # the probing code: 10 s leaves room for that, and the hang takes far longer.
    config = EvaluatorConfig(admit_timeout=10.0)
    with Evaluator(tiny_lab, cache, config) as ev:
        out = _by_name(ev.score([hang, seeds.seed_candidate("gelu")]))
    assert out["hang"].status == "timeout" and "probing" in out["hang"].reason
    assert out["gelu"].ok and out["relu"].ok


def test_a_worker_killed_mid_batch_is_survived(tiny_lab: Lab, tmp_path: Path) -> None:
    lab = _longer(tiny_lab, 400)
    cands = [
        seeds.seed_candidate("gelu"),
        seeds.seed_candidate("tanh"),
        seeds.seed_candidate("silu"),
    ]
    with FitnessCache(tmp_path / "calm", "t") as cache, Evaluator(lab, cache) as ev:
        calm = {s.name: s.fitness for s in ev.score(cands)}
    with FitnessCache(tmp_path / "rough", "t") as cache:
        killed: list[int] = []
        ev = Evaluator(lab, cache, EvaluatorConfig(batch_size=8))

        def kill_soon(stage: str, done: int, total: int) -> None:
            if stage == "train" and done == 0 and not killed:
                pid = ev._worker._process._proc.pid  # type: ignore[union-attr]
                killed.append(pid)
                threading.Timer(0.3, os.killpg, (pid, signal.SIGKILL)).start()

        ev.progress = kill_soon
        with ev:
            rough = {s.name: s.fitness for s in ev.score(cands)}
    assert killed
    # Retried one candidate at a time, every candidate still gets its (deterministic) score.
    for name, value in calm.items():
        assert rough[name] == value


def test_the_worker_environment_holds_no_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINACT_API_KEY", "sk-minact-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    env = worker_environment(tmp_path, threads=2)
    assert not any("secret" in v for v in env.values())
    worker = WorkerProcess(tmp_path / "w", threads=1)
    worker.start()
    try:
        # Once the worker answers, it runs the new program: before its exec, a forked child's
        # /proc environ would still show this process's environment.
        assert worker.request({"op": "hello", "device": "cpu", "compile": "off"}, 300)["ok"]
        proc = worker._proc
        assert proc is not None
        seen = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert b"secret" not in seen
        assert b"HOME=" + str(tmp_path / "w").encode() in seen
    finally:
        worker.stop()
    assert not worker.running


def test_cuda_without_cuda_is_a_clear_error(tiny_lab: Lab, cache: FitnessCache) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with Evaluator(tiny_lab, cache, EvaluatorConfig(device="cuda")) as ev:
        with pytest.raises(EvaluationError, match="CUDA is not available"):
            ev.score([seeds.seed_candidate("gelu")])


@pytest.mark.gpu
def test_cuda_scores_agree_with_cpu(tiny_lab: Lab, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    out = {}
    for device in ("cpu", "cuda"):
        with FitnessCache(tmp_path / device, "t") as cache:
            with Evaluator(tiny_lab, cache, EvaluatorConfig(device=device)) as ev:
                out[device] = {
                    s.name: s
                    for s in ev.score([seeds.seed_candidate("gelu"), seeds.seed_candidate("gsp")])
                }
    for name, s in out["cpu"].items():
        assert out["cuda"][name].ok
        for task, score in s.tasks.items():
            assert out["cuda"][name].tasks[task].id_loss == pytest.approx(score.id_loss, rel=0.2)


@pytest.mark.parametrize("cost", [1000.0, None])
def test_a_cached_admission_over_the_labs_max_cost_is_probed_again(
    tiny_lab: Lab, cache: FitnessCache, cost: float | None
) -> None:
    tanh = candidate("torch.tanh(x)", "tanh")
    # An entry edited by hand (or copied from elsewhere) under this lab's key: admitted, at a
    # cost far above max_cost, or none at all; its behaviour hash is made up.
    forged = Admission("ok", "", Hash("f" * 64), cost)
    cache.put_admission(tanh.code_hash, tiny_lab.digest(), forged)
    with Evaluator(tiny_lab, cache) as ev:
        got = _by_name(ev.score([tanh]))["tanh"]
    assert got.ok and got.cost is not None and got.cost <= tiny_lab.max_cost
    assert got.behaviour_hash != "f" * 64
    stored = cache.get_admission(tanh.code_hash, tiny_lab.digest())
    assert stored is not None and stored.cost == got.cost


_TIMED = "takes 90x GELU's time forward and backward (limit 2 x max_cost = 32x)"


def test_a_cached_too_costly_by_a_timing_is_probed_again(
    tiny_lab: Lab, cache: FitnessCache
) -> None:
    tanh = candidate("torch.tanh(x)", "tanh")
    # What a load spike during the timing leaves (or an older cache, which stored it with no
    # conditions): too_costly by the clock, seen once.
    cache.put_admission(tanh.code_hash, tiny_lab.digest(), Admission("too_costly", _TIMED))
    with Evaluator(tiny_lab, cache) as ev:
        got = _by_name(ev.score([tanh]))["tanh"]
    assert got.ok, got.reason
    stored = cache.get_admission(tanh.code_hash, tiny_lab.digest())
    assert stored is not None and stored.ok


def test_a_too_costly_by_a_timing_seen_again_stands(tiny_lab: Lab, cache: FitnessCache) -> None:
    tanh = candidate("torch.tanh(x)", "tanh")
    seen = Conditions(timeout=1e9, device="cpu", load=0.1, attempts=2, clean=2)
    verdict = Admission("too_costly", _TIMED)
    cache.put_admission(tanh.code_hash, tiny_lab.digest(), verdict, seen)
    with Evaluator(tiny_lab, cache, EvaluatorConfig(device="cpu")) as ev:  # where it was seen
        got = _by_name(ev.score([tanh]))["tanh"]
    assert got.status == "too_costly" and got.reason.startswith(_TIMED)
    assert "final after a retry" in got.reason


@pytest.mark.parametrize("gpu", [False, True], ids=["no GPU device node", "a GPU maybe"])
def test_a_verdict_final_on_another_device_is_probed_again_here(
    tiny_lab: Lab, cache: FitnessCache, monkeypatch: pytest.MonkeyPatch, gpu: bool
) -> None:
    # Seen twice on another device ("mps": none minact's worker runs on), final there.
    # With --device auto and nothing else to run, no worker has started when it is
    # judged: the device is the CPU where the machine has no GPU, else a worker is asked;
    # it is never taken for the same.
    monkeypatch.setattr("minact.sandbox.devices.gpu_possible", lambda: gpu)
    tanh = candidate("torch.tanh(x)", "tanh")
    relu = candidate("F.relu(x)", "relu")
    with Evaluator(tiny_lab, cache) as ev:
        ev.score([relu])  # the reference: cached, so the next evaluator starts no worker
    seen = Conditions(timeout=1e9, device="mps", load=0.1, attempts=2, clean=2)
    cache.put_admission(tanh.code_hash, tiny_lab.digest(), Admission("too_costly", _TIMED), seen)
    with Evaluator(tiny_lab, cache, EvaluatorConfig(device="auto")) as ev:
        got = _by_name(ev.score([tanh]))["tanh"]
        assert got.ok, got.reason  # probed again, here, where it is cheap
        assert ev.info["device"] in ("cpu", "cuda")


def test_a_too_costly_by_counting_stands_at_once(tiny_lab: Lab, cache: FitnessCache) -> None:
    tanh = candidate("torch.tanh(x)", "tanh")
    counted = Admission("too_costly", "costs 40.0x GELU in elementwise operations (limit 16x)")
    cache.put_admission(tanh.code_hash, tiny_lab.digest(), counted)
    with Evaluator(tiny_lab, cache) as ev:
        got = _by_name(ev.score([tanh]))["tanh"]
    assert got.status == "too_costly" and got.reason == counted.reason


def test_a_max_cost_below_the_references_names_the_lab_and_key(
    tiny_lab: Lab, cache: FitnessCache
) -> None:
    # Every candidate would fail beside it: the error says which setting to change, and where.
    lab = dataclasses.replace(tiny_lab, max_cost=0.5)
    with Evaluator(lab, cache) as ev, pytest.raises(EvaluationError) as info:
        ev.score([seeds.seed_candidate("gelu")])
    message = str(info.value)
    assert message.startswith("reference relu failed: costs 1.0x GELU"), message
    assert message.endswith(f"(limit 0.5x): raise max_cost in {lab.path}'s [lab]"), message


def test_a_reference_that_times_out_on_the_lab_names_its_timeout_key(
    tiny_lab: Lab, cache: FitnessCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    late = TaskResult("timeout", "training did not finish within 1 s")
    with Evaluator(tiny_lab, cache) as ev:
        ref = ev.reference.code_hash
        results = {t.digest(): late for t in tiny_lab.tasks}
        monkeypatch.setattr(
            ev._results, "gather", lambda admitted: {ref: types.SimpleNamespace(results=results)}
        )
        with pytest.raises(EvaluationError) as info:
            ev.score([])
    message = str(info.value)
    assert message.startswith("reference relu failed on the lab: task 'sine': training"), message
    assert message.endswith(f"raise timeout in {tiny_lab.path}'s [lab]"), message


def test_leaving_on_an_error_refuses_a_late_worker_start(
    tiny_lab: Lab, cache: FitnessCache
) -> None:
    # A search's evaluation thread may still be starting a worker when the evaluator is left
    # on an error: the start that comes after must not leave a process behind.
    with pytest.raises(RuntimeError), Evaluator(tiny_lab, cache) as ev:
        raise RuntimeError("the run failed")
    with pytest.raises(EvaluationError, match="interrupted"):
        ev._worker.start()
    assert not ev._worker.running
