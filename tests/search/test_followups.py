"""Tests for the follow-up rule: follow-ups stop for a model whose follow-ups yield less
than its first requests, stay for one whose follow-ups pay, are judged per model in an
ensemble, and are granted the same way however the replies are timed or replayed."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from minact.lab.task import Lab
from minact.outcome import Outcome, Reply
from minact.runs.history import History
from minact.score import Score
from minact.search.ensemble import Ensemble
from minact.search.followups import FollowUpRule, Tally, upper_bound
from minact.search.loop import SearchConfig, Summary, run
from minact.search.proposers import (
    ProposalRequest,
    RecordingProposer,
    ReplayProposer,
    load_replay,
)
from tests.fakes import FakeEvaluator, ScriptedProposer, fenced


def _run(lab: Lab, config: SearchConfig, proposer: Any) -> tuple[Summary, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    summary = asyncio.run(run(config, lab, proposer, FakeEvaluator(), events.append))
    return summary, events


def _stubborn(request: ProposalRequest) -> Reply:
    """Every other first reply is new; told what was wrong, it copies gelu again."""
    k = request.index
    if request.turn == 0 and k % 2 == 0:
        return Reply(fenced(f"torch.sin({k + 1} * x) + x"))
    return Reply(fenced("F.gelu(x)"))


def _learner(request: ProposalRequest) -> Reply:
    """Every first reply copies gelu; told so, it writes a new function."""
    k = request.index
    if request.turn == 0:
        return Reply(fenced("F.gelu(x)"))
    return Reply(fenced(f"torch.sin({k + 1} * x) + {request.turn} * x"))


def _outcome(index: int, turns: int, new: bool, kind: str = "") -> Outcome:
    score = Score(f"c{index}", None, "", "ok", "", None, -0.5) if new else None  # type: ignore[arg-type]
    return Outcome(index, kind or ("evaluated" if new else "duplicate"), score=score, turns=turns)


def test_the_upper_bound_is_wilsons_and_shrinks_with_evidence() -> None:
    assert upper_bound(0, 0) == 1.0
    assert upper_bound(0, 3) == pytest.approx(0.75 / 1.75)  # z = 1.5: (0.375 + 0.375) / 1.75
    assert upper_bound(3, 3) == 1.0
    assert upper_bound(1, 4) > upper_bound(2, 16) > upper_bound(20, 160) > 0.125
    # A model whose follow-ups yield 1 in 3 against 2 in 3 for first requests loses them
    # once the evidence is there, not after one unlucky follow-up.
    assert Tally(first=1, first_new=1, follow_ups=1).paying()
    assert not Tally(first=30, first_new=20, follow_ups=30, follow_up_new=10).paying()
    assert Tally(first=30, first_new=10, follow_ups=30, follow_up_new=10).paying()


def test_the_rule_grants_per_model_and_counts_replies_only() -> None:
    config = SearchConfig(budget=1, seed=3, models=("a", "b"))
    rule = FollowUpRule(2, config)
    drawn = {k: rule._model(k) for k in range(40)}
    assert set(drawn.values()) == {"a", "b"}
    for k, model in drawn.items():  # a's first replies help half the time, its follow-ups
        if model == "b":  # never; b's follow-ups always help
            rule.note(_outcome(k, 2, new=True))
        else:
            rule.note(_outcome(k, 1, new=True) if k % 2 else _outcome(k, 3, new=False))
    for k in range(40, 45):
        assert rule.grant(k) == (2 if rule._model(k) == "b" else 0)
    errors = FollowUpRule(2, config)
    for k in range(40):
        errors.note(_outcome(k, 3, new=False, kind="llm_error"))
    assert errors.tallies == {} and errors.grant(0) == 2
    always = FollowUpRule(2, replace(config, follow_up_rule="always"))
    for k in range(40):
        always.note(_outcome(k, 3, new=False))
    assert always.grant(0) == 2 and FollowUpRule(0, config).grant(0) == 0


def test_follow_ups_stop_when_they_yield_less_than_first_requests(tiny_lab: Lab) -> None:
    base = dict(budget=10, concurrency=2, seed=1, follow_ups=2)
    paying, events = _run(tiny_lab, SearchConfig(**base), ScriptedProposer(_stubborn))
    always, _ = _run(tiny_lab, SearchConfig(**base, follow_up_rule="always"),
                     ScriptedProposer(_stubborn))  # fmt: skip
    for s in (paying, always):
        assert s.status == "finished" and s.counters.evaluated == 10
    p, a = paying.counters, always.counters
    assert a.follow_ups == 2 * a.duplicates > 0  # every copy answered twice, in vain
    assert 0 < p.follow_ups < a.follow_ups and p.calls < a.calls
    assert p.follow_up_new == a.follow_up_new == 0 and p.first_new == a.first_new == 10
    # Once stopped, they stay stopped: the first proposals had them, the later ones none.
    turns = [e["turns"] for e in events if e["event"] == "outcome"]
    last_answered = max(i for i, t in enumerate(turns) if t > 1)
    assert all(t == 1 for t in turns[last_answered + 1 :]) and len(turns) > last_answered + 4


def test_follow_ups_that_pay_are_kept(tiny_lab: Lab) -> None:
    base = dict(budget=8, concurrency=2, seed=2, follow_ups=2)
    paying, p_events = _run(tiny_lab, SearchConfig(**base), ScriptedProposer(_learner))
    always, a_events = _run(tiny_lab, SearchConfig(**base, follow_up_rule="always"),
                            ScriptedProposer(_learner))  # fmt: skip
    assert paying.counters.to_dict() == always.counters.to_dict()
    assert paying.counters.follow_up_new == 8 and paying.counters.first_new == 0
    assert [e for e in p_events if e["event"] == "outcome"] == [
        e for e in a_events if e["event"] == "outcome"
    ]


def test_each_model_of_an_ensemble_is_judged_on_its_own(tiny_lab: Lab) -> None:
    members = {"a": ScriptedProposer(_stubborn), "b": ScriptedProposer(_learner)}
    config = SearchConfig(budget=16, concurrency=2, seed=3, follow_ups=1, models=("a", "b"))
    summary, events = _run(tiny_lab, config, Ensemble(members))
    assert summary.status == "finished"
    late = [e for e in events if e["event"] == "outcome"][-6:]
    assert {e["model"] for e in late} == {"a", "b"}  # the drawing mixes them to the end
    for e in late:  # a lost its follow-ups; b, whose follow-ups pay, kept them
        assert e["turns"] == (2 if e["model"] == "b" else 1), e


def test_the_rule_decides_the_same_whatever_the_timing_and_in_a_replay(
    tiny_lab: Lab, tmp_path: Path
) -> None:
    config = SearchConfig(budget=10, concurrency=3, seed=4, follow_ups=2)
    record = tmp_path / "llm.jsonl"
    live, live_events = _run(tiny_lab, config, RecordingProposer(ScriptedProposer(_stubborn),
                                                                 record))  # fmt: skip
    retimed, retimed_events = _run(
        tiny_lab, config, ScriptedProposer(_stubborn, delay=lambda k: ((k * 7) % 5) * 0.003)
    )
    replayed, replayed_events = _run(tiny_lab, config, ReplayProposer(load_replay(record)))

    def outcomes(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(e["index"], e["kind"], e["turns"]) for e in events if e["event"] == "outcome"]

    assert outcomes(live_events) == outcomes(retimed_events) == outcomes(replayed_events)
    assert live.counters.to_dict() == retimed.counters.to_dict() == replayed.counters.to_dict()
    assert 0 < live.counters.follow_ups < 2 * live.counters.duplicates + live.counters.follow_ups


def test_a_resumed_run_grants_what_the_whole_run_granted(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=10, concurrency=2, seed=4, follow_ups=2)
    whole, events = _run(tiny_lab, config, ScriptedProposer(_stubborn))
    assert 0 < whole.counters.follow_ups < 2 * whole.counters.duplicates  # the rule stopped them
    outcomes = [n for n, e in enumerate(events) if e["event"] == "outcome"]
    cut = events[: outcomes[len(outcomes) // 2] + 1]  # killed half-way
    resumed, more = asyncio.run(_resume(tiny_lab, config, cut))
    assert resumed.counters.to_dict() == whole.counters.to_dict()
    turns = [(e["index"], e["turns"]) for e in cut + more if e["event"] == "outcome"]
    assert turns == [(e["index"], e["turns"]) for e in events if e["event"] == "outcome"]


async def _resume(
    lab: Lab, config: SearchConfig, cut: list[dict[str, Any]]
) -> tuple[Summary, list[dict[str, Any]]]:
    more: list[dict[str, Any]] = []
    history = History.from_events(cut)
    summary = await run(config, lab, ScriptedProposer(_stubborn), FakeEvaluator(), more.append,
                        None, history)  # fmt: skip
    return summary, more
