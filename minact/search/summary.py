"""How a run ended: its status, a message for the user, its counters and population."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from minact.outcome import Counters
from minact.search.population import Population

__all__ = ["Status", "Stop", "Summary", "summarise"]

# How a run ended, as run.json's "status" says it (and the terminal and the report show it):
# its budget reached; stopped before it by the call cap, by an LLM that kept failing, or by
# the end of a replay's recording; stopped by the user; or failed.
Status = Literal["finished", "call_cap", "llm_failed", "replay_ended", "interrupted", "failed"]
Stop = tuple[Status, str]  # a status and the message that says why


@dataclass(slots=True)
class Summary:
    """How a run ended, with its population and counters."""

    status: Status
    message: str
    counters: Counters
    population: Population
    seconds: float


def summarise(
    counters: Counters,
    population: Population,
    budget: int,
    stop: Stop | None,
    seconds: float,
    forced: Stop | None = None,
) -> Summary:
    """Returns the Summary of a run: finished, stopped by `stop` (status, message) before its
    budget, or `forced`."""
    c = counters
    noun = "candidate" if c.evaluated == 1 else "candidates"
    status, message = forced or ("finished", f"evaluated {c.evaluated} {noun}")
    if forced is None and c.evaluated < budget and stop is not None:
        status, message = stop
        message += (
            f"; evaluated {c.evaluated} of {budget} "
            f"({c.parse_failures} unparsable, {c.rejected} rejected, "
            f"{c.duplicates} duplicates, {c.llm_errors} LLM errors)"
        )
    return Summary(status, message, c, population, seconds)
