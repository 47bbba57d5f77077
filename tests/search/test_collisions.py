"""The search loop and behaviour-hash collisions: logged, counted, never called duplicates."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from minact.candidate import Candidate, Hash
from minact.lab.task import Lab
from minact.outcome import Reply
from minact.score import Score
from minact.search.loop import SearchConfig, run
from minact.search.proposers import ProposalRequest
from tests.fakes import FakeEvaluator, ScriptedProposer, fenced

SHARED = Hash("5a" * 32)


class CollidingEvaluator(FakeEvaluator):
    """Like FakeEvaluator; candidates using cos share one behaviour hash but train apart."""

    def _score(self, c: Candidate) -> Score:
        s = super()._score(c)
        if "torch.cos(" not in c.source:
            return s
        # What the evaluator reports after a failed verification: results under the code
        # hash (the behaviour hash field), the shared hash in `collision`.
        return dataclasses.replace(s, behaviour_hash=c.code_hash, collision=SHARED)


def _answer(request: ProposalRequest) -> Reply:
    return Reply(fenced(f"torch.cos({request.index + 1} * x) + F.gelu(x)"))


def test_collisions_are_logged_counted_and_kept(tiny_lab: Lab) -> None:
    events: list[dict[str, Any]] = []
    config = SearchConfig(budget=3, concurrency=2, seed=3)
    summary = asyncio.run(
        run(config, tiny_lab, ScriptedProposer(_answer), CollidingEvaluator(), events.append)
    )
    c = summary.counters
    assert c.evaluated == 3 and c.duplicates == 0 and c.collisions == 3
    logged = [e for e in events if e["event"] == "collision"]
    assert len(logged) == 3 and {e["behaviour_hash"] for e in logged} == {SHARED}
    outcomes = {e["index"]: e for e in events if e["event"] == "outcome"}
    for e in logged:
        assert outcomes[e["index"]]["kind"] == "evaluated"
        assert outcomes[e["index"]]["score"]["collision"] == SHARED
