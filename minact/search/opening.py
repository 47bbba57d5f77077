"""A run's opening proposals: the first LLM requests, sent while the built-ins are scored.

On a fresh cache the 14 built-in activations train for minutes before anything can be
ranked, and an LLM reply takes seconds to minutes: waiting for one before asking for the
other wastes the longer of the two. So the first `lookahead` proposals of a run with an
LLM (the window of proposals that may be pending at once) are built from the built-ins'
*code* alone, never their scores: the parent, the inspiration and the other functions
shown are drawn with the proposal's own generator, seeded by (seed, k), uniformly from
the built-ins, and the prompt lists every built-in as known. What an opening proposal
asks therefore depends on the seed and the lab only, never on whether the seeds were
cached, still training or replayed from a log: a run stays reproducible from its
recorded replies, and a resumed run asks the same questions. Every later proposal is
built, as before, after a fixed earlier outcome has been applied, which needs the seeds'
scores. An opening proposal's bar in the evaluation cascade (search.cascade) is set when
the seeds join, from the seeds alone: its candidate is evaluated only after that.

The offline mutator does not come here: its proposals cost nothing to make, so it waits
for the scores, which it uses to pick its parents. In an ensemble that pairs it with a
model, an opening proposal drawn for it waits (`waits`): the loop builds it, like
any later proposal, from the population as it stands when the built-ins' scores join
(the built-ins alone, at a fixed point of every run).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from minact.candidate import Candidate
from minact.lab.task import Lab
from minact.score import Score
from minact.search import novelty
from minact.search.conversation import Opening, draw_model, write_request
from minact.search.ensemble import MUTATOR
from minact.search.population import Member
from minact.search.prompt import STYLES
from minact.search.proposers import ProposalRequest

__all__ = ["Openings"]


class Openings:
    """The built-ins as known before their scores: members to build prompts from, and an index
    of their code against which an opening proposal's replies are judged."""

    def __init__(
        self,
        seeds: Sequence[Candidate],
        count: int,
        *,
        seed: int = 0,
        models: tuple[str, ...] = (),
        weights: tuple[float, ...] = (),
    ) -> None:
        """`seeds`: the run's built-ins, in order; `count`: how many proposals open the run;
        `seed`, `models`, `weights`: the run's, to know which proposals draw the mutator."""
        self.count = count if seeds else 0
        self.waiting = frozenset(
            k for k in range(self.count) if draw_model(seed, k, models, weights) == MUTATOR
        )
        self.members = [
            Member(Score(c.name, c.code_hash, c.source, "ok", baseline=True), -1, None, "seed")
            for c in seeds
        ]
        self.known = novelty.Known()
        for m in self.members:
            self.known.add(m)

    def covers(self, k: int) -> bool:
        """Returns whether proposal k is an opening proposal."""
        return k < self.count and k not in self.waiting

    def waits(self, k: int) -> bool:
        """Returns whether proposal k, among the first `count`, is drawn for the mutator: it
        costs nothing to ask and edits the best candidates, so it waits for the scores and
        is an ordinary proposal, built once the built-ins' scores join."""
        return k in self.waiting

    def request(
        self,
        k: int,
        lab: Lab,
        *,
        seed: int,
        prompt_chars: int,
        models: tuple[str, ...] = (),
        weights: tuple[float, ...] = (),
    ) -> tuple[ProposalRequest, Opening]:
        """Returns opening proposal k's request, drawn from the built-ins' code only."""
        rng = random.Random(f"{seed}:{k}")
        parent = rng.choice(self.members)
        rest = [m for m in self.members if m is not parent]
        other = rng.choice(rest) if rest else None
        model = draw_model(seed, k, models, weights)
        style = rng.choice(sorted(STYLES))
        diverse = rng.sample(rest, min(2, len(rest)))
        return write_request(
            k, lab, rng, parent, other, [], diverse, [],
            lambda shown: [m for m in self.members if m.score.code_hash not in shown],
            style=style, prompt_chars=prompt_chars, model=model,
        )  # fmt: skip
