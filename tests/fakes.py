"""Test doubles for the search loop: a deterministic evaluator, scripted proposers, and a
recorder of the LLM client's waits."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from minact import seeds
from minact.candidate import Candidate, Hash
from minact.outcome import Reply
from minact.score import Score, TaskScore
from minact.search.proposers import ProposalRequest
from minact.validate import validate


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class FakeEvaluator:
    """Scores a candidate by a hash of its source; `torch.log` fails; same text, same score."""

    def __init__(self, batch: int = 2) -> None:
        self.batch = batch
        self.calls: list[list[Hash]] = []
        relu = validate(seeds.seed_source("relu"), name="relu")
        assert isinstance(relu, Candidate)
        self.reference = relu

    def preferred_batch(self) -> int:
        return self.batch

    def interrupt(self) -> None:
        pass

    def score(self, candidates: Sequence[Candidate]) -> list[Score]:
        self.calls.append([c.code_hash for c in candidates])
        out = [self._score(self.reference)]
        for c in candidates:
            if c.code_hash != self.reference.code_hash:
                out.append(self._score(c))
        return out

    def _score(self, c: Candidate) -> Score:
        # Behaviour: sources that differ only by "+ 0 * x" behave alike.
        behaviour = Hash(hashlib.sha256(c.source.replace(" + 0 * x", "").encode()).hexdigest())
        if "torch.log(" in c.source:
            return Score(
                c.name,
                c.code_hash,
                c.source,
                "nonfinite",
                "f(x) is not finite",
                behaviour_hash=None,
                parent=c.parent,
            )
        fitness = 0.0 if c.code_hash == self.reference.code_hash else _unit(behaviour) - 0.5
        tasks = {
            "sine": TaskScore(1.0, 0.1, 0.0, fitness),
            "product": TaskScore(2.0, 0.2, 0.0, 0.0),
        }
        return Score(
            c.name,
            c.code_hash,
            c.source,
            "ok",
            "",
            behaviour,
            fitness,
            0.01,
            1.5,
            tasks,
            1.0,
            parent=c.parent,
        )


class ScriptedProposer:
    """Answers each proposal from a function of its index, after an optional delay."""

    def __init__(
        self,
        answer: Callable[[ProposalRequest], Reply],
        kind: str = "llm",
        delay: Callable[[int], float] | None = None,
    ) -> None:
        self.answer = answer
        self.kind = kind
        self.delay = delay
        self.requests: list[ProposalRequest] = []

    async def propose(self, request: ProposalRequest) -> Reply:
        self.requests.append(request)
        if self.delay is not None:
            await asyncio.sleep(self.delay(request.index))
        return self.answer(request)


def fenced(body: str) -> str:
    """Returns a reply holding `def activation(x): return <body>` in a python fence."""
    return f"Here you go.\n```python\nimport torch\ndef activation(x):\n    return {body}\n```\n"


T = TypeVar("T")


class Sleeps:
    """Records the waits asked for instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def run(coro: Awaitable[T]) -> T:
    """Runs `coro`, failing (not hanging) if it takes more than 30 s."""

    async def guarded() -> T:
        return await asyncio.wait_for(coro, 30)

    return asyncio.run(guarded())
