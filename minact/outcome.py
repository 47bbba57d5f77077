"""What happened to each proposal: outcome records, the run's counters, and the history
(seeds, replies, applied outcomes) that an event log holds for a resume to replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minact.candidate import Hash, Score
from minact.proposers import Reply

__all__ = ["OUTCOME_KINDS", "Counters", "History", "Outcome", "from_event", "to_event"]

OUTCOME_KINDS = ("evaluated", "parse_failure", "rejected", "duplicate", "llm_error")


@dataclass(slots=True)
class Counters:
    """What happened to the proposals of a run."""

    proposals: int = 0
    evaluated: int = 0
    cache_hits: int = 0
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

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(slots=True)
class Outcome:
    index: int
    kind: str  # "scored" until applied, then one of OUTCOME_KINDS
    reason: str = ""
    score: Score | None = None
    island: int = 0
    parent: Hash | None = None
    other: Hash | None = None
    note: str = ""
    origin: str = ""
    source: str = ""
    logged: bool = False


@dataclass(slots=True)
class History:
    """What a run's event log already holds: seeds, replies and applied outcomes."""

    seeds: list[Score] = field(default_factory=list)
    replies: dict[int, Reply] = field(default_factory=dict)
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_events(cls, events: Sequence[Mapping[str, Any]]) -> History:
        """Returns the history in a run's events (malformed events are skipped)."""
        h = cls()
        for e in events:
            try:
                if e["event"] == "seed":
                    h.seeds.append(Score.from_dict(e["score"]))
                elif e["event"] == "reply":
                    h.replies[int(e["index"])] = Reply.from_dict(e["reply"])
                elif e["event"] == "outcome" and e.get("kind") in OUTCOME_KINDS:
                    h.outcomes[int(e["index"])] = dict(e)
            except (KeyError, TypeError, ValueError):
                continue
        # Only a gap-free prefix of outcomes can be replayed in order.
        n = 0
        while n in h.outcomes:
            n += 1
        h.outcomes = {k: v for k, v in h.outcomes.items() if k < n}
        return h

    def scored(self) -> list[tuple[Score, dict[str, Any]]]:
        """Returns the seeds and evaluated candidates, each with its lineage fields."""
        out: list[tuple[Score, dict[str, Any]]] = [
            (s, {"index": -1, "origin": "seed", "island": None, "note": ""}) for s in self.seeds
        ]
        for k in sorted(self.outcomes):
            e = self.outcomes[k]
            if e["kind"] != "evaluated" or not e.get("score"):
                continue
            lineage = {key: e.get(key) for key in ("index", "origin", "island", "note")}
            out.append((Score.from_dict(e["score"]), lineage))
        return out


def to_event(o: Outcome) -> dict[str, Any]:
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
    }


def from_event(e: Mapping[str, Any]) -> Outcome:
    score = Score.from_dict(e["score"]) if e.get("score") else None
    return Outcome(
        int(e["index"]),
        str(e["kind"]),
        str(e.get("reason", "")),
        score,
        int(e.get("island", 0)),
        e.get("parent"),
        e.get("other"),
        str(e.get("note", "")),
        str(e.get("origin", "")),
        str(e.get("source", "")),
        logged=True,
    )
