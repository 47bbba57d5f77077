"""The live line of `minact evolve`: the built-ins being scored, then the search's counters.

On a terminal it is redrawn in place; otherwise (a log, a pipe) it is printed every 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from rich.live import Live

from minact.cli._shared import err, note
from minact.numbers import number_text

if TYPE_CHECKING:
    from minact.search.loop import Loop

__all__ = ["search_progress"]


def search_progress(
    enabled_live: bool,
) -> tuple[Callable[[Loop], None], AbstractContextManager[Any]]:
    """Returns the hook that shows a search's progress, and the context that holds the live
    line (a no-op context when `enabled_live` is false: lines are printed instead)."""
    live = Live(console=err, refresh_per_second=4, transient=True) if enabled_live else None
    last = [0.0]

    def show(loop: Loop) -> None:
        now = time.monotonic()
        # Called after every outcome: a line that is not printed is not written either.
        if live is None and now - last[0] <= 10 and loop.counters.evaluated != loop.config.budget:
            return
        elapsed = now - loop.started
        text = _seeding_line(loop) or _search_line(loop, elapsed)
        if live is not None:
            live.update(text)
        else:
            last[0] = now
            note(f"[{elapsed:6.0f}s] {text}")

    return show, live if live is not None else nullcontext()


def _seeding_line(loop: Loop) -> str | None:
    """Returns the line shown while the built-ins are scored, None after."""
    if loop.seeding is None or loop.seeding[0] >= loop.seeding[1]:
        return None
    done, total = loop.seeding
    text = f"scoring {total} built-in activations: {done}/{total}"
    if loop.in_flight or loop.waiting_for_evaluation:  # the opening proposals (search.opening)
        text += (
            f" · first LLM requests: in flight {loop.in_flight}, "
            f"replies waiting for the evaluator {loop.waiting_for_evaluation}"
        )
    return text


def _search_line(loop: Loop, elapsed: float) -> str:
    """Returns the line shown during the search."""
    c = loop.counters
    best = loop.population.ranked()
    new = next((m for m in best if m.origin != "seed"), None)
    # This session's rate: a resume's outcomes read back from the log took no time here.
    rate = (c.evaluated - loop.from_log) / elapsed * 60 if elapsed > 0 else 0.0
    fails = ", ".join(f"{k} {v}" for k, v in sorted(c.failures.items())) or "none"
    logged = f"{loop.from_log} from the log, " if loop.from_log else ""
    text = f"evaluated {c.evaluated}/{loop.config.budget} ({logged}{rate:.1f}/min"
    text += f", {c.cache_hits} cached)"
    if best:
        text += f" · best {number_text(best[0].score.fitness, '+.3f')} ({best[0].score.name})"
    if new is not None and new.score.fitness is not None:
        text += f" · best new {number_text(new.score.fitness, '+.3f')}"
    text += (
        f" · in flight {loop.in_flight}, evaluating {loop.waiting_for_evaluation}"
        f" · unparsable {c.parse_failures}, rejected {c.rejected}, duplicates {c.duplicates},"
        f" LLM errors {c.llm_errors} · follow-ups {c.follow_ups}, repaired {c.repaired}"
        f" · failed: {fails}"
        f" · tokens {c.prompt_tokens}+{c.completion_tokens}"
    )
    return text
