"""Tests for minact.cli._live: the progress line of a search, fresh and resumed."""

from __future__ import annotations

import asyncio
from typing import Any

from minact.cli._live import _search_line
from minact.lab.task import Lab
from minact.runs.history import History
from minact.search.loop import Loop, SearchConfig
from minact.search.proposers import OfflineProposer
from tests.fakes import FakeEvaluator


def _lines(lab: Lab, config: SearchConfig, history: History, events: list[Any]) -> list[str]:
    lines: list[str] = []

    def progress(loop: Loop) -> None:
        if loop.seeded:
            lines.append(_search_line(loop, 60.0))  # as if a minute had gone by

    loop = Loop(config, lab, OfflineProposer(), FakeEvaluator(), events.append, progress, history)
    asyncio.run(loop.run())
    return lines


def test_a_resume_rates_only_what_it_evaluated_and_says_how_many_came_from_the_log(
    tiny_lab: Lab,
) -> None:
    config = SearchConfig(budget=8, concurrency=2, seed=5)
    events: list[Any] = []
    fresh = _lines(tiny_lab, config, History(), events)
    assert fresh[-1].startswith("evaluated 8/8 (8.0/min, ") and "from the log" not in fresh[-1]
    # Killed after its first outcomes: the resume replays them and evaluates the rest.
    kept = [e for e in events if not (e["event"] == "outcome" and e["index"] >= 3)]
    kept = [e for e in kept if not (e["event"] in ("proposal", "reply") and e["index"] >= 3)]
    logged = sum(1 for e in kept if e["event"] == "outcome" and e["kind"] == "evaluated")
    assert logged >= 1
    resumed = _lines(tiny_lab, config, History.from_events(kept), [])
    rate = f"{8 - logged:.1f}/min"
    assert resumed[-1].startswith(f"evaluated 8/8 ({logged} from the log, {rate}, ")
    # The first line comes after the log's outcomes apply: never "0/8" for a run with some,
    # nor a count of the log's outcomes applied so far.
    assert resumed[0].startswith(f"evaluated {logged}/8 ({logged} from the log, "), resumed[0]
