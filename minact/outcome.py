"""What happened to each proposal: the proposer's reply, the outcome, and the run's counters.

The search loop makes these; the run directory (minact.runs) stores them as events and
rebuilds them for a resume or a report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from minact.candidate import Hash
from minact.score import Score

__all__ = [
    "OUTCOME_KINDS",
    "Counters",
    "Outcome",
    "OutcomeKind",
    "Reply",
    "collision_event",
    "from_event",
    "proposal_event",
    "to_event",
]

# What became of a proposal once applied, in proposal order.
OutcomeKind = Literal["evaluated", "parse_failure", "rejected", "duplicate", "llm_error"]
OUTCOME_KINDS: tuple[OutcomeKind, ...] = get_args(OutcomeKind)


@dataclass(frozen=True, slots=True)
class Reply:
    """A proposer's answer (or why there is none), with the cost of getting it.

    Attributes:
        text: the reply, expected to hold a ```python block.
        note: how it was made, for lineage (the mutation, or the LLM's finish reason).
        error: set when no reply could be had (the text is then empty).
        prompt_tokens, completion_tokens: as the server reported them, else estimates.
        usage_reported: whether the server sent the token counts.
        latency: seconds for the whole call, retries and waits included.
        attempts: 1 + retries used (0 for a proposer without a server).
        first_token: seconds from the successful attempt's start to its first text.
        retry_reasons: why each failed attempt failed.
        model: the model that answered ("" for a proposer without one).
    """

    text: str
    note: str = ""
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_reported: bool = False
    latency: float = 0.0
    attempts: int = 0
    first_token: float | None = None
    retry_reasons: tuple[str, ...] = ()
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict."""
        d = asdict(self)
        d["retry_reasons"] = list(self.retry_reasons)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reply:
        """Builds a Reply from `to_dict` output (unknown keys are ignored).

        Every field is checked, so that a hand-edited or foreign record fails here, with
        the field and its value, and not in the middle of a run: raises TypeError for a
        value of the wrong type and ValueError for a missing `text` or a number out of range.
        A null token count, `attempts` or `model` reads as the default.
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"a reply must be an object, got {_shown(d)}")
        if "text" not in d:
            raise ValueError("the reply has no 'text'")
        fields = {k: _reply_field(k, v) for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**fields)


def _shown(value: object) -> str:
    """Returns a short repr of `value` for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


_COUNTS = ("prompt_tokens", "completion_tokens", "attempts")  # int >= 0; null reads as 0
_SECONDS = ("latency", "first_token")  # finite >= 0; first_token may be null


def _reply_field(name: str, value: object) -> Any:
    """Returns `value` as Reply's field `name`, or raises TypeError/ValueError naming both."""
    if name in ("text", "note") or (name in ("error", "model") and value is not None):
        if isinstance(value, str):
            return value
        raise TypeError(f"{name!r} must be a string, got {_shown(value)}")
    if name in ("error", "model"):  # null
        return None if name == "error" else ""
    if name == "usage_reported":
        if isinstance(value, bool):
            return value
        raise TypeError(f"{name!r} must be true or false, got {_shown(value)}")
    if name == "retry_reasons":
        if value is None:
            return ()
        if isinstance(value, list | tuple) and all(isinstance(r, str) for r in value):
            return tuple(value)
        raise TypeError(f"{name!r} must be a list of strings, got {_shown(value)}")
    if name not in _COUNTS + _SECONDS:
        return value
    if value is None and name != "latency":
        return None if name == "first_token" else 0
    integer = name in _COUNTS
    what = "an integer >= 0" if integer else "a finite number of seconds >= 0"
    problem = f"{name!r} must be {what}{'' if name == 'latency' else ' or null'}, got "
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or (integer and not isinstance(value, int)):
        raise TypeError(problem + _shown(value))
    assert isinstance(value, int | float)
    if value < 0 or not (integer or math.isfinite(value)):  # a huge int is no float
        raise ValueError(problem + _shown(value))
    return value if integer else float(value)


@dataclass(slots=True)
class Outcome:
    """What became of one proposal.

    Attributes:
        index: the proposal's number in the run.
        kind: "scored" until the loop applies it, then one of OUTCOME_KINDS.
        reason: why it was not evaluated, or is a duplicate.
        score: the evaluation, for "evaluated" (and "duplicate" found after scoring).
        island, parent, other: where it was proposed and from which parents.
        note: how it was made (the mutation, or the LLM's finish reason).
        origin: the proposer's kind ("offline", "llm", "replay").
        source: the text that failed to parse or validate, or the candidate's source.
        logged: whether it is already in the event log (replayed on a resume).
        model: the model whose reply it is ("" without one).
        turns: the exchanges its conversation took (1 + follow-ups).
        repairs: what minact.validate.repair changed in the reply's code (empty: nothing).
    """

    index: int
    kind: str
    reason: str = ""
    score: Score | None = None
    island: int = 0
    parent: Hash | None = None
    other: Hash | None = None
    note: str = ""
    origin: str = ""
    source: str = ""
    logged: bool = False
    model: str = ""
    turns: int = 1
    repairs: tuple[str, ...] = ()

    @property
    def new_valid(self) -> bool:
        """Returns whether it brought a new valid candidate: evaluated, and scored in full or
        screened by the cascade (a valid function, scored in part)."""
        s = self.score
        return self.kind == "evaluated" and s is not None and (s.ok or s.status == "screened")


@dataclass(slots=True)
class Counters:
    """What happened to the proposals of a run.

    The loop counts with `add_reply` and `add_outcome` as it goes; a report of a run that
    never finished recounts the same way from its event log (runs.history).
    """

    proposals: int = 0
    evaluated: int = 0
    cache_hits: int = 0
    collisions: int = 0
    screened: int = 0  # evaluated candidates the cascade stopped after stage 1
    repaired: int = 0  # replies whose code minact.validate.repair changed
    parse_failures: int = 0
    rejected: int = 0
    duplicates: int = 0
    llm_errors: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_estimated: bool = False
    llm_seconds: float = 0.0
    retries: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    follow_ups: int = 0
    follow_up_reasons: dict[str, int] = field(default_factory=dict)
    first_new: int = 0  # new valid candidates from a proposal's first reply
    follow_up_new: int = 0  # new valid candidates from a follow-up's reply
    models: dict[str, dict[str, float]] = field(default_factory=dict)
    prompt_cuts: dict[str, int] = field(default_factory=dict)

    def add_reply(self, reply: Reply) -> None:
        """Counts one exchange: the call, and the tokens, time and retries it cost."""
        self.calls += 1
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens
        self.tokens_estimated |= reply.attempts > 0 and not reply.usage_reported
        self.llm_seconds += reply.latency
        self.retries += max(0, reply.attempts - 1)
        if reply.model:
            m = self._model(reply.model)
            m["calls"] += 1
            m["prompt_tokens"] += reply.prompt_tokens
            m["completion_tokens"] += reply.completion_tokens
            m["seconds"] += reply.latency
            m["errors"] += reply.error is not None

    def add_follow_up(self, kind: str) -> None:
        """Counts a reply of `kind` that was answered with a follow-up instead of an outcome."""
        self.follow_ups += 1
        self.follow_up_reasons[kind] = self.follow_up_reasons.get(kind, 0) + 1

    def add_prompt_cuts(self, cut: Mapping[str, int]) -> None:
        """Counts what the prompt budget left out of one request."""
        for section, n in cut.items():
            self.prompt_cuts[section] = self.prompt_cuts.get(section, 0) + n

    def _model(self, name: str) -> dict[str, float]:
        keys = ("calls", "prompt_tokens", "completion_tokens", "seconds", "errors", "new_valid")
        return self.models.setdefault(name, dict.fromkeys(keys, 0))

    def add_outcome(self, o: Outcome) -> None:
        """Counts one applied outcome under its kind (and its failure, if it failed)."""
        self.repaired += bool(o.repairs)
        self.first_new += o.new_valid and o.turns == 1
        self.follow_up_new += o.new_valid and o.turns > 1
        if o.kind == "evaluated" and o.score is not None:
            self.evaluated += 1
            self.cache_hits += o.score.cached
            self.collisions += o.score.collision is not None
            self.screened += o.score.status == "screened"
            if not o.new_valid:
                self.failures[o.score.status] = self.failures.get(o.score.status, 0) + 1
            elif o.model:
                m = self._model(o.model)
                m["new_valid"] += 1
                fitness = o.score.fitness if o.score.ok else None
                if fitness is not None and fitness < m.get("best", math.inf):
                    m["best"] = fitness  # set once the model has a candidate scored in full
        elif o.kind == "duplicate":
            self.duplicates += 1
        elif o.kind == "parse_failure":
            self.parse_failures += 1
        elif o.kind == "rejected":
            self.rejected += 1
        elif o.kind == "llm_error":
            self.llm_errors += 1

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Counters:
        """Builds Counters from `to_dict` output (unknown keys ignored, missing ones zero)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def to_event(o: Outcome) -> dict[str, Any]:
    """Returns the events.jsonl line of an applied outcome."""
    return {
        "event": "outcome",
        "index": o.index,
        "kind": o.kind,
        "reason": o.reason,
        "island": o.island,
        "parent": o.parent,
        "other": o.other,
        "origin": o.origin,
        "note": o.note,
        "source": o.source if o.score is None else "",
        "score": o.score.to_dict() if o.score is not None else None,
        "model": o.model,
        "turns": o.turns,
        "repairs": list(o.repairs),
    }


def proposal_event(o: Outcome, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Returns the events.jsonl line of a proposal as it is sent: `o` is its outcome-to-be
    (index, island, parents, proposer), `extra` what its prompt says (opening, cuts)."""
    return {
        "event": "proposal",
        "index": o.index,
        "island": o.island,
        "parent": o.parent,
        "other": o.other,
        "proposer": o.origin,
        **extra,
    }


def collision_event(o: Outcome) -> dict[str, Any] | None:
    """Returns the events.jsonl line recording a behaviour-hash collision, if `o` had one.

    The candidate's behaviour hash matched other code whose results its own code did not
    reproduce in the verification; it was trained under its own code hash instead.
    """
    s = o.score
    if s is None or s.collision is None:
        return None
    return {
        "event": "collision",
        "index": o.index,
        "name": s.name,
        "code_hash": s.code_hash,
        "behaviour_hash": s.collision,
    }


def from_event(e: Mapping[str, Any]) -> Outcome:
    """Returns the outcome an events.jsonl line records; raises on a malformed one."""
    score = Score.from_dict(e["score"]) if e.get("score") else None
    kind = str(e["kind"])
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"unknown outcome kind {kind!r}")
    island = e.get("island")
    turns = e.get("turns")
    repairs = e.get("repairs")
    return Outcome(
        int(e["index"]),
        kind,
        str(e.get("reason", "")),
        score,
        int(island) if isinstance(island, int) else 0,
        e.get("parent"),
        e.get("other"),
        str(e.get("note", "")),
        str(e.get("origin", "")),
        str(e.get("source", "")),
        logged=True,
        model=str(e.get("model") or ""),
        turns=turns if isinstance(turns, int) and turns >= 1 else 1,
        repairs=tuple(str(r) for r in repairs) if isinstance(repairs, list) else (),
    )
