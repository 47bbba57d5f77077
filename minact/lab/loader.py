"""The tasks.toml loader: TOML in, a checked Lab out, or a ConfigError naming what is wrong.

`load_lab` is the only caller of tomllib. Every error names the file, the task (by name
and position) or family, the key and the bad value.

A [[task]] may set `kind` (minact.lab.task describes the kinds): "regression" (the default) and
"classification" take a `target`, or a bundled `dataset` with its `shift` (datasets.py);
"set" takes `element`, `aggregate`, `size` and `test_size` instead; "graph" takes
`algorithm`, `nodes`, `test_nodes` and optionally `edge_prob`, `rounds`, `aggregate`
(graphs.py). A set task ignores the [lab] test box: its OOD sets draw their elements from the
train box unless the task gives its own `test`, and then from that box minus the train box.

A [[family]] table expands into `count` regression tasks drawn from a seeded generator
(families.py): `name` (the tasks' family, and their names' prefix), `generator`, `count`,
`seed` (default 0), and any setting, `train` and `test` as [lo, hi] for every variable.
A file needs at least one [[task]] or [[family]]. A path that is not a file but the name of a
built-in lab or suite (suites.py: "classic", "algorithmic", ...) loads that lab.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from minact import seeds
from minact.errors import ConfigError
from minact.lab import families, kinds, suites
from minact.lab.cascade import CASCADE_KEYS, Cascade
from minact.lab.checks import (
    FAMILY,
    FLOAT_RULES,
    INT_RULES,
    MIN_OOD_FRACTION,
    NAME,
    box,
    check_boxes,
    check_keys,
    float_value,
    identifier,
    int_value,
    interval,
    require,
    settings_fields,
)
from minact.lab.expression import Expression, ExpressionError, parse_expression
from minact.lab.kinds import MAX_SET_ELEMENTS
from minact.lab.sampling import TargetError, sample
from minact.lab.task import FITNESS_KINDS, KINDS, Lab, Settings, Task

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["MAX_OOD_SCALE", "MAX_SET_ELEMENTS", "MIN_OOD_FRACTION", "default_tasks_path"]
__all__ += ["load_lab", "transfer_suite_path"]

# A generated target whose standardised OOD values exceed this is redrawn: its log-ratio would
# measure float32 range, not extrapolation. (A degree-5 polynomial reaches about 100.)
MAX_OOD_SCALE = 1e3
MAX_FAMILY_TASKS = 1000

_SETTING_KEYS = (*INT_RULES, *FLOAT_RULES, "train", "test")
_LAB_KEYS = (*_SETTING_KEYS, "reference", "fitness", "max_cost", "timeout", "probe", "cascade")
_SPECIFIC_KEYS = tuple(
    dict.fromkeys((*kinds.EXPRESSION_KEYS, *kinds.SET_KEYS, *kinds.GRAPH_KEYS, *kinds.DATASET_KEYS))
)
_TASK_KEYS = ("name", "family", "kind", *_SPECIFIC_KEYS, *_SETTING_KEYS)
_FAMILY_KEYS = ("name", "generator", "count", "seed", *_SETTING_KEYS)


def default_tasks_path() -> Path:
    """Returns ./tasks.toml if the working directory has one, else the packaged default lab."""
    local = Path("tasks.toml")
    if local.is_file():
        return local
    return suites.suite_path("default")


def transfer_suite_path() -> Path:
    """Returns the packaged transfer suite (minact/lab/data/transfer.toml)."""
    return suites.suite_path("transfer")


def load_lab(path: Path) -> Lab:
    """Returns the lab in the tasks file at `path`, or raises ConfigError naming what is wrong.

    A `path` that names no file but a built-in lab or suite ("classic", "algorithmic") loads it.
    """
    path = suites.resolve(Path(path))
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        known = ", ".join(suites.SUITES)
        raise ConfigError(
            f"{path}: no such tasks file; pass an existing one or a built-in lab ({known})"
        ) from None
    except tomllib.TOMLDecodeError as exc:  # its message carries the line and column
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tasks file: {exc.strerror or exc}") from None
    check_keys(str(path), document, ("lab", "task", "family"))
    raw_lab = document.get("lab", {})
    if not isinstance(raw_lab, dict):
        raise ConfigError(f"{path}: key 'lab' must be a table ([lab]), got {raw_lab!r}")
    defaults, lab_wide = _parse_lab(f"{path}: [lab]", raw_lab)
    raw_tasks, raw_families = document.get("task", []), document.get("family", [])
    for key, value in (("task", raw_tasks), ("family", raw_families)):
        if not isinstance(value, list):
            raise ConfigError(
                f"{path}: needs at least one [[task]] or [[family]] table, got {key} = {value!r}"
            )
    if not raw_tasks and not raw_families:
        raise ConfigError(f"{path}: needs at least one [[task]] or [[family]] table, got none")
    tasks: list[Task] = []
    for i, raw in enumerate(raw_tasks, start=1):
        task = _parse_task(path, i, raw, defaults)
        where = f"{path}: [[task]] {task.name!r} (#{i})"
        _check_unique(where, task.name, tasks)
        try:
            sample(task)  # finite on both regions and not constant, checked on the real data
        except TargetError as exc:
            key, value = _data_key(task)
            raise ConfigError(f"{where}: key {key!r} {value!r} {exc}") from None
        tasks.append(task)
    for i, raw in enumerate(raw_families, start=1):
        for task in _expand_family(path, i, raw, defaults):
            _check_unique(f"{path}: [[family]] #{i}", task.name, tasks)
            tasks.append(task)
    if "cascade" in raw_lab:
        lab_wide["cascade"] = _parse_cascade(f"{path}: [lab]", raw_lab["cascade"], len(tasks))
    return Lab(path=path, tasks=tuple(tasks), **lab_wide)


def _check_unique(where: str, name: str, tasks: list[Task]) -> None:
    names = [t.name for t in tasks]
    if name in names:
        first = names.index(name) + 1
        raise ConfigError(f"{where}: key 'name' {name!r} is already used by task #{first}")


def _data_key(task: Task) -> tuple[str, str]:
    """Returns the key (and its value) that decides a task's data, for error messages."""
    if task.graph is not None:
        return "algorithm", task.graph.algorithm
    if task.dataset is not None:
        d = task.dataset
        return ("feature", d.feature) if d.feature else ("label", d.label)
    assert task.target is not None
    return ("element" if task.kind == "set" else "target"), task.target.source


def _parse_lab(where: str, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
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
        if raw["fitness"] not in FITNESS_KINDS:
            kinds = " or ".join(map(repr, FITNESS_KINDS))
            raise ConfigError(f"{where}: key 'fitness' must be {kinds}, got {raw['fitness']!r}")
        lab["fitness"] = raw["fitness"]
    for key in ("max_cost", "timeout"):
        if key in raw:
            lab[key] = float_value(where, key, raw[key], (0.0, None, True))
    if "probe" in raw:
        lab["probe"] = interval(where, "probe", raw["probe"])
    return defaults, lab


def _parse_cascade(where: str, raw: object, n_tasks: int) -> Cascade | None:
    """Returns the checked `cascade` of [lab]: a table, or false for none.

    Stage 1 must train fewer tasks than the lab's `n_tasks`.
    """
    if raw is False:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: key 'cascade' must be a table ([lab.cascade] with tasks, seed, top, "
            f"margin) or false, got {raw!r}"
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


def _parse_task(path: Path, i: int, raw: object, defaults: dict[str, Any]) -> Task:
    """Returns the i-th (1-based) [[task]] table as a Task; the data checks are the caller's."""
    where = f"{path}: [[task]] #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table ([[task]]), got {raw!r}")
    require(where, raw, ("name", "family"))
    name = identifier(where, "name", raw["name"], NAME)
    named = f"{path}: [[task]] {name!r} (#{i})"
    check_keys(named, raw, _TASK_KEYS)
    kind = raw.get("kind", KINDS[0])
    if kind not in KINDS:
        names = ", ".join(map(repr, KINDS))
        raise ConfigError(f"{named}: key 'kind' must be one of {names}, got {kind!r}")
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
    if kind == "classification" and settings.noise:
        source = "" if "noise" in raw else " (from [lab])"
        raise ConfigError(
            f"{named}: key 'noise' must be 0 for kind 'classification' tasks (labels are not "
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


def _expand_family(path: Path, i: int, raw: object, defaults: dict[str, Any]) -> list[Task]:
    """Returns the tasks of the i-th [[family]] table: the generator's first usable targets."""
    where = f"{path}: [[family]] #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table ([[family]]), got {raw!r}")
    require(where, raw, ("name", "generator", "count"))
    name = identifier(where, "name", raw["name"], FAMILY)
    named = f"{path}: [[family]] {name!r} (#{i})"
    check_keys(named, raw, _FAMILY_KEYS)
    generator = raw["generator"]
    if generator not in families.GENERATORS:
        names = ", ".join(map(repr, families.GENERATORS))
        raise ConfigError(f"{named}: key 'generator' must be one of {names}, got {generator!r}")
    count = int_value(named, "count", raw["count"], (1, MAX_FAMILY_TASKS))
    seed = int_value(named, "seed", raw.get("seed", 0), (0, None))
    train = interval(named, "train", raw.get("train", defaults["train"]))
    test = interval(named, "test", raw.get("test", defaults["test"]))
    check_boxes(named, ("*",), (train,), (test,))
    settings = Settings(
        **({k: defaults[k] for k in asdict(Settings())} | settings_fields(named, raw))
    )
    tasks: list[Task] = []
    draws = 0
    for text in families.targets(generator, seed):
        draws += 1
        if len(tasks) == count or draws > 20 * count + 100:
            break
        target = parse_expression(text)  # a generator writes valid expressions only
        n = len(target.variables)
        task_name = f"{name}-{seed}-{len(tasks) + 1:03d}"
        task = Task(task_name, name, target, target.variables, (train,) * n, (test,) * n, settings)
        try:
            data = sample(task)
        except TargetError:
            continue  # not finite or constant on these boxes: the next draw
        if float(np.max(np.abs(data.y_ood))) <= MAX_OOD_SCALE:
            tasks.append(task)
    if len(tasks) < count:
        raise ConfigError(
            f"{named}: key 'generator' {generator!r} gave only {len(tasks)} usable targets in "
            f"{draws - 1} draws for these boxes, short of count = {count}: widen 'train'"
        )
    return tasks


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
