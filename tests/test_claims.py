"""Tests for minact.claims: the paired bootstrap against the best baseline."""

from __future__ import annotations

from typing import Any

from minact.claims import best_baseline, claim_text, claims, paired_claim


def test_a_candidate_better_on_every_task_beats_the_baseline() -> None:
    c = paired_claim([-0.5, -0.4, -0.6, -0.45], [0.0, 0.1, -0.1, 0.05], "gelu")
    assert c is not None and c.verdict == "yes" and c.against == "gelu"
    assert c.hi < 0 and c.lo <= c.difference <= c.hi and c.tasks == 4
    assert claim_text(c.to_dict()).startswith("yes (95% CI [-")


def test_worse_everywhere_is_no_and_mixed_is_inconclusive() -> None:
    worse = paired_claim([0.3, 0.4, 0.5], [0.0, 0.0, 0.0], "relu")
    assert worse is not None and worse.verdict == "no" and worse.lo > 0
    mixed = paired_claim([-1.0, 1.0, -0.9, 1.1, -1.2, 0.8], [0.0] * 6, "relu")
    assert mixed is not None and mixed.verdict == "inconclusive" and mixed.lo < 0 < mixed.hi


def test_the_interval_is_seeded_and_needs_three_tasks() -> None:
    a, b = [-0.2, 0.1, -0.3, 0.05, -0.1], [0.0] * 5
    assert paired_claim(a, b, "x", seed=3) == paired_claim(a, b, "x", seed=3)
    assert paired_claim([-1.0, -2.0], [0.0, 0.0], "x") is None
    assert claim_text(None) == "—"


def _row(name: str, fitness: float, ratios: list[float], baseline: bool) -> dict[str, Any]:
    return {
        "name": name,
        "code_hash": name * 8,
        "status": "ok",
        "fitness": fitness,
        "baseline": baseline,
        "tasks": {f"t{i}": {"log_ratio": r} for i, r in enumerate(ratios)},
    }


def test_claims_pair_each_new_candidate_with_the_best_baseline() -> None:
    rows = [
        _row("new", -0.5, [-0.5, -0.6, -0.4], False),
        _row("gelu", -0.2, [-0.2, -0.2, -0.2], True),
        _row("relu", 0.0, [0.0, 0.0, 0.0], True),
    ]
    assert best_baseline(rows) is rows[1]
    found = claims(rows, ["t0", "t1", "t2"])
    assert set(found) == {"new" * 8}
    claim = found["new" * 8]
    assert claim is not None and claim.against == "gelu" and claim.verdict == "yes"
    assert claims([rows[0]], ["t0"]) == {}  # no baseline, nothing to claim
