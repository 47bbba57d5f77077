"""Tests for the evaluation cascade (minact.search.cascade) with the real evaluator and worker."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from minact.cache import FitnessCache
from minact.evaluate import EVALUATOR_VERSION, Evaluator
from minact.lab.cascade import Cascade, stage_tasks
from minact.lab.loader import load_lab
from minact.lab.task import Lab
from minact.score import Score
from minact.search.cascade import Screen
from minact.search.population import Member, Population
from tests.conftest import ASSETS, candidate

LAB = ASSETS / "cascade_tasks.toml"


@pytest.fixture(scope="module")
def lab() -> Lab:
    return load_lab(LAB)


@pytest.fixture(scope="module")
def evaluator(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evaluator]:
    with FitnessCache(tmp_path_factory.mktemp("cascade-cache"), EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache) as ev:
            yield ev


def _screen(evaluator: Evaluator, lab: Lab) -> Screen:
    c = lab.cascade
    assert c is not None
    return Screen(evaluator, evaluator.on_tasks(stage_tasks(lab.tasks, c.tasks, c.seed)), c, 4)


def test_a_candidate_above_the_bar_is_screened_with_its_stage_one_scores(
    evaluator: Evaluator, lab: Lab
) -> None:
    screen = _screen(evaluator, lab)
    screen.bars[0] = -50.0  # no stage-1 fitness is that good: screened
    cand = candidate("torch.tanh(x) + 0.3 * torch.sin(2 * x)", "wiggle")
    (s,) = screen.score([cand], [0])
    stage = [t.name for t in stage_tasks(lab.tasks, 2, 0)]
    assert s.status == "screened" and not s.ok
    assert s.fitness is None and s.mean_ood_mse is None
    assert sorted(s.tasks) == sorted(stage)
    assert s.partial_fitness is not None
    assert s.partial_fitness == pytest.approx(sum(t.log_ratio for t in s.tasks.values()) / 2)
    assert "stage 1" in s.reason and "2 of 4 tasks" in s.reason
    assert Score.from_dict(s.to_dict()) == s  # it replays from the event log


def test_the_full_evaluation_reuses_the_stage_one_results_from_the_cache(
    evaluator: Evaluator, lab: Lab
) -> None:
    screen = _screen(evaluator, lab)
    screen.bars[0] = -50.0
    cand = candidate("F.softplus(x) - 0.2 * torch.cos(3 * x)", "reused")
    (screened,) = screen.score([cand], [0])
    assert screened.behaviour_hash is not None
    cache, digest = evaluator.cache, lab.digest()
    stage = stage_tasks(lab.tasks, 2, 0)
    rest = [t for t in lab.tasks if t not in stage]
    assert all(cache.get_result(screened.behaviour_hash, t.digest(), digest) for t in stage)
    assert not any(cache.get_result(screened.behaviour_hash, t.digest(), digest) for t in rest)
    # Mark one cached stage-1 result: the full evaluation must show it, not retrain the task.
    stored = cache.get_result(screened.behaviour_hash, stage[0].digest(), digest)
    assert stored is not None and stored.producer is not None
    marked = dataclasses.replace(stored.result, ood=(123.0,))
    cache.put_result(screened.behaviour_hash, stage[0].digest(), digest, marked, stored.producer)
    (full,) = [s for s in evaluator.score([cand]) if s.code_hash == cand.code_hash]
    assert full.ok and full.fitness is not None
    assert full.tasks[stage[0].name].ood_loss == 123.0
    assert full.tasks[stage[1].name] == screened.tasks[stage[1].name]
    assert all(cache.get_result(screened.behaviour_hash, t.digest(), digest) for t in rest)


def test_a_candidate_within_the_bar_or_without_one_gets_its_full_score(
    evaluator: Evaluator, lab: Lab
) -> None:
    screen = _screen(evaluator, lab)
    screen.bars[0] = 50.0  # every stage-1 fitness is within it: it goes on
    a = candidate("torch.tanh(x) + 0.1 * x", "goes-on")
    b = candidate("F.elu(x) + 0.05 * torch.sin(x)", "no-bar")  # proposal 1 has no bar
    got = screen.score([a, b], [0, 1])
    assert [s.status for s in got] == ["ok", "ok"]
    again = evaluator.score([a, b])[1:]  # the same numbers as in full (the reference first)
    assert [(s.fitness, s.tasks) for s in got] == [(s.fitness, s.tasks) for s in again]
    assert all(len(s.tasks) == 4 for s in got)


def test_a_failure_in_stage_one_is_the_candidates_outcome(evaluator: Evaluator, lab: Lab) -> None:
    screen = _screen(evaluator, lab)
    screen.bars[0] = 50.0
    (s,) = screen.score([candidate("torch.exp(x) ** 40", "blows-up")], [0])
    assert s.status == "nonfinite" and s.partial_fitness is None


def test_copies_of_one_code_in_a_batch_take_the_highest_bar(evaluator: Evaluator, lab: Lab) -> None:
    screen = _screen(evaluator, lab)
    screen.bars[0], screen.bars[1] = 50.0, -50.0
    cand = candidate("torch.tanh(x) + 0.1 * x", "goes-on")
    assert [s.status for s in screen.score([cand, cand], [0, 1])] == ["ok"]


def test_the_bar_is_the_kth_best_fitness_plus_the_margin() -> None:
    pop = Population(islands=1)
    cascade = Cascade(tasks=2, top=2, margin=0.25)
    assert Screen.bar(pop, cascade) is None
    for i, f in enumerate((0.5, -0.1)):
        pop.add(Member(Score(f"m{i}", None, "", "ok", fitness=f), i, 0, "offline"))
    assert Screen.bar(pop, cascade) == pytest.approx(0.75)
    pop.add(Member(Score("m2", None, "", "ok", fitness=0.0), 2, 0, "offline"))
    assert Screen.bar(pop, cascade) == pytest.approx(0.25)
    # A screened member is no failure the prompts should show, and no parent.
    pop.add(Member(Score("s", None, "", "screened", partial_fitness=2.0), 3, 0, "offline"))
    assert pop.failures(5) == [] and len(pop.ranked()) == 3


def test_without_a_cascade_everything_is_scored_in_full(evaluator: Evaluator) -> None:
    screen = Screen(evaluator)
    screen.note(0, Population())
    assert screen.bars == {}
    cand = candidate("torch.tanh(x) + 0.1 * x")
    (s,) = [s for s in screen.score([cand], [0]) if s.code_hash == cand.code_hash]
    assert s.ok and len(s.tasks) == 4
