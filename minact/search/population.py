"""The run's population: scored candidates on islands, parent selection, lineage, ranking.

Every successful candidate joins the island its proposal came from; built-in seeds join
every island. Parents are drawn by rank within an island (weight 1 / (rank + 1)), so
the best are favoured without starving the rest; each island keeps its `capacity` best
for selection. Every `migration_interval` outcomes, each island's best moves to the
next island (a ring), as in FunSearch and OpenEvolve. All randomness comes from the
`random.Random` the caller passes in, so a run is reproducible from its seed.

The search loop (minact.search.loop) is the only writer; nothing here needs a lock.
"""

from __future__ import annotations

import bisect
import collections
import random
from dataclasses import dataclass

from minact.candidate import Hash
from minact.score import Score

__all__ = ["Failure", "Member", "Population"]


@dataclass(frozen=True, slots=True)
class Member:
    """A scored candidate of this run.

    Attributes:
        index: the proposal that made it; -1 for built-in seeds.
        island: the island it joined; None for seeds (they start on every island).
        origin: "seed", "offline" or "llm".
        note: how it was made (the mutation, or the start of the LLM's reply).
    """

    score: Score
    index: int
    island: int | None
    origin: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    """A recent proposal that failed, shown to the LLM so it can learn from it."""

    source: str
    kind: str
    reason: str


class Population:
    """Scored candidates, by island, with lineage and ranking."""

    def __init__(self, islands: int = 4, capacity: int = 32, migration_interval: int = 25) -> None:
        if islands < 1 or capacity < 1 or migration_interval < 1:
            raise ValueError("islands, capacity and migration_interval must be >= 1")
        self.islands = islands
        self.capacity = capacity
        self.migration_interval = migration_interval
        self.members: list[Member] = []
        self._ranked: list[Member] = []  # the successful members, kept in ranked() order
        self._pools: list[list[Member]] = [[] for _ in range(islands)]
        self._codes: dict[Hash, Member] = {}
        self._behaviours: dict[Hash, Member] = {}
        self._failures: collections.deque[Failure] = collections.deque(maxlen=16)
        self._applied = 0

    # membership -----------------------------------------------------------------------

    def knows(self, s: Score) -> Member | None:
        """Returns the member with s's code hash, or else the first to show its behaviour."""
        code = self._codes.get(s.code_hash) if s.code_hash is not None else None
        return code or (self._behaviours.get(s.behaviour_hash) if s.behaviour_hash else None)

    def add(self, member: Member) -> None:
        """Adds a scored candidate (a seed goes to every island, a child to its own)."""
        s = member.score
        self.members.append(member)
        if s.code_hash is not None:
            self._codes.setdefault(s.code_hash, member)
        if s.behaviour_hash is not None:
            self._behaviours.setdefault(s.behaviour_hash, member)
        if not s.ok:
            if s.status != "screened":  # screened is no failure: it scored, but worse
                self.note_failure(s.source, s.status, s.reason)
            return
        # Kept sorted as members join (after those it ties with, as a stable sort would put
        # it): the ranking is read for every proposal and every progress update, and
        # sorting the whole run each time grew with the run.
        bisect.insort(self._ranked, member, key=_rank)
        targets = range(self.islands) if member.island is None else [member.island % self.islands]
        for i in targets:
            self._insert(i, member)

    def note_failure(self, source: str, kind: str, reason: str) -> None:
        """Remembers a failed proposal for the next prompts."""
        self._failures.append(Failure(source, kind, reason))

    def outcome_applied(self) -> None:
        """Counts one applied proposal outcome; migrates on every interval."""
        self._applied += 1
        if self.islands > 1 and self._applied % self.migration_interval == 0:
            self._migrate()

    # selection ------------------------------------------------------------------------

    def select(self, island: int, rng: random.Random) -> tuple[Member, Member | None]:
        """Returns a parent drawn by rank from `island`, and a different second member."""
        pool = self._pools[island % self.islands]
        if not pool:
            raise ValueError("no successful candidate to select from; the seeds all failed")
        weights = [1.0 / (rank + 1) for rank in range(len(pool))]
        parent = rng.choices(pool, weights=weights)[0]
        others = [m for m in pool if m.score.code_hash != parent.score.code_hash]
        other = rng.choice(others) if others else None
        return parent, other

    def ranked(self) -> list[Member]:
        """Returns the successful members, best fitness first (ties by age)."""
        return list(self._ranked)

    def top(self, k: int, exclude: set[Hash] | None = None) -> list[Member]:
        """Returns the k best members with distinct behaviours, skipping `exclude`."""
        out: list[Member] = []
        seen = set(exclude or ())
        for m in self.ranked():
            bh = m.score.behaviour_hash or m.score.code_hash
            if bh is None or bh in seen or m.score.code_hash in seen:
                continue
            seen.add(bh)
            out.append(m)
            if len(out) == k:
                break
        return out

    def diverse(self, k: int, rng: random.Random, exclude: set[Hash]) -> list[Member]:
        """Returns up to k members drawn uniformly from those whose code and behaviour are
        not in `exclude` (the caller excludes the parent and the top it shows)."""
        rest = [
            m
            for m in self.ranked()
            if m.score.code_hash not in exclude and m.score.behaviour_hash not in exclude
        ]
        return rng.sample(rest, min(k, len(rest)))

    def failures(self, k: int) -> list[Failure]:
        """Returns the k most recent failures, newest last."""
        return list(self._failures)[-k:]

    # internals ------------------------------------------------------------------------

    def _insert(self, island: int, member: Member) -> None:
        pool = self._pools[island]
        if any(m.score.code_hash == member.score.code_hash for m in pool):
            return
        pool.append(member)
        pool.sort(key=_rank)
        del pool[self.capacity :]

    def _migrate(self) -> None:
        bests = [pool[0] if pool else None for pool in self._pools]
        for i, best in enumerate(bests):
            if best is not None:
                self._insert((i + 1) % self.islands, best)


def _rank(m: Member) -> tuple[float | None, int]:
    """Returns the key members are ranked by: fitness (lower is better), then age."""
    return m.score.fitness, m.index
