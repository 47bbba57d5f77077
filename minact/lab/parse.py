"""The tables of a tasks file, each parsed and checked on its own: [lab] with its
[lab.cascade], [[task]] and [[family]].

Nothing here samples data: loader.py reads the file, checks the lab as a whole (unique names,
total size, each task's data), draws each [[family]]'s tasks, and its docstring describes the
format. Every error names the file, the task (by name and position) or family, the key and the
bad value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from minact import seeds
from minact.errors import ConfigError
from minact.lab import families, kinds
from minact.lab.cascade import CASCADE_KEYS, Cascade
from minact.lab.checks import (
    FAMILY,
    FLOAT_RULES,
    INT_RULES,
    NAME,
    box,
    check_boxes,
    check_keys,
    float_value,
    identifier,
    int_value,
    interval,
    one_of,
    require,
    settings_fields,
    shown,
)
from minact.lab.expression import Expression, ExpressionError, parse_expression
from minact.lab.task import BINARY_ALGORITHMS, FITNESS_KINDS, KINDS, Settings, Task

__all__ = ["MAX_FAMILY_TASKS", "FamilyPlan", "parse_cascade", "parse_lab", "parse_task"]
__all__ += ["plan_family"]

MAX_FAMILY_TASKS = 1000

_SETTING_KEYS = (*INT_RULES, *FLOAT_RULES, "train", "test")
_LAB_KEYS = (*_SETTING_KEYS, "reference", "fitness", "max_cost", "timeout", "probe", "cascade")
_SPECIFIC_KEYS = tuple(
    dict.fromkeys((*kinds.EXPRESSION_KEYS, *kinds.SET_KEYS, *kinds.GRAPH_KEYS, *kinds.DATASET_KEYS))
)
# Once each: a kind's keys and the settings share train and test, and an error lists them all.
_TASK_KEYS = tuple(dict.fromkeys(("name", "family", "kind", *_SPECIFIC_KEYS, *_SETTING_KEYS)))
_FAMILY_KEYS = ("name", "generator", "count", "seed", *_SETTING_KEYS)


def parse_lab(where: str, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns the [lab] table as (task defaults, lab-wide fields of Lab)."""
    check_keys(where, raw, _LAB_KEYS)
    defaults = {**asdict(Settings()), **settings_fields(where, raw)}
    defaults["train"] = interval(where, "train", raw.get("train", [-1.0, 1.0]))
    defaults["test"] = interval(where, "test", raw.get("test", [-2.0, 2.0]))
    check_boxes(where, ("*",), (defaults["train"],), (defaults["test"],))
    lab: dict[str, Any] = {}
    if "reference" in raw:
        name = identifier(where, "reference", raw["reference"], FAMILY)
        try:
            lab["reference"] = seeds.get_seed(name).name
        except KeyError:
            known = ", ".join(seeds.SEEDS)
            raise ConfigError(
                f"{where}: key 'reference' must name a built-in activation ({known}), got {name!r}"
            ) from None
    if "fitness" in raw:
        lab["fitness"] = one_of(where, "fitness", raw["fitness"], FITNESS_KINDS, sep=" or ")
    if "max_cost" in raw:
        lab["max_cost"] = float_value(where, "max_cost", raw["max_cost"], (0.0, None, True))
    if "timeout" in raw:
        # A guard against hangs, not a budget: under a second, starting the work fails every
        # candidate, and the failures would blame a busy machine.
        lab["timeout"] = float_value(where, "timeout", raw["timeout"], (1.0, None, False))
    if "probe" in raw:
        lab["probe"] = interval(where, "probe", raw["probe"])
    return defaults, lab


def parse_cascade(where: str, raw: object, n_tasks: int) -> Cascade | None:
    """Returns the checked `cascade` of [lab]: a table, or false for none.

    Stage 1 must train fewer tasks than the lab's `n_tasks`.
    """
    if raw is False:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: key 'cascade' must be a table ([lab.cascade] with tasks, seed, top, "
            f"margin) or false, got {shown(raw)}"
        )
    table = f"{where.removesuffix(' [lab]')} [lab.cascade]"
    check_keys(table, raw, CASCADE_KEYS)
    require(table, raw, ("tasks",))
    if n_tasks < 2:
        raise ConfigError(f"{table}: a cascade needs a lab of 2 or more tasks; it has {n_tasks}")
    return Cascade(
        tasks=int_value(table, "tasks", raw["tasks"], (1, n_tasks - 1)),
        seed=int_value(table, "seed", raw.get("seed", 0), (0, None)),
        top=int_value(table, "top", raw.get("top", 10), (1, None)),
        margin=float_value(table, "margin", raw.get("margin", 0.3), (0.0, None, False)),
    )


def parse_task(path: Path, i: int, raw: object, defaults: dict[str, Any]) -> Task:
    """Returns the i-th (1-based) [[task]] table as a Task; the data checks are the caller's."""
    where = f"{path}: [[task]] #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table ([[task]]), got {shown(raw)}")
    require(where, raw, ("name", "family"))
    name = identifier(where, "name", raw["name"], NAME)
    named = f"{path}: [[task]] {name!r} (#{i})"
    check_keys(named, raw, _TASK_KEYS)
    kind = one_of(named, "kind", raw.get("kind", KINDS[0]), KINDS)
    allowed = kinds.allowed_keys(kind, raw)
    if kind == "set":  # missing keys are reported by position, like a missing name
        require(where, raw, kinds.SET_KEYS)
    elif "dataset" not in raw and kind != "graph":
        require(where, raw, ("target",))
    for key in _SPECIFIC_KEYS:
        if key in raw and key not in allowed:
            raise kinds.misplaced(named, kind, key, raw[key])
    family = identifier(named, "family", raw["family"], FAMILY)
    settings = Settings(
        **({k: defaults[k] for k in asdict(Settings())} | settings_fields(named, raw))
    )
    # A graph task's yes/no algorithm has labels too: its noise was dropped without a word.
    binary = kind == "graph" and raw.get("algorithm") in BINARY_ALGORITHMS
    if (kind == "classification" or binary) and settings.noise:
        source = "" if "noise" in raw else " (from [lab])"
        what = f"algorithm {raw['algorithm']!r}" if binary else "kind 'classification'"
        raise ConfigError(
            f"{named}: key 'noise' must be 0 for {what} tasks (labels are not "
            f"noised), got {settings.noise!r}{source}"
        )
    if kind == "graph":
        graph = kinds.graph_spec(named, raw, settings)
        return Task(name, family, None, (), (), (), settings, kind, graph=graph)
    if "dataset" in raw:
        dataset = kinds.dataset_spec(named, kind, raw)
        return Task(name, family, None, (), (), (), settings, kind, dataset=dataset)
    key = "element" if kind == "set" else "target"
    target = _expression(named, key, raw[key])
    variables = _variables(named, raw, target.variables)
    train = box(named, "train", raw.get("train", defaults["train"]), variables)
    if kind == "set" and "test" not in raw:
        test = train  # length generalisation only: OOD elements from the train box
    else:
        test = box(named, "test", raw.get("test", defaults["test"]), variables)
        check_boxes(named, variables, train, test)
    sets = kinds.set_spec(named, raw, settings) if kind == "set" else None
    return Task(name, family, target, variables, train, test, settings, kind, sets)


@dataclass(frozen=True, slots=True)
class FamilyPlan:
    """A checked [[family]] table, before any target is drawn (`named` says where it is)."""

    named: str
    name: str
    generator: str
    count: int
    seed: int
    train: tuple[float, float]
    test: tuple[float, float]
    settings: Settings


def plan_family(path: Path, i: int, raw: object, defaults: dict[str, Any]) -> FamilyPlan:
    """Returns the i-th (1-based) [[family]] table, checked; nothing is drawn or sampled."""
    where = f"{path}: [[family]] #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table ([[family]]), got {shown(raw)}")
    require(where, raw, ("name", "generator", "count"))
    name = identifier(where, "name", raw["name"], FAMILY)
    named = f"{path}: [[family]] {name!r} (#{i})"
    check_keys(named, raw, _FAMILY_KEYS)
    generator = one_of(named, "generator", raw["generator"], families.GENERATORS)
    count = int_value(named, "count", raw["count"], (1, MAX_FAMILY_TASKS))
    seed = int_value(named, "seed", raw.get("seed", 0), (0, None))
    train = interval(named, "train", raw.get("train", defaults["train"]))
    test = interval(named, "test", raw.get("test", defaults["test"]))
    check_boxes(named, ("*",), (train,), (test,))
    settings = Settings(
        **({k: defaults[k] for k in asdict(Settings())} | settings_fields(named, raw))
    )
    return FamilyPlan(named, name, generator, count, seed, train, test, settings)


def _expression(where: str, key: str, text: Any) -> Expression:
    """Returns the checked expression under `key`; it must have at least one variable."""
    try:
        expression = parse_expression(text)  # it checks that `text` is a string
    except ExpressionError as exc:
        what = "target" if key == "target" else "per-element expression"
        raise ConfigError(
            f"{where}: key {key!r} {shown(text)} is not a valid {what}: {exc}"
        ) from None
    if not expression.variables:
        raise ConfigError(
            f"{where}: key {key!r} {shown(text)} has no variables; a task needs inputs"
        )
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
            f"({', '.join(variables)}) once, got {shown(given)}"
        )
    return tuple(given)
