"""What a command tells its user about the cache: the same summary after every command."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CACHE_NOTES_SHOWN", "cache_notes"]

CACHE_NOTES_SHOWN = 3


def cache_notes(warnings: Sequence[str], shown: int = CACHE_NOTES_SHOWN) -> list[str]:
    """Returns what went wrong with the cache during a command (results it could not keep,
    or read), the first `shown` distinct ones in full and a count of the rest: one line per
    entry would be noise (a full disk fails every write of a run)."""
    distinct = list(dict.fromkeys(warnings))
    rest = len(distinct) - shown
    more = [f"and {rest} more cache warnings like these"] if rest > 0 else []
    return [f"cache: {w}" for w in distinct[:shown]] + more
