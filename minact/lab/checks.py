"""Checks of tasks-file values: each returns the value or raises ConfigError naming it.

`where` is the place in the file ("tasks.toml: [[task]] 'sin3' (#1)"); every message names
it, the key and the bad value.
"""

from __future__ import annotations

import difflib
import math
import re
import reprlib
import struct
from collections.abc import Collection
from typing import Any

from minact.errors import ConfigError
from minact.lab.sampling import ood_fraction
from minact.lab.task import Box

__all__ = ["FAMILY", "FLOAT_RULES", "INT_RULES", "MAX_COORDINATE", "MIN_OOD_FRACTION", "NAME"]
__all__ += ["box", "check_boxes", "check_keys", "float_value", "identifier", "int_value"]
__all__ += ["MAX_NESTING", "interval", "nesting", "one_of", "require", "settings_fields"]
__all__ += ["FLOAT32_TINY", "MAX_INTEGER", "deep_key", "shown"]

# Rejection sampling of the OOD region needs it to be a fair share of the test box.
MIN_OOD_FRACTION = 0.01
# Every bound of a `train`, `test` or `probe` range lies within ±MAX_COORDINATE. The networks
# train in float32: far larger inputs (or a box whose width overflows) make the reference's
# losses, the sampled points or the probe overflow, and the failure would blame the target or
# the activation. The shipped labs use ±2 (boxes) and ±10 (probe).
MAX_COORDINATE = 1e6
FLOAT32_TINY = 1.1754943508222875e-38  # float32's smallest normal number
MAX_INTEGER = 2**63 - 1  # the largest TOML integer: the bound of a key with no other
# A range's bounds lie this many float32 values apart, at least (the shipped ones: 1.6e7).
MIN_FLOAT32_VALUES = 1024

# Bounds of the settings keys: (lo, hi) for integers, (lo, hi, lo excluded) for floats.
INT_RULES: dict[str, tuple[int, int | None]] = {
    "width": (1, 4096),
    "depth": (1, 16),
    "steps": (1, 1_000_000),
    "seeds": (1, 100),
    "n_train": (4, 1_000_000),
    "n_test": (4, 1_000_000),
    "data_seed": (0, None),
}
FLOAT_RULES: dict[str, tuple[float, float | None, bool]] = {
    # Below float32's smallest normal number the rate is 0 or subnormal where the networks
    # train: nothing would learn, and every activation would score the same.
    "lr": (FLOAT32_TINY, 10.0, False),
    # std of the noise on targets of std 1: 100 already buries the target; far more is
    # not finite in float32 once squared in the loss.
    "noise": (0.0, 100.0, False),
}
# Tables and arrays within one another: a shipped lab nests 5 deep (the document, [[task]], the
# table, `train` as a list of [lo, hi]). Dotted headers ([a.a.a...], 5,000 deep in 20 KB) nest
# without recursion in the parser, and the repr of such a value in an error message raised
# RecursionError.
MAX_NESTING = 16
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
FAMILY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}\Z")


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict = 3, 8, 8
_SHOWN.maxstring = _SHOWN.maxother = 120


def shown(value: object) -> str:
    """Returns repr(value), shortened for a one-line error message: a tasks file of 1 MB
    can hold a 1 MB string or list, which the message would otherwise quote whole."""
    return _SHOWN.repr(value)


# A dotted key (`a.b.c = 1`) of thousands of parts costs tomllib time and memory quadratic
# in them (9 s for a key of 32 KB; a 1 MB file never ends). One of more parts than tables
# may nest (each part nests one deeper) is refused before the file is parsed. A key starts
# a line (or a table header's `[` or `[[`: tomli, Python 3.10's parser, recurses on each
# part), or follows `{` or `,` in an inline table; its parts are bare, "basic" or 'literal'.
# A start is tried only where a key may start, and each reads its own line once.
_DEEP_KEY = re.compile(
    r"(?:^[ \t]*(?:\[\[?[ \t]*)?|[{,][ \t]*)"
    r"(?:(?:[A-Za-z0-9_-]+|\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*')[ \t]*\.[ \t]*)" + f"{{{MAX_NESTING}}}",
    re.M,
)


def deep_key(text: str) -> int | None:
    """Returns the line of the first dotted key of more than MAX_NESTING parts in TOML
    `text`, or None. (A line of a multi-line string that reads as one counts too.)"""
    found = _DEEP_KEY.search(text)
    return None if found is None else text.count("\n", 0, found.end()) + 1


def nesting(document: object) -> int:
    """Returns how deep tables and arrays nest in `document` (a scalar is 0), counted without
    recursion and up to MAX_NESTING + 1."""
    deepest, todo = 0, [(document, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            children = value.values() if isinstance(value, dict) else value
            if depth <= MAX_NESTING:  # deeper is refused anyway: no need to walk further
                todo.extend((child, depth + 1) for child in children)
    return deepest


def require(where: str, raw: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Raises ConfigError naming the first of `keys` that `raw` lacks."""
    for key in keys:
        if key not in raw:
            got = f"keys {', '.join(raw)}" if raw else "an empty table"
            raise ConfigError(f"{where}: key {key!r} is required; got {got}")


def check_keys(
    where: str, table: dict[str, Any], known: tuple[str, ...], what: str = "key"
) -> None:
    """Raises ConfigError naming the first key of `table` that is not in `known`, and the
    known key it is closest to, if any is close ("did you mean 'steps'?")."""
    for key, value in table.items():
        if key not in known:
            known_keys = ", ".join(known)
            # A typo is the usual cause, and the known list can be 30 keys long. A key of a
            # megabyte is no typo: not compared.
            typo = len(key) < 64
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.75) if typo else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}: unknown {what} {shown(key)} = {shown(value)}; known: {known_keys}{hint}"
            )


def settings_fields(where: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Returns the validated Settings fields that `raw` sets."""
    out: dict[str, Any] = {
        k: int_value(where, k, raw[k], r) for k, r in INT_RULES.items() if k in raw
    }
    out |= {k: float_value(where, k, raw[k], r) for k, r in FLOAT_RULES.items() if k in raw}
    return out


def int_value(where: str, key: str, value: object, rule: tuple[int, int | None]) -> int:
    """Returns `value` if it is an int (not a bool) within `rule`, else raises ConfigError.

    An open bound (None) stops at MAX_INTEGER: TOML's integers are 64-bit, tomllib reads any
    size, and a family's seed of 4,000 digits made task names of 4,000 characters."""
    lo, hi = rule
    if isinstance(value, int) and not isinstance(value, bool):
        if lo <= value <= (MAX_INTEGER if hi is None else hi):
            return value
    bounds = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
    if hi is None and isinstance(value, int) and value > MAX_INTEGER:
        bounds += f" and at most {MAX_INTEGER} (TOML's 64-bit integers)"
    raise ConfigError(f"{where}: key {key!r} must be an integer {bounds}, got {shown(value)}")


def float_value(
    where: str, key: str, value: object, rule: tuple[float, float | None, bool]
) -> float:
    """Returns `value` as a float if it is a finite number within `rule`, else raises."""
    lo, hi, lo_open = rule
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        if (lo < value if lo_open else lo <= value) and (hi is None or value <= hi):
            return float(value)
    bounds = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
    raise ConfigError(f"{where}: key {key!r} must be a number {bounds}, got {shown(value)}")


def identifier(where: str, key: str, value: object, pattern: re.Pattern[str]) -> str:
    """Returns `value` if it is a string matching `pattern`, else raises ConfigError."""
    if not isinstance(value, str) or not pattern.match(value):
        what = "a short name (letters, digits, '_', '-')"
        raise ConfigError(f"{where}: key {key!r} must be {what}, got {shown(value)}")
    return value


def interval(where: str, key: str, value: object) -> tuple[float, float]:
    """Returns `value` as (lo, hi) if it is [lo, hi] with finite numbers lo < hi, both
    within ±MAX_COORDINATE."""
    if isinstance(value, list | tuple) and len(value) == 2:
        lo, hi = value
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)):
            if math.isfinite(lo) and math.isfinite(hi) and lo < hi:
                within = max(abs(lo), abs(hi)) <= MAX_COORDINATE
                held = _float32_values(lo, hi) if within else 0
                if held >= MIN_FLOAT32_VALUES:
                    return float(lo), float(hi)
                if within:
                    # [0, 1e-300] is one point where the networks train and the probe runs, and
                    # [999999, 1e6] 16: every activation would fit the same few inputs.
                    raise ConfigError(
                        f"{where}: key {key!r} must have lo < hi in float32, {MIN_FLOAT32_VALUES} "
                        f"float32 values apart or more (the networks train in float32; these "
                        f"are {held:.0f} apart): widen it or move it nearer 0, got {shown(value)}"
                    )
                raise ConfigError(
                    f"{where}: key {key!r} must lie within [{-MAX_COORDINATE:g}, "
                    f"{MAX_COORDINATE:g}] (the networks train in float32), got {shown(value)}"
                )
    raise ConfigError(
        f"{where}: key {key!r} must be [lo, hi] with finite lo < hi, got {shown(value)}"
    )


def _float32(value: float) -> float:
    """Returns `value` rounded to float32 (within ±MAX_COORDINATE: no overflow)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _float32_values(lo: float, hi: float) -> float:
    """Returns how many float32 steps [lo, hi] spans, at least: each as wide as one at the
    larger bound (within ±MAX_COORDINATE)."""
    top = _float32(max(abs(lo), abs(hi)))
    step = 2.0 ** (math.frexp(top)[1] - 24) if top >= FLOAT32_TINY else 2.0**-149
    return (_float32(hi) - _float32(lo)) / step


def one_of(
    where: str, key: str, value: object, options: Collection[str], *, of: str = "", sep: str = ", "
) -> str:
    """Returns `value` if it is one of the strings `options`, else raises ConfigError.

    Any other value is refused with the message, a list or a table included (a dict lookup
    would raise TypeError on those: they are not hashable). `of` qualifies the key ("for
    'digits'"); `sep` " or " lists two options as "'a' or 'b'" instead of "one of 'a', 'b'".
    """
    if isinstance(value, str) and value in options:
        return value
    names = sep.join(map(repr, options))
    must = f"one of {names}" if sep == ", " else names
    qualified = f"{key!r} {of}" if of else repr(key)
    raise ConfigError(f"{where}: key {qualified} must be {must}, got {shown(value)}")


def box(where: str, key: str, value: object, variables: tuple[str, ...]) -> Box:
    """Returns (lo, hi) per variable from [lo, hi] (every variable) or {var = [lo, hi], ...}."""
    if not isinstance(value, dict):
        return (interval(where, key, value),) * len(variables)
    check_keys(f"{where}: key {key!r}", value, variables, "variable")
    missing = [v for v in variables if v not in value]
    if missing:
        raise ConfigError(
            f"{where}: key {key!r} must give a range for every variable; "
            f"missing {', '.join(missing)}, got {shown(value)}"
        )
    return tuple(interval(where, f"{key}.{v}", value[v]) for v in variables)


def check_boxes(where: str, variables: tuple[str, ...], train: Box, test: Box) -> None:
    """Raises ConfigError unless train lies inside test and the OOD region is big enough."""
    for v, (lo, hi), (tlo, thi) in zip(variables, train, test, strict=True):
        if not (tlo <= lo and hi <= thi):
            raise ConfigError(
                f"{where}: key 'train' range [{lo:g}, {hi:g}] for {v!r} must lie inside "
                f"key 'test' range [{tlo:g}, {thi:g}]"
            )
    share = ood_fraction(test, train)
    if share < MIN_OOD_FRACTION:
        raise ConfigError(
            f"{where}: key 'test' {[list(r) for r in test]} leaves an OOD region (test box minus "
            f"train box) of {share:.2%} of the test box, below {MIN_OOD_FRACTION:.0%}: widen 'test'"
        )
