"""The shapes minact reads back from a run directory: run.json's keys and the lab summary.

Users copy, edit and mix run directories, so what is read back is checked before it is
used: a value of the wrong type is a `BadValue` naming the key ("key 'created' has a bad
value ('yesterday': expected a number)"), which the reader turns into a ConfigError naming
the file, never a traceback further on. run.json may lack keys (older runs do), and its
readers handle that; unknown keys are kept as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from minact.errors import ConfigError
from minact.outcome import Counters

__all__ = [
    "BadValue",
    "Check",
    "boolean",
    "check_run",
    "check_summary",
    "finite",
    "integer",
    "keys",
    "list_of",
    "mapping",
    "mapping_of",
    "number",
    "optional",
    "text",
]

# A check takes the key's dotted name and its value, and raises BadValue if it is wrong.
Check = Callable[[str, Any], None]


class BadValue(ValueError):
    """A value of the wrong shape or out of range; the message names its (dotted) key."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        super().__init__(f"key {key!r} has a bad value ({shown}: expected {expected})")
        self.key = key


def number(key: str, value: Any) -> None:
    """Checks that `value` is a JSON number (an int or a float, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadValue(key, value, "a number")


def finite(key: str, value: Any) -> None:
    """Checks that `value` is a finite JSON number (run.json may hold NaN or Infinity)."""
    number(key, value)
    if not math.isfinite(value):
        raise BadValue(key, value, "a finite number")


def integer(key: str, value: Any) -> None:
    """Checks that `value` is a JSON integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(key, value, "an integer")


def text(key: str, value: Any) -> None:
    """Checks that `value` is a string."""
    if not isinstance(value, str):
        raise BadValue(key, value, "a string")


def boolean(key: str, value: Any) -> None:
    """Checks that `value` is true or false."""
    if not isinstance(value, bool):
        raise BadValue(key, value, "true or false")


def mapping(key: str, value: Any) -> None:
    """Checks that `value` is a JSON object."""
    if not isinstance(value, Mapping):
        raise BadValue(key, value, "an object")


def optional(check: Check) -> Check:
    """Returns `check` that also lets null through."""

    def checked(key: str, value: Any) -> None:
        if value is not None:
            check(key, value)

    return checked


def list_of(check: Check) -> Check:
    """Returns a check of a JSON array whose items each pass `check`."""

    def checked(key: str, value: Any) -> None:
        if not isinstance(value, list):
            raise BadValue(key, value, "an array")
        for i, item in enumerate(value):
            check(f"{key}[{i}]", item)

    return checked


def mapping_of(check: Check) -> Check:
    """Returns a check of a JSON object whose values each pass `check`."""

    def checked(key: str, value: Any) -> None:
        mapping(key, value)
        for k, v in value.items():
            check(f"{key}.{k}", v)

    return checked


def keys(required: Mapping[str, Check], present: Mapping[str, Check] | None = None) -> Check:
    """Returns a check of a JSON object that has the `required` keys, each passing its
    check, and whose `present` keys pass theirs where it has them."""

    def checked(key: str, value: Any) -> None:
        mapping(key, value)
        for k, check in required.items():
            if k not in value:
                raise BadValue(key, value, f"an object with the key {k!r}")
            check(f"{key}.{k}", value[k])
        for k, check in (present or {}).items():
            if k in value:
                check(f"{key}.{k}", value[k])

    return checked


def _context(key: str, value: Any) -> None:
    """Checks a model's context length as run.json records it: [tokens, where it was
    learnt] (the server, or --context-tokens), or [] where none was."""
    if value == []:
        return
    if not (isinstance(value, list) and len(value) == 2):
        raise BadValue(key, value, "[tokens, source]")
    integer(f"{key}[0]", value[0])
    if value[0] < 1:
        raise BadValue(f"{key}[0]", value[0], "a positive integer")
    text(f"{key}[1]", value[1])


# What minact.runs.ranking.lab_summary writes, as far as rankings and reports read it.
_SUMMARY = keys(
    {
        "lab": keys(
            {
                "path": text,
                "digest": text,
                "reference": text,
                "fitness": text,
                "families": list_of(text),
            }
        ),
        "tasks": list_of(
            keys(
                {"name": text, "family": text, "target": text},
                {"kind": text, "digest": text, "variables": list_of(text)},
            )
        ),
    }
)


def check_summary(key: str, value: Any) -> None:
    """Checks a lab summary ({"lab": {...}, "tasks": [...]}, runs.ranking.lab_summary)."""
    _SUMMARY(key, value)


# The type of each Counters field, from its annotation (a new field needs a line here).
_COUNTER_TYPES: dict[str, Check] = {
    "int": integer,
    "float": number,
    "bool": boolean,
    "dict[str, int]": mapping_of(integer),
    "dict[str, dict[str, float]]": mapping_of(mapping_of(number)),
}
_COUNTERS = keys({}, {f.name: _COUNTER_TYPES[str(f.type)] for f in fields(Counters)})

# run.json's keys, as minact.jobs.evolve writes them and the commands read them back.
# Keys a run lacks are not checked (older runs lack some); "options" is checked in full by
# the resume (minact.jobs.options), which knows the settings.
RUN_KEYS: dict[str, Check] = {
    "run_id": text,
    "directory": text,
    "minact": text,
    "status": text,
    "message": text,
    "proposer": text,
    "tasks": optional(text),
    "replay": optional(text),
    "device": optional(text),
    "created": finite,
    "seconds": finite,
    "budget": integer,
    "concurrency": integer,
    "seed": integer,
    "islands": integer,
    "max_calls": integer,
    "options": mapping,
    "llm": optional(mapping),
    "worker": optional(mapping),
    "prompt": optional(mapping),
    "models": list_of(
        keys(
            {"name": text},
            {"weight": optional(number), "url": optional(text), "context": optional(_context)},
        )
    ),
    "counters": optional(_COUNTERS),
    "lab_digest": text,
    "task_digests": list_of(text),
    "lab_summary": optional(check_summary),
    "cascade": optional(
        keys(
            {"tasks": integer, "top": integer, "margin": number},
            {"seed": integer, "stage_tasks": list_of(text)},
        )
    ),
}


def check_run(data: Any, where: object) -> dict[str, Any]:
    """Returns run.json's content `data` if it has the shape minact reads; raises ConfigError
    naming `where` (the file) and the key at fault otherwise."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not a JSON object")
    try:
        for key, check in RUN_KEYS.items():
            if key in data:
                check(key, data[key])
    except BadValue as e:
        raise ConfigError(f"{where}: {e}") from None
    return data
