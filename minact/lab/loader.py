"""The tasks.toml loader: TOML in, a checked Lab out, or a ConfigError naming what is wrong.

`load_lab` is the only caller of tomllib. Every error names the file, the task (by name
and position), the key and the bad value.

A [[task]] may set `kind` (minact.lab.task describes the kinds): "regression" (the default) and
"classification" take a `target`; "set" takes `element`, `aggregate`, `size` and `test_size`
instead. A set task ignores the [lab] test box: its OOD sets draw their elements from the train
box unless the task gives its own `test`, and then from that box minus the train box.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from minact import seeds
from minact.errors import ConfigError
from minact.lab.expression import Expression, ExpressionError, parse_expression
from minact.lab.sampling import TargetError, ood_fraction, sample
from minact.lab.task import AGGREGATES, FITNESS_KINDS, KINDS, Box, Lab, SetSpec, Settings, Task

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["MAX_SET_ELEMENTS", "MIN_OOD_FRACTION", "default_tasks_path", "load_lab"]
__all__ += ["transfer_suite_path"]

# Rejection sampling of the OOD region needs it to be a fair share of the test box.
MIN_OOD_FRACTION = 0.01
# Elements per network in a set task's training or OOD data: no more than a regression task
# may have points (n_train <= 1e6), so a set network costs no more memory than the largest one.
MAX_SET_ELEMENTS = 1_000_000

# Bounds of the settings keys: (lo, hi) for integers, (lo, hi, lo excluded) for floats.
_INT_RULES: dict[str, tuple[int, int | None]] = {
    "width": (1, 4096),
    "depth": (1, 16),
    "steps": (1, 1_000_000),
    "seeds": (1, 100),
    "n_train": (4, 1_000_000),
    "n_test": (4, 1_000_000),
    "data_seed": (0, None),
}
_FLOAT_RULES: dict[str, tuple[float, float | None, bool]] = {
    "lr": (0.0, 10.0, True),
    "noise": (0.0, None, False),
}
_SETTING_KEYS = (*_INT_RULES, *_FLOAT_RULES, "train", "test")
_LAB_KEYS = (*_SETTING_KEYS, "reference", "fitness", "max_cost", "timeout", "probe")
_SET_KEYS = ("element", "aggregate", "size", "test_size")
_TASK_KEYS = ("name", "family", "kind", "target", *_SET_KEYS, "vars", *_SETTING_KEYS)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
_FAMILY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}\Z")


def default_tasks_path() -> Path:
    """Returns ./tasks.toml if the working directory has one, else the packaged default lab."""
    local = Path("tasks.toml")
    if local.is_file():
        return local
    shipped = resources.files("minact.lab").joinpath("data").joinpath("tasks.toml")
    if isinstance(shipped, Path):
        return shipped
    # A zipped install has no real path; the user can still pass one explicitly.
    raise ConfigError(f"the packaged tasks.toml is not a file on disk ({shipped}); pass --tasks")


def transfer_suite_path() -> Path:
    """Returns the packaged transfer suite (minact/lab/data/transfer.toml)."""
    shipped = resources.files("minact.lab").joinpath("data").joinpath("transfer.toml")
    if isinstance(shipped, Path):
        return shipped
    raise ConfigError(f"the packaged transfer.toml is not a file on disk ({shipped}); pass --tasks")


def load_lab(path: Path) -> Lab:
    """Returns the lab in the tasks file at `path`, or raises ConfigError naming what is wrong."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such tasks file; pass an existing one") from None
    except tomllib.TOMLDecodeError as exc:  # its message carries the line and column
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tasks file: {exc.strerror or exc}") from None
    _check_keys(str(path), document, ("lab", "task"))
    raw_lab = document.get("lab", {})
    if not isinstance(raw_lab, dict):
        raise ConfigError(f"{path}: key 'lab' must be a table ([lab]), got {raw_lab!r}")
    defaults, lab_wide = _parse_lab(f"{path}: [lab]", raw_lab)
    raw_tasks = document.get("task")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        got = "none" if raw_tasks is None else f"task = {raw_tasks!r}"
        raise ConfigError(f"{path}: needs at least one [[task]] table, got {got}")
    tasks: list[Task] = []
    for i, raw in enumerate(raw_tasks, start=1):
        task = _parse_task(path, i, raw, defaults)
        where = f"{path}: [[task]] {task.name!r} (#{i})"
        names = [t.name for t in tasks]
        if task.name in names:
            first = names.index(task.name) + 1
            raise ConfigError(f"{where}: key 'name' {task.name!r} is already used by task #{first}")
        try:
            sample(task)  # finite on both regions and not constant, checked on the real data
        except TargetError as exc:
            key = "element" if task.kind == "set" else "target"
            raise ConfigError(f"{where}: key {key!r} {task.target.source!r} {exc}") from None
        tasks.append(task)
    return Lab(path=path, tasks=tuple(tasks), **lab_wide)


def _parse_lab(where: str, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns the [lab] table as (task defaults, lab-wide fields of Lab)."""
    _check_keys(where, raw, _LAB_KEYS)
    defaults = {**asdict(Settings()), **_settings(where, raw)}
    defaults["train"] = _interval(where, "train", raw.get("train", [-1.0, 1.0]))
    defaults["test"] = _interval(where, "test", raw.get("test", [-2.0, 2.0]))
    _check_boxes(where, ("*",), (defaults["train"],), (defaults["test"],))
    lab: dict[str, Any] = {}
    if "reference" in raw:
        name = _identifier(where, "reference", raw["reference"], _FAMILY)
        try:
            lab["reference"] = seeds.get_seed(name).name
        except KeyError:
            known = ", ".join(seeds.SEEDS)
            raise ConfigError(
                f"{where}: key 'reference' must name a built-in activation ({known}), got {name!r}"
            ) from None
    if "fitness" in raw:
        if raw["fitness"] not in FITNESS_KINDS:
            kinds = " or ".join(map(repr, FITNESS_KINDS))
            raise ConfigError(f"{where}: key 'fitness' must be {kinds}, got {raw['fitness']!r}")
        lab["fitness"] = raw["fitness"]
    for key in ("max_cost", "timeout"):
        if key in raw:
            lab[key] = _float(where, key, raw[key], (0.0, None, True))
    if "probe" in raw:
        lab["probe"] = _interval(where, "probe", raw["probe"])
    return defaults, lab


def _parse_task(path: Path, i: int, raw: object, defaults: dict[str, Any]) -> Task:
    """Returns the i-th (1-based) [[task]] table as a Task; the data checks are the caller's."""
    where = f"{path}: [[task]] #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table ([[task]]), got {raw!r}")
    _require(where, raw, ("name", "family"))
    name = _identifier(where, "name", raw["name"], _NAME)
    named = f"{path}: [[task]] {name!r} (#{i})"
    _check_keys(named, raw, _TASK_KEYS)
    kind = raw.get("kind", KINDS[0])
    if kind not in KINDS:
        kinds = ", ".join(map(repr, KINDS))
        raise ConfigError(f"{named}: key 'kind' must be one of {kinds}, got {kind!r}")
    own, other = ("element", "target") if kind == "set" else ("target", "element")
    # Missing keys are reported by position, like a missing name.
    _require(where, raw, (own, *_SET_KEYS[1:]) if kind == "set" else (own,))
    for key in (other,) if kind == "set" else _SET_KEYS:
        if key in raw:
            use = "'element' for the per-element expression" if kind == "set" else "kind = 'set'"
            raise ConfigError(
                f"{named}: key {key!r} = {raw[key]!r} is not for kind {kind!r} tasks; use {use}"
            )
    family = _identifier(named, "family", raw["family"], _FAMILY)
    target = _expression(named, own, raw[own])
    variables = _variables(named, raw, target.variables)
    train = _box(named, "train", raw.get("train", defaults["train"]), variables)
    if kind == "set" and "test" not in raw:
        test = train  # length generalisation only: OOD elements from the train box
    else:
        test = _box(named, "test", raw.get("test", defaults["test"]), variables)
        _check_boxes(named, variables, train, test)
    settings = Settings(**({k: defaults[k] for k in asdict(Settings())} | _settings(named, raw)))
    if kind == "classification" and settings.noise:
        source = "" if "noise" in raw else " (from [lab])"
        raise ConfigError(
            f"{named}: key 'noise' must be 0 for kind 'classification' tasks (labels are not "
            f"noised), got {settings.noise!r}{source}"
        )
    sets = _set_spec(named, raw, settings) if kind == "set" else None
    return Task(name, family, target, variables, train, test, settings, kind, sets)


def _require(where: str, raw: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Raises ConfigError naming the first of `keys` that `raw` lacks."""
    for key in keys:
        if key not in raw:
            raise ConfigError(f"{where}: key {key!r} is required; got keys {', '.join(raw)}")


def _expression(where: str, key: str, text: Any) -> Expression:
    """Returns the checked expression under `key`; it must have at least one variable."""
    try:
        expression = parse_expression(text)  # it checks that `text` is a string
    except ExpressionError as exc:
        what = "target" if key == "target" else "per-element expression"
        raise ConfigError(f"{where}: key {key!r} {text!r} is not a valid {what}: {exc}") from None
    if not expression.variables:
        raise ConfigError(f"{where}: key {key!r} {text!r} has no variables; a task needs inputs")
    return expression


def _variables(where: str, raw: dict[str, Any], variables: tuple[str, ...]) -> tuple[str, ...]:
    """Returns the input order: `vars` if given (a permutation of `variables`), else sorted."""
    if "vars" not in raw:
        return variables
    given = raw["vars"]
    if not (isinstance(given, list) and all(isinstance(v, str) for v in given)) or sorted(
        given
    ) != list(variables):
        raise ConfigError(
            f"{where}: key 'vars' must list each of the target's variables "
            f"({', '.join(variables)}) once, got {given!r}"
        )
    return tuple(given)


def _set_spec(where: str, raw: dict[str, Any], settings: Settings) -> SetSpec:
    """Returns the set task's aggregate and sizes, within MAX_SET_ELEMENTS per network."""
    aggregate = raw["aggregate"]
    if aggregate not in AGGREGATES:
        names = ", ".join(map(repr, AGGREGATES))
        raise ConfigError(f"{where}: key 'aggregate' must be one of {names}, got {aggregate!r}")
    size = _int(where, "size", raw["size"], (1, MAX_SET_ELEMENTS))
    test_size = _int(where, "test_size", raw["test_size"], (1, MAX_SET_ELEMENTS))
    if test_size < size:
        raise ConfigError(
            f"{where}: key 'test_size' must be >= size ({size}): the OOD sets are the longer "
            f"ones, got {test_size!r}"
        )
    for key, n, sets in (("size", size, "n_train"), ("test_size", test_size, "n_test")):
        count = getattr(settings, sets)
        if n * count > MAX_SET_ELEMENTS:
            raise ConfigError(
                f"{where}: key {key!r} {n!r} times {sets} {count} is {n * count} elements per "
                f"network, above {MAX_SET_ELEMENTS}: lower {key} or {sets}"
            )
    return SetSpec(aggregate, size, test_size)


def _check_keys(
    where: str, table: dict[str, Any], known: tuple[str, ...], what: str = "key"
) -> None:
    """Raises ConfigError naming the first key of `table` that is not in `known`."""
    for key, value in table.items():
        if key not in known:
            known_keys = ", ".join(known)
            raise ConfigError(f"{where}: unknown {what} {key!r} = {value!r}; known: {known_keys}")


def _settings(where: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Returns the validated Settings fields that `raw` sets."""
    out: dict[str, Any] = {k: _int(where, k, raw[k], r) for k, r in _INT_RULES.items() if k in raw}
    out |= {k: _float(where, k, raw[k], r) for k, r in _FLOAT_RULES.items() if k in raw}
    return out


def _int(where: str, key: str, value: object, rule: tuple[int, int | None]) -> int:
    """Returns `value` if it is an int (not a bool) within `rule`, else raises ConfigError."""
    lo, hi = rule
    if isinstance(value, int) and not isinstance(value, bool):
        if lo <= value and (hi is None or value <= hi):
            return value
    bounds = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
    raise ConfigError(f"{where}: key {key!r} must be an integer {bounds}, got {value!r}")


def _float(where: str, key: str, value: object, rule: tuple[float, float | None, bool]) -> float:
    """Returns `value` as a float if it is a finite number within `rule`, else raises."""
    lo, hi, lo_open = rule
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        if (lo < value if lo_open else lo <= value) and (hi is None or value <= hi):
            return float(value)
    bounds = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
    raise ConfigError(f"{where}: key {key!r} must be a number {bounds}, got {value!r}")


def _identifier(where: str, key: str, value: object, pattern: re.Pattern[str]) -> str:
    """Returns `value` if it is a string matching `pattern`, else raises ConfigError."""
    if not isinstance(value, str) or not pattern.match(value):
        what = "a short name (letters, digits, '_', '-')"
        raise ConfigError(f"{where}: key {key!r} must be {what}, got {value!r}")
    return value


def _interval(where: str, key: str, value: object) -> tuple[float, float]:
    """Returns `value` as (lo, hi) if it is [lo, hi] with finite numbers lo < hi."""
    if isinstance(value, list | tuple) and len(value) == 2:
        lo, hi = value
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)):
            if math.isfinite(lo) and math.isfinite(hi) and lo < hi:
                return float(lo), float(hi)
    raise ConfigError(f"{where}: key {key!r} must be [lo, hi] with finite lo < hi, got {value!r}")


def _box(where: str, key: str, value: object, variables: tuple[str, ...]) -> Box:
    """Returns (lo, hi) per variable from [lo, hi] (every variable) or {var = [lo, hi], ...}."""
    if not isinstance(value, dict):
        return (_interval(where, key, value),) * len(variables)
    _check_keys(f"{where}: key {key!r}", value, variables, "variable")
    missing = [v for v in variables if v not in value]
    if missing:
        raise ConfigError(
            f"{where}: key {key!r} must give a range for every variable; "
            f"missing {', '.join(missing)}, got {value!r}"
        )
    return tuple(_interval(where, f"{key}.{v}", value[v]) for v in variables)


def _check_boxes(where: str, variables: tuple[str, ...], train: Box, test: Box) -> None:
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
