"""Tests for minact.search: the loop's accounting, determinism, stop conditions and resume."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from minact import seeds
from minact.candidate import Candidate
from minact.errors import EvaluationError
from minact.lab.task import Lab
from minact.outcome import Reply
from minact.runs.history import History
from minact.score import Score
from minact.search.loop import Loop, SearchConfig, Summary, run
from minact.search.proposers import (
    OfflineProposer,
    ProposalRequest,
    RecordingProposer,
    ReplayProposer,
)
from tests.fakes import FakeEvaluator, ScriptedProposer, fenced


def _run(
    lab: Lab,
    config: SearchConfig,
    proposer: Any,
    history: History | None = None,
    evaluator: FakeEvaluator | None = None,
) -> tuple[Summary, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    summary = asyncio.run(
        run(config, lab, proposer, evaluator or FakeEvaluator(), events.append, None, history)
    )
    return summary, events


def _ranking(summary: Summary) -> list[tuple[str, float | None]]:
    return [(m.score.source, m.score.fitness) for m in summary.population.ranked()]


def _mixed(request: ProposalRequest) -> Reply:
    k = request.index
    kind = k % 6
    if kind == 0:
        return Reply(fenced(f"torch.sin({k + 1} * x) + F.gelu(x)"))
    if kind == 1:
        return Reply("I cannot help with that.")  # no code
    if kind == 2:
        return Reply(fenced("__import__('os').system('true')"))  # rejected
    if kind == 3:
        return Reply(fenced("F.gelu(x)"))  # duplicate of the gelu seed (same code)
    if kind == 4:
        return Reply("", error="503 server busy")
    return Reply(fenced(f"torch.tanh({k} * x) + 0 * x"))


def test_counters_add_up(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=5, concurrency=3, seed=1)
    summary, events = _run(tiny_lab, config, ScriptedProposer(_mixed))
    c = summary.counters
    assert summary.status == "finished" and c.evaluated == 5
    assert c.proposals == c.evaluated + c.parse_failures + c.rejected + c.duplicates + c.llm_errors
    assert c.parse_failures > 0 and c.rejected > 0 and c.duplicates > 0 and c.llm_errors > 0
    outcomes = [e for e in events if e["event"] == "outcome"]
    assert [e["index"] for e in outcomes] == list(range(c.proposals))
    rejected = next(e for e in outcomes if e["kind"] == "rejected")
    assert "not allowed" in rejected["reason"]
    new = [m for m in summary.population.members if m.origin != "seed"]
    assert len(new) == 5 and all(m.score.parent for m in new)


def test_a_run_is_reproducible_whatever_the_reply_timing(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=12, concurrency=4, seed=7)
    fast, _ = _run(tiny_lab, config, OfflineProposer())
    # Replies arriving in a scrambled order must not change any decision.
    scrambled = OfflineProposer()

    async def slow_propose(request: ProposalRequest) -> Reply:
        await asyncio.sleep(((request.index * 7) % 5) * 0.002)
        return await OfflineProposer.propose(scrambled, request)

    scrambled.propose = slow_propose  # type: ignore[method-assign]
    slow, _ = _run(tiny_lab, config, scrambled)
    assert _ranking(fast) == _ranking(slow)
    assert fast.counters.to_dict() == slow.counters.to_dict()
    other_seed, _ = _run(
        tiny_lab, SearchConfig(budget=12, concurrency=4, seed=8), OfflineProposer()
    )
    assert _ranking(other_seed) != _ranking(fast)


def test_a_model_that_never_writes_code_hits_the_call_cap(tiny_lab: Lab) -> None:
    proposer = ScriptedProposer(lambda r: Reply("Sorry, no."))
    summary, _ = _run(tiny_lab, SearchConfig(budget=5, concurrency=2, max_calls=9), proposer)
    assert summary.status == "call_cap"
    assert summary.counters.proposals == 9 and summary.counters.parse_failures == 9
    assert "evaluated 0 of 5" in summary.message


def test_requests_still_in_flight_when_the_llm_is_given_up_are_cancelled(tiny_lab: Lab) -> None:
    # Proposals 0 and 1 fail at once; 2 and 3 wait on a server that answers in 10 minutes.
    async def answer(request: ProposalRequest) -> Reply:
        if request.index >= 2:
            await asyncio.sleep(600)
        return Reply("", error="503 server busy")

    proposer = ScriptedProposer(lambda r: Reply(""))
    proposer.propose = answer  # type: ignore[method-assign]
    config = SearchConfig(budget=5, concurrency=2, max_consecutive_errors=2)
    summary, events = _run(tiny_lab, config, proposer)
    assert summary.status == "llm_failed" and "503 server busy" in summary.message
    outcomes = {e["index"]: e for e in events if e["event"] == "outcome"}
    assert sorted(outcomes) == list(range(len(outcomes))) and len(outcomes) >= 4
    for k in range(2, len(outcomes)):  # 2, 3 and any issued before the second error applied
        assert outcomes[k]["kind"] == "llm_error"
        assert outcomes[k]["reason"].startswith("not sent or cut: the LLM failed 2 times")
    assert summary.counters.calls == 2  # the cancelled ones are not calls


def test_an_unreachable_llm_stops_the_run(tiny_lab: Lab) -> None:
    proposer = ScriptedProposer(lambda r: Reply("", error="connection refused"))
    config = SearchConfig(budget=5, concurrency=2, max_consecutive_errors=4)
    summary, _ = _run(tiny_lab, config, proposer)
    assert summary.status == "llm_failed" and "connection refused" in summary.message
    assert summary.counters.llm_errors >= 4


@pytest.mark.parametrize("recorded_again", [False, True])
def test_a_replay_past_its_recording_stops_where_it_ends(
    tiny_lab: Lab, tmp_path: Path, recorded_again: bool
) -> None:
    # Each proposal past the recording failed ("the replay file has no reply for proposal
    # N") until the run stopped as an LLM failing 8 times in a row.
    replies = {(k, 0): Reply(fenced(f"torch.sin({k + 2} * x) + x")) for k in range(5)}
    replay = ReplayProposer(replies)
    proposer = RecordingProposer(replay, tmp_path / "llm.jsonl") if recorded_again else replay
    summary, events = _run(tiny_lab, SearchConfig(budget=12, concurrency=2, seed=4), proposer)
    assert summary.status == "replay_ended"
    assert summary.message == (
        "the replay file ends after proposal 4: the recorded run asked no more; its candidates"
        " are scored; evaluated 5 of 12 (0 unparsable, 0 rejected, 0 duplicates, 0 LLM errors)"
    )
    assert [e["index"] for e in events if e["event"] == "proposal"] == list(range(5))
    # Nothing computed is lost: each recorded reply's candidate joined the population.
    new = [m.score.source for m in summary.population.members if m.origin != "seed"]
    assert sorted(s.rsplit("return ", 1)[1] for s in new) == [
        f"torch.sin({k + 2} * x) + x" for k in range(5)
    ]
    # A resume of it asks nothing more, and ends alike.
    resumed, more = _run(tiny_lab, SearchConfig(budget=12, concurrency=2, seed=4), proposer,
                         History.from_events(events))  # fmt: skip
    assert (resumed.status, resumed.message) == (summary.status, summary.message)
    assert not [e for e in more if e["event"] in ("proposal", "reply", "outcome")]


def test_prompts_carry_parent_scores_and_failures(tiny_lab: Lab) -> None:
    proposer = ScriptedProposer(_mixed)
    _run(tiny_lab, SearchConfig(budget=4, concurrency=2, seed=3), proposer)
    late = proposer.requests[-1]
    system, user = late.messages[0]["content"], late.messages[1]["content"]
    assert "OUT OF DISTRIBUTION" in system and "def activation(x)" in system
    assert late.parent.score.source in user and "fitness" in user
    assert "RECENT FAILURE" in user


def test_a_proposer_crash_is_counted_not_fatal(tiny_lab: Lab) -> None:
    def flaky(request: ProposalRequest) -> Reply:
        if request.index == 1:
            raise RuntimeError("bug in a proposer")
        return Reply(fenced(f"torch.sin({request.index + 2} * x)"))

    summary, _ = _run(tiny_lab, SearchConfig(budget=3, concurrency=2), ScriptedProposer(flaky))
    assert summary.status == "finished" and summary.counters.llm_errors == 1


def test_resume_replays_the_log_and_evaluates_nothing_twice(tiny_lab: Lab) -> None:
    config = SearchConfig(budget=10, concurrency=3, seed=5)
    whole, events = _run(tiny_lab, config, OfflineProposer())
    # A run killed part way: the log stops mid-way (and mid-line on disk; see test_runlog).
    cut = [e for e in events if not (e["event"] == "outcome" and e["index"] >= 4)]
    cut = [e for e in cut if not (e["event"] in ("proposal", "reply") and e["index"] >= 6)]
    history = History.from_events(cut)
    assert sorted(history.outcomes) == [0, 1, 2, 3] and 5 in history.replies
    evaluator = FakeEvaluator()
    resumed, new_events = _run(tiny_lab, config, OfflineProposer(), history, evaluator)
    assert _ranking(resumed) == _ranking(whole)
    assert resumed.counters.evaluated == 10
    evaluated_before = {
        e["score"]["code_hash"] for e in cut if e["event"] == "outcome" and e.get("score")
    }
    evaluated_again = {h for call in evaluator.calls[1:] for h in call}
    assert not evaluated_before & evaluated_again
    assert not any(e["event"] == "seed" for e in new_events)


def test_cancellation_stops_the_work_in_flight_and_is_not_swallowed(tiny_lab: Lab) -> None:
    proposer = ScriptedProposer(lambda r: Reply(fenced("torch.sin(x)")), delay=lambda k: 30.0)
    loop = Loop(
        SearchConfig(budget=5), tiny_lab, proposer, FakeEvaluator(), lambda e: None, None, History()
    )

    async def main() -> None:
        task = asyncio.ensure_future(loop.run())
        # Once the seeds are scored (however long a loaded machine takes), the proposals
        # are in flight: each waits 30 s.
        for _ in range(6000):
            if loop.seeded:
                break
            await asyncio.sleep(0.01)
        assert loop.seeded, "the seeds were not scored within a minute"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    summary = loop.summary(("interrupted", "stopped"))
    assert summary.status == "interrupted"
    assert len(summary.population.members) > 0  # the seeds are kept


SEED_HASHES = {c.code_hash for c in seeds.seed_candidates()}


class _StuckEvaluator(FakeEvaluator):
    """Scores the seeds (in as many calls as the loop makes), then blocks in the next batch
    until interrupted, and fails it."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = threading.Event()
        self.interrupted = threading.Event()
        self.failed = threading.Event()

    def interrupt(self) -> None:
        self.interrupted.set()

    def score(self, candidates: Sequence[Candidate]) -> list[Score]:
        if {c.code_hash for c in candidates} <= SEED_HASHES:
            return super().score(candidates)
        self.calls.append([c.code_hash for c in candidates])
        self.busy.set()
        self.interrupted.wait(60)
        self.failed.set()
        raise EvaluationError("evaluation interrupted")


def test_cancelling_during_an_evaluation_leaves_no_unretrieved_error(
    tiny_lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    evaluator = _StuckEvaluator()
    proposer = ScriptedProposer(lambda r: Reply(fenced(f"torch.sin({r.index + 2} * x)")))

    async def main() -> None:
        events: list[dict[str, Any]] = []
        config = SearchConfig(budget=5)
        loop = Loop(config, tiny_lab, proposer, evaluator, events.append, None, History())
        task = asyncio.ensure_future(loop.run())
        assert await asyncio.to_thread(evaluator.busy.wait, 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The batch's thread ends with its error only now, after the run was cancelled.
        assert await asyncio.to_thread(evaluator.failed.wait, 60)
        await asyncio.to_thread(loop.pool.shutdown, wait=True)
        await asyncio.sleep(0.1)  # its result reaches the event loop

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
        gc.collect()  # an unretrieved error is reported when its future is collected
    assert "never retrieved" not in caplog.text


def test_search_does_not_import_torch() -> None:
    import subprocess

    code = "import sys, minact.search.loop, minact.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("islands", [1, 3])
def test_islands_and_migration_keep_running(tiny_lab: Lab, islands: int) -> None:
    config = SearchConfig(budget=15, concurrency=2, islands=islands, migration_interval=4)
    summary, _ = _run(tiny_lab, config, OfflineProposer())
    assert summary.status == "finished" and summary.counters.evaluated == 15


def test_the_seeds_are_scored_in_slices_with_visible_progress(tiny_lab: Lab) -> None:
    shown: list[tuple[int, int] | None] = []
    config = SearchConfig(budget=2)
    one_call = FakeEvaluator(batch=100)
    whole, _ = _run(tiny_lab, config, OfflineProposer(), evaluator=one_call)
    evaluator = FakeEvaluator(batch=4)
    loop = Loop(config, tiny_lab, OfflineProposer(), evaluator, lambda e: None,
                lambda lp: shown.append(lp.seeding), History())  # fmt: skip
    sliced = asyncio.run(loop.run())
    n = len(seeds.SEEDS)
    assert [s for s in shown if s is not None][:5] == [(0, n), (4, n), (8, n), (12, n), (n, n)]
    assert [len(call) for call in evaluator.calls[:4]] == [4, 4, 4, 2]
    # The same seeds, in the same order, give the same search as one call for all of them.
    assert [m.score.code_hash for m in sliced.population.members][:n] == [
        m.score.code_hash for m in whole.population.members
    ][:n]
    assert _ranking(sliced) == _ranking(whole)


@pytest.mark.parametrize(
    ("finish", "said"),
    [("cap", "stopped reading the reply at its length limit"), ("length", "--max-tokens")],
)
def test_a_reply_cut_short_is_judged_with_a_reason_that_says_so(
    tiny_lab: Lab, finish: str, said: str
) -> None:
    # A reply of megabytes was cut at minact's limit and then judged "no ```python block"
    # alone: neither the log nor the follow-up said that it had been cut.
    proposer = ScriptedProposer(lambda r: Reply("lorem ipsum " * 50, note=f"llm finish={finish}"))
    _, events = _run(tiny_lab, SearchConfig(budget=1, concurrency=1, max_calls=3), proposer)
    reasons = [e["reason"] for e in events if e["event"] in ("outcome", "follow_up")]
    assert reasons and all("no ```python block" in r and said in r for r in reasons)
