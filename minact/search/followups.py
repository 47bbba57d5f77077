"""When a bad reply is worth answering: the follow-up rule.

A follow-up costs an LLM call, as a first request does. Measured with a 0.5B model over
six benchmark runs (bench/RESULTS.md), a first request gave a new valid candidate 65% of
the time (200 of 307) and a follow-up 16% (25 of 153): a small model told what was wrong
mostly writes the same thing again. Under the rule "paying" (the default) a proposal is
granted its follow-ups while they can still yield as much per call as first requests do,
judged per model from the outcomes applied so far: the follow-ups' upper confidence
bound (Wilson, z = 1.5) must reach the first requests' mean (with one success and one
failure as the prior). Until a model has answered a few follow-ups, the bound is high
and follow-ups are sent; if the first requests' yield falls later, follow-ups come back.
Under "always", every proposal is granted `--follow-ups`.

The rule reads outcomes in the order the loop applies them (proposal order), so a
replayed or resumed run grants the same follow-ups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from minact.outcome import Outcome
from minact.search.config import SearchConfig
from minact.search.conversation import draw_model

__all__ = ["FollowUpRule", "Tally", "upper_bound"]

_Z = 1.5  # the bound's width: about 93% one-sided, so a few unlucky follow-ups do not decide


@dataclass(slots=True)
class Tally:
    """One model's exchanges, from the outcomes applied so far.

    Attributes:
        first: proposals that got a first reply.
        first_new: those whose first reply gave a new valid candidate.
        follow_ups: follow-up exchanges.
        follow_up_new: proposals whose last follow-up gave a new valid candidate.
    """

    first: int = 0
    first_new: int = 0
    follow_ups: int = 0
    follow_up_new: int = 0

    def paying(self) -> bool:
        """Returns whether a follow-up can still yield as much as a first request."""
        first = (self.first_new + 1) / (self.first + 2)
        return upper_bound(self.follow_up_new, self.follow_ups) >= first


def upper_bound(successes: int, trials: int, z: float = _Z) -> float:
    """Returns the Wilson score interval's upper end for a success rate (1 without trials)."""
    if trials <= 0:
        return 1.0
    p, n, z2 = successes / trials, trials, z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z2 / n))


class FollowUpRule:
    """Decides how many follow-ups each proposal is granted (see the module docstring).

    Args:
        limit: the most follow-ups a proposal may send (`--follow-ups`; 0 for a proposer
            that is never answered).
        config: the run's rule, and its seed and models, which say the model proposal k
            draws.
    """

    def __init__(self, limit: int, config: SearchConfig) -> None:
        self.limit, self.rule, self.config = limit, config.follow_up_rule, config
        self.tallies: dict[str, Tally] = {}

    def _model(self, k: int) -> str:
        c = self.config
        return draw_model(c.seed, k, c.models, c.model_weights) or ""

    def grant(self, k: int) -> int:
        """Returns the follow-ups proposal k may send, as the outcomes applied so far say."""
        if self.rule == "always" or self.limit == 0:
            return self.limit
        tally = self.tallies.get(self._model(k))
        return self.limit if tally is None or tally.paying() else 0

    def note(self, o: Outcome) -> None:
        """Counts an applied outcome: its exchanges, and whether its last reply gave a new
        valid candidate (an LLM error is no reply: not counted)."""
        if o.kind == "llm_error":
            return
        t = self.tallies.setdefault(self._model(o.index), Tally())
        new = o.new_valid
        t.first += 1
        t.first_new += new and o.turns == 1
        t.follow_ups += o.turns - 1
        t.follow_up_new += new and o.turns > 1
