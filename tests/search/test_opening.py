"""Tests for a run's opening proposals: with an LLM, the first requests go out while the
built-ins are scored, and what they ask never depends on when the seeds' scores arrive."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from minact import seeds
from minact.candidate import Candidate
from minact.lab.cascade import Cascade
from minact.lab.task import Lab
from minact.outcome import Reply
from minact.runs.history import History
from minact.score import Score
from minact.search.cascade import Screen
from minact.search.loop import Loop, SearchConfig, Summary, run
from minact.search.proposers import OfflineProposer, ProposalRequest
from tests.fakes import FakeEvaluator, ScriptedProposer, fenced

N_SEEDS = len(seeds.SEEDS)


class _SlowSeeds(FakeEvaluator):
    """Scores the built-ins only once `release` is set (or after `wait` seconds)."""

    def __init__(self, wait: float = 0.0) -> None:
        super().__init__(batch=N_SEEDS)
        self.release = threading.Event()
        self.wait = wait
        self.released_in_time: bool | None = None

    def score(self, candidates: Sequence[Candidate]) -> list[Score]:
        if self.released_in_time is None:  # the first call: the built-ins
            self.released_in_time = self.release.wait(self.wait)
        return super().score(candidates)


def _run(
    lab: Lab,
    config: SearchConfig,
    proposer: Any,
    evaluator: FakeEvaluator | None = None,
    history: History | None = None,
) -> tuple[Summary, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    evaluator = evaluator or FakeEvaluator()
    summary = asyncio.run(run(config, lab, proposer, evaluator, events.append, None, history))
    return summary, events


def _copier(request: ProposalRequest) -> Reply:
    """Copies a built-in first (the opening proposals know them), then writes new code."""
    k, turn = request.index, request.turn
    if k % 2 == 0 and turn == 0:
        return Reply(fenced("F.gelu(x)"))
    if k % 3 == 0 and turn <= 1:
        return Reply(fenced("torch.tanh(x) + 0 * x"))  # tanh's behaviour, seen once probed
    return Reply(fenced(f"torch.sin({k + 1} * x) + {turn + 1} * x"))


def _asked(proposer: ScriptedProposer) -> dict[tuple[int, int], list[dict[str, str]]]:
    return {(r.index, r.turn): r.messages for r in proposer.requests}


def _ranking(summary: Summary) -> list[tuple[str, float | None]]:
    return [(m.score.source, m.score.fitness) for m in summary.population.ranked()]


def test_the_first_requests_go_out_while_the_seeds_are_scored(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=6, concurrency=2, seed=3)  # 4 opening proposals
    evaluator = _SlowSeeds(wait=60.0)
    before_scores: list[int] = []

    def answer(request: ProposalRequest) -> Reply:
        if not evaluator.release.is_set():
            before_scores.append(request.index)
        if len(before_scores) == config.lookahead:
            evaluator.release.set()  # the seeds finish only once all four were asked
        return Reply(fenced(f"torch.sin({request.index + 2} * x)"))

    proposer = ScriptedProposer(answer)
    summary, events = _run(tiny_lab, config, proposer, evaluator)
    assert evaluator.released_in_time is True
    assert before_scores == [0, 1, 2, 3]
    assert summary.status == "finished" and summary.counters.evaluated == 6
    kinds = [(e["event"], e.get("index"), e.get("opening")) for e in events]
    first_seed = next(i for i, k in enumerate(kinds) if k[0] == "seed")
    assert [k for k in kinds[:first_seed] if k[0] == "proposal"] == [
        ("proposal", k, True) for k in range(4)
    ]
    later = [e for e in events if e["event"] == "proposal" and e["index"] >= 4]
    assert later and not any("opening" in e for e in later)
    # Nothing is applied before the seeds: outcomes come after every seed, in order.
    outcomes = [i for i, k in enumerate(kinds) if k[0] == "outcome"]
    seeds_at = [i for i, k in enumerate(kinds) if k[0] == "seed"]
    assert min(outcomes) > max(seeds_at)


def test_an_opening_request_shows_the_builtins_code_and_no_scores(tiny_lab: Lab) -> None:
    proposer = ScriptedProposer(_copier)
    _run(tiny_lab, SearchConfig(budget=6, concurrency=2, seed=1, follow_ups=2), proposer)
    asked = _asked(proposer)
    user = asked[(0, 0)][1]["content"]
    assert "a built-in activation (its scores are not known yet)" in user
    assert "fitness +" not in user and "fitness -" not in user
    assert "ALREADY SCORED" in user and "F.relu(x)" in user
    # Its copy of gelu is answered with what it copies, although no score was known.
    assert "identical to gelu = F.gelu(x) (a built-in activation)" in asked[(0, 1)][3]["content"]
    # Once probed, its second reply behaves as tanh, a built-in: answered once more.
    assert "computes the same values as tanh" in asked[(0, 2)][5]["content"]
    # A proposal built after the seeds' scores shows them.
    late = max(k for k, _ in asked)
    assert late >= 4 and "fitness" in asked[(late, 0)][1]["content"]


def test_what_a_run_asks_does_not_depend_on_when_the_seeds_finish(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=8, concurrency=2, seed=5, follow_ups=2)
    fast = ScriptedProposer(_copier)
    quick, quick_events = _run(tiny_lab, config, fast)
    # The seeds take longer than every opening reply, which also arrive in a scrambled order.
    slow = ScriptedProposer(_copier, delay=lambda k: ((k * 7) % 5) * 0.003)
    slowly, slow_events = _run(tiny_lab, config, slow, _SlowSeeds(wait=0.2))
    assert _asked(fast) == _asked(slow)
    assert _ranking(quick) == _ranking(slowly)
    assert quick.counters.to_dict() == slowly.counters.to_dict()

    def decisions(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        kept = ("outcome", "follow_up")
        return sorted(
            (e["event"], e["index"], e.get("turn", 0), e.get("kind"), e.get("reason"))
            for e in events
            if e["event"] in kept
        )

    assert decisions(quick_events) == decisions(slow_events)


def test_a_run_resumed_during_its_opening_asks_the_same(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=8, concurrency=2, seed=9, follow_ups=1)
    first = ScriptedProposer(_copier)
    whole, events = _run(tiny_lab, config, first)
    # Killed after two outcomes, with the replies of proposals 0-2 logged.
    cut = [e for e in events if not (e["event"] == "outcome" and e["index"] >= 2)]
    cut = [e for e in cut if not (e["event"] in ("proposal", "reply", "follow_up")
                                  and e["index"] >= 3)]  # fmt: skip
    again = ScriptedProposer(_copier)
    resumed, _ = _run(tiny_lab, config, again, history=History.from_events(cut))
    assert _ranking(resumed) == _ranking(whole)
    asked_again = _asked(again)
    assert asked_again and min(k for k, _ in asked_again) >= 3
    assert all(_asked(first)[key] == messages for key, messages in asked_again.items())


def test_the_offline_mutator_waits_for_the_scores(tiny_lab: Lab) -> None:
    evaluator = _SlowSeeds(wait=0.2)  # never released: the seeds take 0.2 s
    summary, events = _run(tiny_lab, SearchConfig(budget=3, seed=2), OfflineProposer(), evaluator)
    assert summary.status == "finished" and evaluator.released_in_time is False
    kinds = [e["event"] for e in events]
    assert kinds.index("proposal") > max(i for i, k in enumerate(kinds) if k == "seed")
    assert not any(e.get("opening") for e in events)


class _BrokenLab(FakeEvaluator):
    """Every candidate fails: the lab (or the evaluator) is broken."""

    def score(self, candidates: Sequence[Candidate]) -> list[Score]:
        return [
            Score(c.name, c.code_hash, c.source, "nonfinite", "f(x) is not finite")
            for c in [self.reference, *candidates]
        ]


def test_a_run_whose_seeds_all_fail_ends_without_waiting_for_its_requests(tiny_lab: Lab) -> None:
    # The opening requests would take ten minutes: the run must cancel them, not wait.
    proposer = ScriptedProposer(lambda r: Reply(fenced("torch.sin(x)")), delay=lambda k: 600.0)
    config = SearchConfig(budget=4, concurrency=2)

    async def main() -> Summary:
        events: list[dict[str, Any]] = []
        return await asyncio.wait_for(
            run(config, tiny_lab, proposer, _BrokenLab(), events.append), timeout=60
        )

    summary = asyncio.run(main())
    assert summary.status == "failed" and "every built-in seed failed" in summary.message
    assert len(proposer.requests) == 2  # the opening requests had gone out (2 slots)


def test_an_opening_proposal_gets_the_cascade_bar_of_the_seeds(tiny_lab: Lab) -> None:
    cascade = Cascade(tasks=1, top=3, margin=0.1)
    screen = Screen(FakeEvaluator(), FakeEvaluator(), cascade, lab_tasks=2)
    proposer = ScriptedProposer(lambda r: Reply(fenced(f"torch.sin({r.index + 2} * x)")))
    config = SearchConfig(budget=6, concurrency=2, seed=4)
    loop = Loop(config, tiny_lab, proposer, FakeEvaluator(), lambda e: None, None, History(),
                screen)  # fmt: skip
    summary = asyncio.run(loop.run())
    assert summary.status == "finished"
    seeds_only = sorted(
        m.score.fitness
        for m in summary.population.members
        if m.origin == "seed" and m.score.fitness is not None
    )
    bar = seeds_only[cascade.top - 1] + cascade.margin
    assert [screen.bars[k] for k in range(config.lookahead)] == [pytest.approx(bar)] * 4
