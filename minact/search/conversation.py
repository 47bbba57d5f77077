"""One proposal as a conversation: the request, the verdict on each reply, the follow-ups.

`open_conversation` builds proposal k's request from the population as it stands: the
parents (drawn by rank), the top and other candidates shown in full, the list of every
other scored function, an instruction drawn from prompt.STYLES and, for an ensemble,
the model, all drawn with the proposal's own generator. `Conversation.verdict` turns a
reply into a Candidate or a Verdict (unparsable, rejected, or a copy of a function the
run knew when the proposal was built). A bad reply is answered in the same
conversation, with the reason, while the proposal's allowance of exchanges lasts; the
messages sent before stay as they were, so the server can reuse its prompt cache.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from minact.candidate import Candidate, Hash
from minact.lab.task import Lab
from minact.search import novelty
from minact.search.population import Failure, Member, Population
from minact.search.prompt import FOLLOW_UP_CHARS, STYLES, build_prompt
from minact.search.proposers import ProposalRequest
from minact.search.reply import ParseFailure, parse_reply
from minact.validate import validate
from minact.validate.repair import repair

__all__ = [
    "Conversation",
    "Opening",
    "draw_model",
    "open_conversation",
    "sampling_seed",
    "write_request",
]

_ASSISTANT_CHARS = 600  # a longer reply is shown back as its code block only
# What a reason adds where the reply was cut, by the finish_reason that says so.
_CUT = {
    "length": " (the reply was cut at --max-tokens, finish_reason length: write a shorter one)",
    "cap": " (minact stopped reading the reply at its length limit: write a shorter one)",
}


@dataclass(frozen=True, slots=True)
class Opening:
    """How a proposal's request was made (for the event log and the counters).

    Attributes:
        style: the instruction drawn (a key of prompt.STYLES), or None.
        model: the model drawn for an ensemble, or None.
        cut: {prompt section: items the character budget left out}.
    """

    style: str | None
    model: str | None
    cut: dict[str, int]

    def to_event(self) -> dict[str, Any]:
        """Returns the fields the proposal's event line adds (those that are set)."""
        fields = {"model": self.model, "style": self.style, "cut": self.cut}
        return {k: v for k, v in fields.items() if v}


@dataclass(slots=True)
class Conversation:
    """Proposal `index`'s exchanges with its proposer.

    Attributes:
        request: what the next exchange sends (turn 0: the opening request).
        allowance: the most exchanges the run's call budget granted this proposal.
        known: how many members the run knew when the proposal was built; verdicts
            compare against those only, so they never depend on reply timing.
        seed: the run's seed; follow-up turns get generators derived from it.
        room: the characters the model's context holds for the messages (0: no limit).
        repair: whether the code of a reply goes through minact.validate.repair.
        said: the text of the last reply.
        repairs: what the repair changed in the last reply's code.
    """

    index: int
    request: ProposalRequest
    allowance: int
    known: int
    seed: int
    room: int = 0
    repair: bool = True
    said: str = ""
    repairs: tuple[str, ...] = ()

    @property
    def turn(self) -> int:
        """Returns the exchange the request is for (0: the opening)."""
        return self.request.turn

    def can_follow_up(self) -> bool:
        """Returns whether one more exchange fits the allowance and the model's context."""
        if self.request.turn + 1 >= self.allowance:
            return False
        size = sum(len(m["content"]) for m in self.request.messages)
        return not self.room or size + FOLLOW_UP_CHARS <= self.room

    def verdict(
        self, text: str, known: novelty.Known, *, finish: str = ""
    ) -> Candidate | novelty.Verdict:
        """Returns the new candidate in reply `text`, or why there is none. `finish`: the
        reply's finish_reason; where it says the reply was cut (at --max-tokens, or at
        minact's limit of a reply's characters), the reason says so."""
        parent = self.request.parent.score
        parsed = parse_reply(text, parent.source)
        self.repairs = ()
        why = _CUT.get(finish, "")
        if isinstance(parsed, ParseFailure):
            return novelty.Verdict("parse_failure", parsed.reason + why, text[:2000])
        if self.repair:
            repaired = repair(parsed)
            parsed, self.repairs = repaired.source, repaired.fixes
        cand = validate(parsed, name=f"c{self.index}", parent=parent.code_hash)
        if not isinstance(cand, Candidate):
            return novelty.Verdict("rejected", cand.reason + why, parsed[:2000])
        return known.same_code(cand.code_hash, cand.source, self.known) or cand

    def follow_up(self, verdict: novelty.Verdict) -> None:
        """Moves to the next exchange: the last reply, then why it gave nothing new."""
        text = self.said
        said = text if len(text) <= _ASSISTANT_CHARS else _code_only(text, verdict)
        turn = self.request.turn + 1
        messages = [
            *self.request.messages,
            {"role": "assistant", "content": said},
            {"role": "user", "content": novelty.feedback(verdict)},
        ]
        rng = random.Random(f"{self.seed}:{self.index}:{turn}")
        sampling = sampling_seed(self.seed, self.index, turn)
        self.request = replace(
            self.request, messages=messages, turn=turn, rng=rng, sampling_seed=sampling
        )


def _code_only(text: str, verdict: novelty.Verdict) -> str:
    if verdict.kind == "parse_failure":
        return text[:_ASSISTANT_CHARS] + " …"
    return f"```python\n{verdict.source[:_ASSISTANT_CHARS]}\n```"


def _catalogue(population: Population, shown: set[Hash]) -> list[Member]:
    """Returns the members not shown in full: seeds first, then by fitness, failures last."""
    rest = [m for m in population.members if m.score.code_hash not in shown]
    seeds = [m for m in rest if m.origin == "seed" and m.score.ok]
    ranked = [
        m for m in population.ranked() if m.origin != "seed" and m.score.code_hash not in shown
    ]
    failed = [m for m in rest if not m.score.ok]
    return seeds + ranked + failed


def sampling_seed(seed: int, k: int, turn: int) -> int:
    """Returns the sampling seed of proposal k's exchange `turn`: a function of the run's
    seed only, so a rerun asks the server for the same samples; below 2**31, which every
    server takes."""
    return random.Random(f"{seed}:{k}:{turn}:sampling").getrandbits(31)


def draw_model(
    seed: int, k: int, models: tuple[str, ...], weights: tuple[float, ...]
) -> str | None:
    """Returns the model proposal k asks (None: the proposer's own), drawn for an ensemble."""
    if len(models) > 1:  # its own generator: the ensemble does not change the other draws
        return random.Random(f"{seed}:{k}:model").choices(models, weights or None)[0]
    return models[0] if models else None


def open_conversation(
    k: int,
    population: Population,
    lab: Lab,
    *,
    seed: int,
    island: int,
    prompt_chars: int,
    llm: bool,
    models: tuple[str, ...] = (),
    weights: tuple[float, ...] = (),
) -> tuple[ProposalRequest, Opening]:
    """Returns proposal k's opening request and how it was made.

    Every choice comes from generators seeded by (seed, k), so the same population gives
    the same request. Without an LLM (`llm` False) no prompt is written and nothing but
    the parents is drawn, as the offline mutator expects.
    """
    rng = random.Random(f"{seed}:{k}")
    parent, other = population.select(island, rng)
    model = draw_model(seed, k, models, weights)
    if not llm:
        return ProposalRequest(k, parent, other, [], rng, model=model), Opening(None, model, {})
    exclude = {h for h in (parent.score.code_hash, parent.score.behaviour_hash) if h}
    top = population.top(rng.choice((2, 3)), exclude)
    exclude |= {m.score.code_hash for m in top if m.score.code_hash}
    diverse = population.diverse(2, rng, exclude)
    style = rng.choice(sorted(STYLES))
    return write_request(
        k, lab, rng, parent, other, top, diverse, population.failures(3),
        lambda shown: _catalogue(population, shown), style=style, prompt_chars=prompt_chars,
        model=model,
    )  # fmt: skip


def write_request(
    k: int,
    lab: Lab,
    rng: random.Random,
    parent: Member,
    other: Member | None,
    top: list[Member],
    diverse: list[Member],
    failures: list[Failure],
    catalogue: Callable[[set[Hash]], list[Member]],
    *,
    style: str,
    prompt_chars: int,
    model: str | None,
) -> tuple[ProposalRequest, Opening]:
    """Returns proposal k's request showing these members, and how it was made.

    For the "compose" style, `other` (the second parent) is shown as the inspiration unless
    it is shown already; `catalogue(shown)` lists, one line each, the functions not shown.
    """
    shown = {m.score.code_hash for m in [parent, *top, *diverse] if m.score.code_hash}
    inspiration = None
    if style == "compose" and other is not None and other.score.code_hash not in shown:
        inspiration = other  # the second parent, for the model to combine with the first
        shown.add(other.score.code_hash)  # type: ignore[arg-type]
    prompt = build_prompt(
        lab,
        parent,
        top,
        diverse,
        failures,
        prompt_chars,
        catalogue=catalogue(shown),
        style=style,
        inspiration=inspiration,
    )
    request = ProposalRequest(k, parent, other, prompt.messages, rng, model=model)
    return request, Opening(style, model, prompt.cut)
