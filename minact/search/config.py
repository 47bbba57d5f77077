"""The settings of a search, and what it needs from an evaluator (no torch here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from minact import seeds as seeds_lib
from minact.candidate import Candidate
from minact.score import Score

__all__ = [
    "FOLLOW_UP_RULES",
    "MAX_BUDGET",
    "MAX_CALLS",
    "MAX_CONCURRENCY",
    "MAX_CONTEXT_TOKENS",
    "MAX_FOLLOW_UPS",
    "MAX_ISLANDS",
    "MAX_LLM_TIMEOUT",
    "MAX_PROMPT_CHARS",
    "MAX_REPLY_TOKENS",
    "MAX_RETRIES",
    "MAX_SEED",
    "MAX_TEMPERATURE",
    "Evaluator",
    "FollowUpRuleName",
    "SearchConfig",
]

FollowUpRuleName = Literal["paying", "always"]  # when follow-ups are sent (search.followups)
FOLLOW_UP_RULES: tuple[FollowUpRuleName, ...] = ("paying", "always")
# Tokens: the longest context any model is served with (Llama 4 Scout's 10M). A server
# that reports more reports no length (search.server), and --context-tokens takes no more.
MAX_CONTEXT_TOKENS = 10_000_000
# Requests in flight: the HTTP pool holds 100 connections, so more only queue there; the
# bound keeps a slip of the keys (10**9) from building that many opening proposals.
MAX_CONCURRENCY = 1024
# Distinct candidates a run may evaluate: a million is months of training at the default lab's
# seconds per candidate. Without a bound, 10**30 (a slip of the keys) started a run that could
# never finish and wrote a number past any JSON reader's integers into run.json and ranking.json.
MAX_BUDGET = 1_000_000
# LLM calls (the call cap): what the default cap, 4 x budget + concurrency, reaches at the bounds.
MAX_CALLS = 4 * MAX_BUDGET + MAX_CONCURRENCY
# Prompt characters: what the longest context (MAX_CONTEXT_TOKENS) holds, at about 4 a token.
MAX_PROMPT_CHARS = 4 * MAX_CONTEXT_TOKENS
# Answers to one bad reply and retries of one failed request: each is an LLM call, and the
# number is kept in run.json; more than this is a slip of the keys.
MAX_FOLLOW_UPS = 100
MAX_RETRIES = 100
MAX_SEED = 2**63 - 1  # what every generator minact seeds accepts
MAX_ISLANDS = 1024  # each island is a list the search keeps; more than a run can fill
MAX_TEMPERATURE = 100.0  # servers cap it near 2; a bound keeps inf out of the JSON sent
# A day: a request still streaming after it is a hung server, and a bound keeps inf (no
# timeout at all, and no JSON number) out of run.json and ranking.json.
MAX_LLM_TIMEOUT = 86400.0
# Tokens: a reply of 1M, far past what servers let one reply be (the context's bound is
# MAX_CONTEXT_TOKENS). Without bounds, 10**30 reached run.json and each request.
MAX_REPLY_TOKENS = 1_000_000


class Evaluator(Protocol):
    """What the loop needs from evaluate.Evaluator (kept abstract: no torch here)."""

    def score(self, candidates: Sequence[Candidate]) -> list[Score]:
        """Returns scores for the reference and each distinct candidate."""
        ...

    def preferred_batch(self) -> int:
        """Returns how many candidates one call should bring."""
        ...

    def interrupt(self) -> None:
        """Stops the evaluation in progress (from another thread)."""
        ...


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """Settings of one search; see `minact evolve --help`."""

    budget: int
    concurrency: int = 4
    window: int = 0  # proposals built ahead of the applied outcomes; 0: 2 * concurrency
    seed: int = 0
    islands: int = 4
    max_calls: int = 0  # 0: 4 * budget + concurrency
    migration_interval: int = 25
    prompt_chars: int = 8000
    max_consecutive_errors: int = 8
    seed_names: tuple[str, ...] = tuple(seeds_lib.SEEDS)
    follow_ups: int = 0  # answers to a bad reply, in the same conversation (LLM proposers)
    follow_up_rule: FollowUpRuleName = "paying"
    models: tuple[str, ...] = ()  # an ensemble: each proposal draws one
    model_weights: tuple[float, ...] = ()  # how often each is drawn (empty: equally)
    context_chars: int = 0  # what one conversation may hold (0: unknown, no limit)
    repair: bool = True  # rewrite the slips minact.validate.repair knows in LLM replies

    @property
    def lookahead(self) -> int:
        """Returns how many proposals may be pending (built, not yet applied)."""
        return self.window or 2 * self.concurrency

    @property
    def call_cap(self) -> int:
        """Returns the most exchanges (opening requests and follow-ups) the run may make."""
        return self.max_calls or 4 * self.budget + self.concurrency
