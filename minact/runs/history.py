"""A run's history: what its event log holds, rebuilt for a resume or a report.

events.jsonl holds one line per seed, reply, follow-up and applied outcome. A proposal's
conversation may take several exchanges: each reply carries its turn (0 for the opening
request), and each reply answered with a follow-up has a "follow_up" line with its
verdict. `History.from_events` keeps what can be replayed (a gap-free prefix of
outcomes), and skips and counts the lines of the wrong shape (runs.events).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from minact.outcome import Counters, Outcome, Reply
from minact.runs import events as decode
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
    """What a run's event log already holds: seeds, replies and applied outcomes.

    Attributes:
        replies: the last reply of each proposal (the one its outcome came from).
        turns: every reply, by (proposal index, turn).
        follow_ups: the verdict kind of each reply answered with a follow-up.
        cuts: what the prompt budget left out of each proposal's request.
        proposed: the proposals whose "proposal" line is logged (a resume logs no second).
        exchanges: the turns logged of each proposal, in order (the keys of `turns`).
        skipped: events of a known kind that were skipped for their shape (a line edited
            by hand, or written by another tool).
        ended: the status of the "end" line the log ends with ("" for one without a
            status); None when the log does not end with one (a running or killed run).
    """

    seeds: list[Score] = field(default_factory=list)
    replies: dict[int, Reply] = field(default_factory=dict)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    turns: dict[tuple[int, int], Reply] = field(default_factory=dict)
    follow_ups: dict[tuple[int, int], str] = field(default_factory=dict)
    cuts: dict[int, dict[str, int]] = field(default_factory=dict)
    proposed: set[int] = field(default_factory=set)
    exchanges: dict[int, list[int]] = field(default_factory=dict)
    skipped: int = 0
    ended: str | None = None

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> History:
        """Returns the history in a run's events; events of the wrong shape are skipped
        (runs.events decodes each kind) and counted in `skipped`."""
        h = cls()
        for e in events:
            kind = e.get("event")
            # Only the last line counts: a log holds one "end" line per session of a resumed
            # run, and earlier versions logged one again on resuming a run killed after its
            # end line but before its report.
            h.ended = _status(e) if kind == "end" else None
            try:
                if kind == "seed":
                    h.seeds.append(decode.score(e.get("score")))
                elif kind == "reply":
                    key = (decode.index(e), decode.index(e, "turn") if "turn" in e else 0)
                    h.turns[key] = decode.reply(e.get("reply"))
                elif kind == "proposal":
                    index, cut = decode.index(e), decode.cut(e)
                    h.proposed.add(index)
                    if cut:
                        h.cuts[index] = cut
                elif kind == "follow_up":
                    verdict = e.get("kind")
                    if not isinstance(verdict, str):
                        raise decode.MalformedEvent(f"follow_up: kind {verdict!r}")
                    h.follow_ups[(decode.index(e), decode.index(e, "turn"))] = verdict
                elif kind == "outcome":
                    o = decode.outcome(e)
                    h.outcomes[o.index] = o
                elif kind in decode.CHECK_KINDS:
                    decode.check(e)  # runs.checks reads it; counted here if malformed
            except decode.MalformedEvent:
                h.skipped += 1
        for (index, turn), reply in sorted(h.turns.items()):
            h.replies[index] = reply  # the highest turn wins
            h.exchanges.setdefault(index, []).append(turn)
        # Only a gap-free prefix of outcomes can be replayed in order.
        n = 0
        while n in h.outcomes:
            n += 1
        h.outcomes = {k: v for k, v in h.outcomes.items() if k < n}
        return h

    def calls(self) -> int:
        """Returns the exchanges (opening requests and follow-ups) of the outcomes a resume
        replays: what the run's call cap already counts."""
        return sum(o.turns for o in self.outcomes.values())

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

    def count_exchanges(self, c: Counters, index: int | None = None) -> None:
        """Counts the logged replies, follow-ups and prompt cuts (of proposal `index` only,
        if given) into `c`."""
        # A resume counts each replayed proposal's own: looked up, not found among all the
        # log's turns (sorting them for each proposal made replaying 2000 quadratic).
        if index is None:
            keys, cuts = sorted(self.turns), [cut for _, cut in sorted(self.cuts.items())]
        else:
            keys = [(index, turn) for turn in self.exchanges.get(index, ())]
            cuts = [self.cuts[index]] if index in self.cuts else []
        for key in keys:
            c.add_reply(self.turns[key])
            if key in self.follow_ups:
                c.add_follow_up(self.follow_ups[key])
        for cut in cuts:
            c.add_prompt_cuts(cut)

    def counters(self) -> Counters:
        """Returns the counters recounted from the log, as the loop counts them."""
        c = Counters(proposals=len(self.outcomes))
        self.count_exchanges(c)
        for _, o in sorted(self.outcomes.items()):
            c.add_outcome(o)
        return c


def _status(end: Mapping[str, Any]) -> str:
    status = end.get("status")
    return status if isinstance(status, str) else ""
