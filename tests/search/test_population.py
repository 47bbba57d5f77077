"""Tests for minact.population: selection by rank, islands, migration, lineage lookups."""

from __future__ import annotations

import collections
import random

import pytest

from minact.candidate import Hash
from minact.score import Score
from minact.search.population import Member, Population


def _m(name: str, fitness: float | None, island: int | None = 0, index: int = 0) -> Member:
    status = "ok" if fitness is not None else "nonfinite"
    score = Score(
        name, Hash(f"code-{name}"), f"src {name}", status, "", Hash(f"beh-{name}"), fitness
    )
    return Member(score, index, island, "seed" if island is None else "llm")


def test_rank_based_selection_favours_the_best() -> None:
    pop = Population(islands=1)
    for i, f in enumerate([0.5, -0.5, 0.0, 0.2, 0.9]):
        pop.add(_m(f"m{i}", f, index=i))
    rng = random.Random(0)
    picks = collections.Counter(pop.select(0, rng)[0].score.name for _ in range(3000))
    assert picks["m1"] > picks["m2"] > picks["m3"] > picks["m0"] > picks["m4"] > 0
    parent, other = pop.select(0, rng)
    assert other is not None and other.score.code_hash != parent.score.code_hash


def test_seeds_join_every_island_children_their_own() -> None:
    pop = Population(islands=3, migration_interval=1000)
    pop.add(_m("seed", 0.0, island=None, index=-1))
    pop.add(_m("child", -1.0, island=2, index=1))
    rng = random.Random(1)
    assert {pop.select(0, rng)[0].score.name for _ in range(50)} == {"seed"}
    assert "child" in {pop.select(2, rng)[0].score.name for _ in range(50)}


def test_migration_moves_an_island_best_to_the_next() -> None:
    pop = Population(islands=2, migration_interval=2)
    pop.add(_m("seed", 0.0, island=None, index=-1))
    pop.add(_m("star", -2.0, island=0, index=1))
    rng = random.Random(2)
    assert "star" not in {pop.select(1, rng)[0].score.name for _ in range(100)}
    pop.outcome_applied()
    pop.outcome_applied()
    assert "star" in {pop.select(1, rng)[0].score.name for _ in range(100)}


def test_failures_are_kept_for_prompts_not_for_selection() -> None:
    pop = Population(islands=1)
    pop.add(_m("ok", 0.0, index=0))
    pop.add(_m("bad", None, index=1))
    assert pop.failures(5)[-1].kind == "nonfinite"
    assert {m.score.name for m in pop.ranked()} == {"ok"}
    # A failed candidate is known by its code, and a behaviour by its first member.
    assert pop.knows(_m("bad", None).score) is not None
    other_code = Score("x", Hash("code-x"), "src x", "ok", "", Hash("beh-ok"), 0.0)
    known = pop.knows(other_code)
    assert known is not None and known.score.name == "ok"
    assert pop.knows(_m("new", 0.0).score) is None


def test_capacity_and_empty_islands() -> None:
    with pytest.raises(ValueError, match="no successful candidate"):
        Population(islands=1).select(0, random.Random(0))
    pop = Population(islands=1, capacity=2)
    for i in range(5):
        pop.add(_m(f"m{i}", float(i), index=i))
    assert {pop.select(0, random.Random(i))[0].score.name for i in range(50)} == {"m0", "m1"}
    assert len(pop.ranked()) == 5
    assert [m.score.name for m in pop.top(2)] == ["m0", "m1"]


def test_diverse_draws_from_every_member_outside_the_excluded_ones() -> None:
    pop = Population(islands=1)
    for i in range(6):
        pop.add(_m(f"m{i}", float(i), index=i))
    top = {Hash("code-m0"), Hash("code-m1")}  # the parent and the top the prompt shows
    drawn = {m.score.name for s in range(200) for m in pop.diverse(2, random.Random(s), top)}
    assert drawn == {"m2", "m3", "m4", "m5"}
    # Excluded by behaviour too, and nothing is lost when only k members remain.
    rest = pop.diverse(2, random.Random(0), {*top, Hash("beh-m2"), Hash("beh-m3")})
    assert {m.score.name for m in rest} == {"m4", "m5"}
    assert pop.diverse(3, random.Random(0), {Hash(f"code-m{i}") for i in range(6)}) == []


def test_the_ranking_kept_as_members_join_is_the_sorted_one() -> None:
    # Fitness ties (seeds share index -1) keep the order members joined in, as sorting did.
    rng = random.Random(3)
    pop = Population(islands=2)
    joined = []
    for i in range(300):
        seed = i < 20
        m = _m(f"m{i}", rng.choice([None, 0.5, *(rng.random() for _ in range(3))]),
               None if seed else i % 2, -1 if seed else i)  # fmt: skip
        pop.add(m)
        joined.append(m)
        if i % 37 == 0 or i == 299:
            ok = [m for m in joined if m.score.ok]
            assert pop.ranked() == sorted(ok, key=lambda m: (m.score.fitness, m.index))
    pop.ranked().clear()  # a copy: the caller's to change
    assert len(pop.ranked()) == sum(m.score.ok for m in joined)
