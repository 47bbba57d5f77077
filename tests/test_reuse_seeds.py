"""Reuse across seeds: a shared result is verified on what every seed's network fed the
activation, not only seed 0's, whose trace is sampled in full."""

from __future__ import annotations

from pathlib import Path

import torch

from minact.cache import FitnessCache
from minact.candidate import Candidate
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import load_lab
from minact.lab.task import Lab
from minact.sandbox.fingerprint import REACH
from minact.score import Score, TaskResult
from minact.validate import validate

CONFIG = EvaluatorConfig(threads=1)
BEYOND = 200.0  # where "wide" differs from ReLU: past the probes, reached by seed 2 alone


def _lab(path: Path) -> Lab:
    path.write_text(
        "[lab]\nwidth = 8\ndepth = 2\nsteps = 25\nlr = 0.02\nseeds = 3\nn_train = 32\n"
        'n_test = 32\n\n[[task]]\nname = "sine"\nfamily = "harmonic"\ntarget = "sin(3*x)"\n'
        "test = [-100.0, 100.0]\n"
    )
    return load_lab(path)


def _cand(body: str, name: str) -> Candidate:
    c = validate(f"def activation(x):\n    return {body}\n", name=name)
    assert isinstance(c, Candidate), c
    return c


def _score(lab: Lab, cache: FitnessCache, *cands: Candidate) -> dict[str, Score]:
    with Evaluator(lab, cache, CONFIG) as ev:
        return {s.name: s for s in ev.score(list(cands))}


def _reach(lab: Lab) -> list[float]:
    """Returns the largest |pre-activation| each seed's network of the lab's task fed
    ReLU while it trained and was scored (initial weights depend on task and seed only)."""
    from minact.sandbox.trainer import Job, Trainer

    task = lab.tasks[0]
    most = torch.zeros(task.settings.seeds)

    def record(z: torch.Tensor) -> torch.Tensor:
        if z.shape[0] == task.settings.seeds:  # the training batch, all networks at once
            most.copy_(torch.maximum(most, z.detach().reshape(len(most), -1).abs().amax(1)))
        return torch.relu(z)

    Trainer("cpu").train([Job(0, record, task)])
    return most.tolist()


def test_code_that_differs_only_where_another_seed_reached_trains_itself(
    cache: FitnessCache, tmp_path: Path
) -> None:
    lab = _lab(tmp_path / "tasks.toml")
    reach = _reach(lab)
    # The premise: seed 0 never reaches BEYOND (nor do the probes), a later seed does.
    assert REACH < reach[0] < BEYOND < max(reach[1:]), reach
    relu = _cand("F.relu(x)", "relu")
    wide = _cand(f"torch.where(x.abs() > {BEYOND}, 2.0 * x, F.relu(x))", "wide")
    got = _score(lab, cache, relu, wide)
    with FitnessCache(tmp_path / "fresh", EVALUATOR_VERSION) as other:
        honest = _score(lab, other, wide)["wide"]
    assert got["wide"].tasks == honest.tasks and got["wide"].fitness == honest.fitness
    assert got["wide"].tasks != got["relu"].tasks  # the seed that reached it trained otherwise
    assert got["wide"].collision is not None and not got["wide"].cached


def test_a_result_traced_on_seed_0_alone_is_not_shared(cache: FitnessCache, tmp_path: Path) -> None:
    # What an older minact cached: the trace of seed 0 only (no "traced" field). Another
    # code may not reuse it on a lab of 3 seeds; it trains itself (no collision: nothing
    # says they differ), and the producer keeps its own result.
    lab = _lab(tmp_path / "tasks.toml")
    relu = _cand("F.relu(x)", "relu")
    first = _score(lab, cache, relu)["relu"]
    assert first.behaviour_hash is not None
    key, task, digest = first.behaviour_hash, lab.tasks[0].digest(), lab.digest()
    stored = cache.get_result(key, task, digest)
    assert stored is not None and stored.producer is not None
    assert stored.result.traced == 3 == len(stored.result.ood)
    old = {k: v for k, v in stored.result.to_dict().items() if k != "traced"}
    old["trace"] = [v for v in old["trace"] if abs(v) < BEYOND]  # seed 0's reach: < BEYOND
    cache.put_result(key, task, digest, TaskResult.from_dict(old), stored.producer)
    wide = _cand(f"torch.where(x.abs() > {BEYOND}, 2.0 * x, F.relu(x))", "wide")
    got = _score(lab, cache, relu, wide)
    assert got["relu"].cached and got["relu"].tasks == first.tasks
    assert not got["wide"].cached and got["wide"].collision is None
    assert got["wide"].tasks != first.tasks
