"""Tests for follow-ups and ensembles in the search loop: a copy is answered in the same
conversation with what it copies, the call cap counts every exchange, and recorded,
replayed, resumed and re-timed runs make the same decisions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from minact.lab.task import Lab
from minact.outcome import Counters, Reply
from minact.runs.history import History
from minact.search.ensemble import Ensemble
from minact.search.loop import SearchConfig, Summary, run
from minact.search.proposers import (
    OfflineProposer,
    ProposalRequest,
    RecordingProposer,
    ReplayProposer,
    load_replay,
)
from tests.fakes import FakeEvaluator, ScriptedProposer, fenced


def _run(
    lab: Lab, config: SearchConfig, proposer: Any, history: History | None = None
) -> tuple[Summary, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    summary = asyncio.run(run(config, lab, proposer, FakeEvaluator(), events.append, None, history))
    return summary, events


def _copier(request: ProposalRequest) -> Reply:
    """Copies gelu, then (once told) copies tanh's behaviour, then writes something new."""
    k, turn = request.index, request.turn
    if k % 3 == 0 and turn == 0:
        return Reply(fenced("F.gelu(x)"))
    if k % 3 == 0 and turn == 1:
        return Reply(fenced("torch.tanh(x) + 0 * x"))  # tanh's behaviour (FakeEvaluator)
    if k % 3 == 1 and turn == 0:
        return Reply("No code today.")
    return Reply(fenced(f"torch.sin({k + 1} * x) + {turn + 1} * x"))


def _outcomes(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["index"], e["kind"], e["reason"], e["turns"], (e["score"] or {}).get("fitness"))
        for e in events
        if e["event"] == "outcome"
    ]


def test_a_copy_is_answered_in_the_same_conversation_with_what_it_copies(tiny_lab: Lab) -> None:
    proposer = ScriptedProposer(_copier)
    config = SearchConfig(budget=4, concurrency=2, seed=1, follow_ups=2)
    summary, events = _run(tiny_lab, config, proposer)
    assert summary.status == "finished"
    by_turn = {(r.index, r.turn): r for r in proposer.requests}
    first, second, third = by_turn[(0, 0)], by_turn[(0, 1)], by_turn[(0, 2)]
    # The prefix stays as sent (the server's prompt cache), then the reply and the reason.
    assert second.messages[:2] == first.messages
    assert second.messages[2] == {"role": "assistant", "content": fenced("F.gelu(x)")}
    # Proposal 0 opens the run: it was built before the built-ins' scores were known.
    assert "identical to gelu = F.gelu(x) (a built-in activation)" in second.messages[3]["content"]
    # Scored, the second reply shows tanh's behaviour: answered once more.
    assert third.messages[:4] == second.messages
    assert "computes the same values as tanh" in third.messages[5]["content"]
    assert "could not use your reply" in by_turn[(1, 1)].messages[3]["content"]
    follow = [e for e in events if e["event"] == "follow_up"]
    assert sorted((e["index"], e["turn"], e["kind"]) for e in follow)[:3] == [
        (0, 0, "duplicate"),
        (0, 1, "duplicate"),
        (1, 0, "parse_failure"),
    ]
    c = summary.counters
    assert c.follow_ups == len(follow) and c.calls == c.proposals + c.follow_ups
    assert c.follow_up_reasons == {
        "duplicate": sum(e["kind"] == "duplicate" for e in follow),
        "parse_failure": sum(e["kind"] == "parse_failure" for e in follow),
    }
    first_outcome = next(e for e in events if e["event"] == "outcome")
    assert first_outcome["kind"] == "evaluated" and first_outcome["turns"] == 3


def test_a_candidate_that_fails_a_check_is_answered_with_the_failure(tiny_lab: Lab) -> None:
    def log_first(request: ProposalRequest) -> Reply:
        if request.turn == 0:
            return Reply(fenced(f"torch.log({request.index + 2} * x)"))  # nonfinite (fake)
        return Reply(fenced(f"torch.sin({request.index + 2} * x)"))

    proposer = ScriptedProposer(log_first)
    summary, _ = _run(tiny_lab, SearchConfig(budget=3, seed=1, follow_ups=1), proposer)
    answer = next(r for r in proposer.requests if r.turn == 1).messages[-1]["content"]
    assert "failed when it was run: nonfinite: f(x) is not finite" in answer
    assert summary.counters.follow_up_reasons == {"failed": 3} and not summary.counters.failures
    # With no follow-up left, the failure is the outcome, as before.
    once, _ = _run(tiny_lab, SearchConfig(budget=3, seed=1), ScriptedProposer(log_first))
    assert once.counters.failures == {"nonfinite": 3}


def test_without_follow_ups_a_copy_is_a_duplicate_outcome(tiny_lab: Lab) -> None:
    summary, events = _run(tiny_lab, SearchConfig(budget=3, seed=1), ScriptedProposer(_copier))
    assert summary.counters.follow_ups == 0 and summary.counters.duplicates >= 1
    dup = next(e for e in events if e["event"] == "outcome" and e["kind"] == "duplicate")
    assert dup["reason"].startswith("identical to gelu")


def test_no_follow_up_is_sent_past_the_models_context(tiny_lab: Lab) -> None:
    roomy = SearchConfig(budget=3, seed=1, follow_ups=2, context_chars=100_000)
    tight = SearchConfig(budget=3, seed=1, follow_ups=2, context_chars=3000)  # opening only
    asked, _ = _run(tiny_lab, roomy, ScriptedProposer(_copier))
    proposer = ScriptedProposer(_copier)
    cramped, _ = _run(tiny_lab, tight, proposer)
    assert asked.counters.follow_ups > 0 and cramped.counters.follow_ups == 0
    assert all(r.turn == 0 for r in proposer.requests)


def test_the_call_cap_counts_follow_ups_whatever_the_timing(tiny_lab: Lab) -> None:
    def always_gelu(request: ProposalRequest) -> Reply:
        return Reply(fenced("F.gelu(x)"))

    config = SearchConfig(budget=5, concurrency=3, seed=2, max_calls=10, follow_ups=2)
    results = []
    for delay in (None, lambda k: ((k * 7) % 5) * 0.003):
        summary, events = _run(tiny_lab, config, ScriptedProposer(always_gelu, delay=delay))
        results.append((summary.status, summary.counters.to_dict(), _outcomes(events)))
    assert results[0] == results[1]
    status, counters, _ = results[0]
    assert status == "call_cap" and counters["calls"] == 10
    assert counters["proposals"] == 4  # 3 + 3 + 3 exchanges, then the 1 left


def test_a_recorded_run_with_follow_ups_replays_identically(tiny_lab: Lab, tmp_path: Path) -> None:
    record = tmp_path / "llm.jsonl"
    config = SearchConfig(budget=6, concurrency=3, seed=4, follow_ups=2)
    live, live_events = _run(tiny_lab, config, RecordingProposer(ScriptedProposer(_copier), record))
    replies = load_replay(record)
    assert (0, 1) in replies and (0, 2) in replies  # the follow-up exchanges are recorded
    again, again_events = _run(tiny_lab, config, ReplayProposer(replies))
    assert _outcomes(again_events) == _outcomes(live_events)
    assert [m.score.code_hash for m in again.population.ranked()] == [
        m.score.code_hash for m in live.population.ranked()
    ]
    assert again.counters.follow_ups == live.counters.follow_ups > 0


def test_resume_in_the_middle_of_a_conversation(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=6, concurrency=2, seed=4, follow_ups=2)
    whole, events = _run(tiny_lab, config, ScriptedProposer(_copier))
    # Killed after proposal 3's first follow-up was logged: its second turn is redone.
    stop = next(n for n, e in enumerate(events) if e["event"] == "follow_up" and e["index"] == 3)
    cut = [e for e in events[: stop + 1] if not (e["event"] == "outcome" and e["index"] >= 3)]
    proposer = ScriptedProposer(_copier)
    resumed, new_events = _run(tiny_lab, config, proposer, History.from_events(cut))
    assert [m.score.code_hash for m in resumed.population.ranked()] == [
        m.score.code_hash for m in whole.population.ranked()
    ]
    assert resumed.counters.to_dict() == whole.counters.to_dict()
    assert (3, 0) not in {(r.index, r.turn) for r in proposer.requests}  # not asked again
    assert _outcomes(cut + new_events) == _outcomes(events)
    logged = [(e["index"], e["turn"]) for e in cut + new_events if e["event"] == "follow_up"]
    assert len(logged) == len(set(logged))  # nothing logged twice


class _OneKeyAtATime(dict[tuple[int, int], Reply]):
    """A log's replies that refuse to be listed: only looked up, one key at a time."""

    def __iter__(self) -> Any:
        raise AssertionError("all the log's replies were listed")

    def items(self) -> Any:
        raise AssertionError("all the log's replies were listed")


def test_a_resume_counts_each_proposal_from_its_own_exchanges(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=6, concurrency=2, seed=4, follow_ups=2)
    _, events = _run(tiny_lab, config, ScriptedProposer(_copier))
    history = History.from_events(events)
    whole = Counters()
    history.count_exchanges(whole)
    assert whole.follow_ups > 0 and len(history.turns) > len(history.outcomes)
    # Replaying proposal k looks up its own turns: replaying thousands stays linear.
    history.turns = _OneKeyAtATime(history.turns)
    by_proposal = Counters()
    for k in range(len(history.outcomes)):
        history.count_exchanges(by_proposal, k)
    assert by_proposal.to_dict() == whole.to_dict()


def test_the_offline_mutator_gets_no_follow_ups(tiny_lab: Lab) -> None:
    plain, _ = _run(tiny_lab, SearchConfig(budget=8, seed=3), OfflineProposer())
    asked, _ = _run(tiny_lab, SearchConfig(budget=8, seed=3, follow_ups=2), OfflineProposer())
    assert asked.counters.to_dict() == plain.counters.to_dict()
    assert asked.counters.follow_ups == 0


def _ensemble(delay: Any = None) -> tuple[Ensemble, dict[str, ScriptedProposer]]:
    def answer(name: str) -> Any:
        def reply(request: ProposalRequest) -> Reply:
            if name == "b" and request.index % 2:
                return Reply("I only chat.")
            return Reply(fenced(f"torch.sin({request.index + 1} * x) + {request.turn} * x"))

        return reply

    members = {n: ScriptedProposer(answer(n), delay=delay) for n in ("a", "b")}
    return Ensemble(members), members


def test_ensembles_draw_models_reproducibly_and_count_each(tiny_lab: Lab) -> None:
    config = SearchConfig(
        budget=12, concurrency=3, seed=5, follow_ups=1, models=("a", "b"), model_weights=(0.7, 0.3)
    )
    first, members = _ensemble()
    summary, events = _run(tiny_lab, config, first)
    drawn = [e["model"] for e in events if e["event"] == "proposal"]
    assert set(drawn) == {"a", "b"}
    for name, proposer in members.items():  # each request went to the model drawn for it
        assert proposer.requests and all(r.model == name for r in proposer.requests)
    retimed, _ = _ensemble(delay=lambda k: ((k * 5) % 3) * 0.004)
    again, again_events = _run(tiny_lab, config, retimed)
    assert [e["model"] for e in again_events if e["event"] == "proposal"] == drawn
    assert again.counters.to_dict() == summary.counters.to_dict()
    other, _ = _ensemble()
    _, other_events = _run(tiny_lab, SearchConfig(**{**_fields(config), "seed": 6}), other)
    assert [e["model"] for e in other_events if e["event"] == "proposal"] != drawn
    c = summary.counters
    per = c.models
    assert sum(m["calls"] for m in per.values()) == c.calls
    assert sum(m["prompt_tokens"] for m in per.values()) == c.prompt_tokens
    new_valid = sum(
        1
        for e in events
        if e["event"] == "outcome" and e["kind"] == "evaluated" and e["score"]["status"] == "ok"
    )
    assert sum(m["new_valid"] for m in per.values()) == new_valid
    outcome_models = {e["model"] for e in events if e["event"] == "outcome"}
    assert outcome_models <= {"a", "b"}


def test_the_mutators_opening_proposals_wait_for_the_seeds_and_replay(
    tiny_lab: Lab, tmp_path: Path
) -> None:
    config = SearchConfig(
        budget=10, concurrency=3, seed=2, models=("m", "offline"), model_weights=(1, 1)
    )

    def pair(delay: Any = None) -> Ensemble:
        model = ScriptedProposer(
            lambda r: Reply(fenced(f"torch.sin({r.index + 1} * x) + 0.5 * x")), delay=delay
        )
        return Ensemble({"m": model, "offline": OfflineProposer()})

    record = tmp_path / "llm.jsonl"
    live, events = _run(tiny_lab, config, RecordingProposer(pair(), record))
    first_seed = next(n for n, e in enumerate(events) if e["event"] == "seed")
    last_seed = max(n for n, e in enumerate(events) if e["event"] == "seed")
    window = [e for e in events if e["event"] == "proposal" and e["index"] < config.lookahead]
    by_model = {m: [e for e in window if e["model"] == m] for m in ("m", "offline")}
    assert by_model["m"] and by_model["offline"]  # seed 2 draws both in the opening window
    for e in by_model["m"]:  # the model's go out before the seeds are scored
        assert e.get("opening") and events.index(e) < first_seed
    for e in by_model["offline"]:  # the mutator's wait, and edit the scored built-ins
        assert not e.get("opening") and events.index(e) > last_seed
    _, retimed = _run(tiny_lab, config, pair(delay=lambda k: (k % 3) * 0.004))
    again, replayed = _run(tiny_lab, config, ReplayProposer(load_replay(record)))
    for other in (retimed, replayed):
        assert _outcomes(other) == _outcomes(events)
    assert again.counters.to_dict() == live.counters.to_dict()


def _fields(config: SearchConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in config.__dataclass_fields__}


def _slips(request: ProposalRequest) -> Reply:
    """Writes sigmoid without its module, then (if told) with it."""
    k = request.index
    if request.turn == 0:
        return Reply(fenced(f"sigmoid({k + 2} * x) * x"))
    return Reply(fenced(f"torch.sigmoid({k + 2} * x) * x"))


def test_a_slip_in_a_reply_is_repaired_and_the_repair_is_logged(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=3, seed=1, follow_ups=1)
    proposer = ScriptedProposer(_slips)
    summary, events = _run(tiny_lab, config, proposer)
    assert summary.status == "finished"
    outcomes = [e for e in events if e["event"] == "outcome"]
    assert [e["kind"] for e in outcomes] == ["evaluated"] * 3
    for e in outcomes:
        assert e["repairs"] == ["`sigmoid(…)` → `torch.sigmoid(…)`"]
        assert "torch.sigmoid(" in e["score"]["source"]
    assert summary.counters.repaired == 3 and summary.counters.follow_ups == 0
    assert all(r.turn == 0 for r in proposer.requests)  # nothing to answer
    # Recounting from the log (a report of a stopped run) agrees.
    assert History.from_events(events).counters().repaired == 3


def test_without_repair_the_slip_is_answered_with_how_to_fix_it(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=3, seed=1, follow_ups=1, repair=False)
    proposer = ScriptedProposer(_slips)
    summary, events = _run(tiny_lab, config, proposer)
    answer = next(r for r in proposer.requests if r.turn == 1).messages[-1]["content"]
    assert "calling `sigmoid` is not allowed" in answer
    assert "through their module: torch.sigmoid" in answer
    assert summary.counters.repaired == 0 and summary.counters.follow_ups == 3
    outcomes = [e for e in events if e["event"] == "outcome"]
    assert all(e["repairs"] == [] and e["kind"] == "evaluated" for e in outcomes)


def test_a_reply_no_repair_can_handle_is_rejected_and_the_run_goes_on(tiny_lab: Lab) -> None:
    # A 400-digit int in a branch made the repair raise OverflowError, which ended the run.
    def huge(request: ProposalRequest) -> Reply:
        return Reply(fenced("9" * 400 + " if x > 0 else x"))

    summary, events = _run(tiny_lab, SearchConfig(budget=2, seed=1), ScriptedProposer(huge))
    assert summary.status == "call_cap"  # nothing is ever evaluated: the calls run out
    outcomes = [e for e in events if e["event"] == "outcome"]
    assert outcomes and summary.counters.rejected == len(outcomes)
    assert all("integer literal too large" in e["reason"] for e in outcomes)
