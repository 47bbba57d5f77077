"""A run's history: what its event log holds, rebuilt for a resume or a report.

events.jsonl holds one line per seed, reply and applied outcome. `History.from_events`
keeps what can be replayed (a gap-free prefix of outcomes) and skips damaged lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from minact.outcome import Counters, Outcome, Reply, from_event
from minact.score import Score

__all__ = ["History", "Lineage"]


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a scored candidate came from in its run.

    Attributes:
        index: the proposal that made it; -1 for a built-in seed.
        origin: "seed", "offline", "llm" or "replay".
        island: the island it joined; None for seeds (they start on every island).
        parent, other: code hashes of the parent and of the second parent offered.
        note: the mutation, or the LLM's finish reason.
    """

    index: int
    origin: str
    island: int | None = None
    parent: str | None = None
    other: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Returns the lineage fields a ranking entry carries."""
        return {
            "index": self.index,
            "origin": self.origin,
            "island": self.island,
            "note": self.note,
        }


SEED = Lineage(index=-1, origin="seed")


@dataclass(slots=True)
class History:
    """What a run's event log already holds: seeds, replies and applied outcomes."""

    seeds: list[Score] = field(default_factory=list)
    replies: dict[int, Reply] = field(default_factory=dict)
    outcomes: dict[int, Outcome] = field(default_factory=dict)

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> History:
        """Returns the history in a run's events (malformed events are skipped)."""
        h = cls()
        for e in events:
            try:
                if e["event"] == "seed":
                    h.seeds.append(Score.from_dict(e["score"]))
                elif e["event"] == "reply":
                    h.replies[int(e["index"])] = Reply.from_dict(e["reply"])
                elif e["event"] == "outcome":
                    o = from_event(e)
                    h.outcomes[o.index] = o
            except (KeyError, TypeError, ValueError):
                continue
        # Only a gap-free prefix of outcomes can be replayed in order.
        n = 0
        while n in h.outcomes:
            n += 1
        h.outcomes = {k: v for k, v in h.outcomes.items() if k < n}
        return h

    def evaluated(self) -> list[Outcome]:
        """Returns the evaluated outcomes, in proposal order."""
        return [
            o
            for _, o in sorted(self.outcomes.items())
            if o.kind == "evaluated" and o.score is not None
        ]

    def scored(self) -> list[tuple[Score, Lineage]]:
        """Returns the seeds and evaluated candidates, each with its lineage."""
        out = [(s, SEED) for s in self.seeds]
        for o in self.evaluated():
            assert o.score is not None
            lineage = Lineage(o.index, o.origin, o.island, o.parent, o.other, o.note)
            out.append((o.score, lineage))
        return out

    def counters(self) -> Counters:
        """Returns the counters recounted from the log, as the loop counts them."""
        c = Counters(proposals=len(self.outcomes), calls=len(self.replies))
        for reply in self.replies.values():
            c.add_reply(reply)
        for _, o in sorted(self.outcomes.items()):
            c.add_outcome(o)
        return c
