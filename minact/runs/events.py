"""Decoding events.jsonl: each kind of event checked for its shape before it becomes a record.

A line that is valid JSON may still have the wrong shape: a user edited it, or a tool wrote
it. Each decoder here checks the fields it reads (types, and the keys a record needs) and
raises `MalformedEvent`, and nothing else, for a line it cannot use, so that readers skip
it (and count it) instead of failing later on a value of the wrong type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minact.outcome import Outcome, Reply, from_event
from minact.runs import schema
from minact.runs.schema import (
    BadValue,
    boolean,
    integer,
    list_of,
    mapping,
    mapping_of,
    number,
    optional,
    text,
)
from minact.score import Score

__all__ = ["CHECK_KINDS", "MalformedEvent", "check", "cut", "index", "outcome", "reply", "score"]

CHECK_KINDS = ("validation", "confirmation")  # the events of a run's checks (runs.checks)


class MalformedEvent(ValueError):
    """An event whose JSON has the wrong shape for its kind."""


def _four_numbers(key: str, value: Any) -> None:
    if not isinstance(value, list) or len(value) != 4:
        raise BadValue(key, value, "[ood_loss, id_loss, ood_spread, log_ratio]")
    for i, v in enumerate(value):
        number(f"{key}[{i}]", v)


_SCORE = schema.keys(
    {"name": text, "source": text, "status": text},
    {
        "code_hash": optional(text),
        "behaviour_hash": optional(text),
        "parent": optional(text),
        "collision": optional(text),
        "reason": text,
        "fitness": optional(number),
        "fitness_spread": optional(number),
        "mean_ood_mse": optional(number),
        "cost": optional(number),
        "partial_fitness": optional(number),
        "seconds": number,
        "cached": boolean,
        "cached_tasks": optional(integer),
        "baseline": boolean,
        "tasks": mapping_of(_four_numbers),
    },
)

# The fields of an outcome line that from_event takes as they are (the others it converts).
_OUTCOME = schema.keys(
    {"kind": text},
    {
        "score": optional(mapping),
        "parent": optional(text),
        "other": optional(text),
        "island": optional(integer),
        "turns": optional(integer),
        "repairs": optional(list_of(text)),
    },
)


def _checked(check: schema.Check, key: str, value: Any) -> None:
    try:
        check(key, value)
    except BadValue as e:
        raise MalformedEvent(str(e)) from None


def index(e: Mapping[str, Any], key: str = "index") -> int:
    """Returns the proposal index (or turn) an event carries: an integer >= 0."""
    value = e.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedEvent(str(BadValue(key, value, "an integer >= 0")))
    return value


def score(value: Any, key: str = "score") -> Score:
    """Returns the Score a "seed" or "outcome" line (or a check's "scores") holds."""
    _checked(_SCORE, key, value)
    try:
        return Score.from_dict(value)
    except (KeyError, TypeError, ValueError) as e:  # e.g. an unknown status
        raise MalformedEvent(f"{key}: {e}") from None


def reply(value: Any) -> Reply:
    """Returns the Reply a "reply" line holds (Reply.from_dict checks every field)."""
    try:
        return Reply.from_dict(value)
    except (KeyError, TypeError, ValueError) as e:
        raise MalformedEvent(f"reply: {e}") from None


def outcome(e: Mapping[str, Any]) -> Outcome:
    """Returns the Outcome an "outcome" line records."""
    index(e)
    _checked(_OUTCOME, "outcome", e)
    if e.get("score"):
        score(e["score"])  # its shape; from_event builds it
    try:
        return from_event(e)
    except (KeyError, TypeError, ValueError) as e_:  # e.g. an unknown kind
        raise MalformedEvent(f"outcome: {e_}") from None


def cut(e: Mapping[str, Any]) -> dict[str, int]:
    """Returns what the prompt budget left out of a "proposal" line's request (may be empty)."""
    value = e.get("cut")
    if not value:
        return {}
    _checked(mapping_of(integer), "cut", value)
    return {str(k): int(v) for k, v in value.items()}


def check(e: Mapping[str, Any]) -> tuple[list[Score], Mapping[str, Any]]:
    """Returns the scores and the lab summary of a check's line ("validation",
    "confirmation")."""
    _checked(schema.check_summary, "lab_summary", e.get("lab_summary"))
    scores = e.get("scores")
    if not isinstance(scores, list):
        raise MalformedEvent(str(BadValue("scores", scores, "an array")))
    return [score(s, f"scores[{i}]") for i, s in enumerate(scores)], e["lab_summary"]
