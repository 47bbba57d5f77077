"""Tests for the summary of how a run ended."""

from __future__ import annotations

import pytest

from minact.outcome import Counters
from minact.search.population import Population
from minact.search.summary import summarise


@pytest.mark.parametrize(
    ("evaluated", "message"),
    [(0, "evaluated 0 candidates"), (1, "evaluated 1 candidate"), (2, "evaluated 2 candidates")],
)
def test_a_finished_run_says_how_many_it_evaluated(evaluated: int, message: str) -> None:
    counters = Counters()
    counters.evaluated = evaluated
    summary = summarise(counters, Population(), evaluated, None, 1.0)
    assert (summary.status, summary.message) == ("finished", message)


def test_a_run_stopped_before_its_budget_says_why_and_what_it_did() -> None:
    counters = Counters()
    counters.evaluated, counters.duplicates = 1, 3
    summary = summarise(counters, Population(), 5, ("call_cap", "the call cap was reached"), 1.0)
    assert summary.status == "call_cap"
    assert summary.message.startswith("the call cap was reached; evaluated 1 of 5 ")
    assert "3 duplicates" in summary.message
