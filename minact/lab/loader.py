"""The tasks.toml loader: TOML in, a checked Lab out, or a ConfigError naming what is wrong.

`load_lab` is the only caller of tomllib. Every error names the file, the task (by name
and position) or family, the key and the bad value. parse.py parses and checks each table on
its own; this module reads the file, checks the lab as a whole and samples its data.

A [[task]] may set `kind` (minact.lab.task describes the kinds): "regression" (the default) and
"classification" take a `target`, or a bundled `dataset` with its `shift` (datasets.py);
"set" takes `element`, `aggregate`, `size` and `test_size` instead; "graph" takes
`algorithm`, `nodes`, `test_nodes` and optionally `edge_prob`, `rounds`, `aggregate`
(graphs.py). A set task ignores the [lab] test box: its OOD sets draw their elements from the
train box unless the task gives its own `test`, and then from that box minus the train box.

A [[family]] table expands into `count` regression tasks drawn from a seeded generator
(families.py): `name` (the tasks' family, and their names' prefix), `generator`, `count`,
`seed` (default 0), and any setting, `train` and `test` as [lo, hi] for every variable.
A file needs at least one [[task]] or [[family]]; no two [[task]] tables may be the same
task but for name and family, nor two [[family]] tables draw the same stream (each would
count twice in the fitness). A path that is not a file but the name of a
built-in lab or suite (suites.py: "classic", "algorithmic", ...) loads that lab.

Limits, checked before any data is sampled (each refusal names the file, key and value):
- The tasks file is a regular file (symlinks followed) of at most MAX_TASKS_FILE_BYTES (1 MiB;
  the largest shipped lab is about 6 KB), UTF-8 text (a leading byte-order mark is skipped).
- The lab holds at most MAX_LAB_TASKS (10,000) tasks: its [[task]] tables plus the counts of
  its [[family]] tables, counted before any task is parsed or drawn (a 100 KB file of
  families could otherwise ask for two million tasks; the largest shipped lab has 200).
- `train`, `test` and `probe` lie within ±MAX_COORDINATE (1e6; checks.py) and span at least
  MIN_FLOAT32_VALUES (1024) float32 values, `noise` <= 100,
  and each setting within INT_RULES and FLOAT_RULES (checks.py); an integer with no other
  bound (a seed) is at most 2**63 - 1, TOML's largest.
- A regression or set target's values, standardised with the training statistics, stay within
  MAX_OOD_SCALE (1e3) on the OOD region: beyond that a log-ratio measures float32 range, not
  extrapolation. A [[family]] redraws such a target; a [[task]] is refused (and its fresh
  training-box points are held to the same bound), as is a [[task]] target with a pole or a
  non-finite value inside its boxes that the samples miss (sampling.check_poles).
- The lab's total training work stays within MAX_LAB_WORK (1e12): the sum over its tasks of
  seeds x steps x the multiply-adds of one step of one network, which is n_train x width^2 x
  depth for an MLP, n_train x (size + 1) x width^2 x depth for a set task, and n_train x rounds
  x (PAIR_WORK x nodes^2 x width + 2 x nodes x width^2) for a graph task (a [[family]] counts
  `count` tasks). PAIR_WORK (32) is what one element of a pair's message costs against one
  multiply-add of a matmul: the messages are elementwise work (the sum, the activation and the
  aggregation, forward and backward); counted as 1, the algorithmic suite's estimate was 7 times
  too low for its measured time beside the MLP labs (bench/RESULTS.md, cost per candidate).
  The shipped labs need 1e9 (real) to 1.1e10 (algorithmic; large, about 9 s per candidate on
  a 2-core CPU, 1e10); the limit, about 100 times the largest, would take some 15 minutes
  per candidate there.
- The points sampled to load the lab stay within MAX_LAB_POINTS (2e7): the sum over tasks of
  n_train + 2 x n_test, times the elements of a set (size, test_size) or the node pairs of a
  graph (nodes^2, test_nodes^2), times the input variables of a task or a set's element, and
  a [[family]] counts `count` tasks (the targets it redraws come on top). One task of one
  variable at the n_train and n_test caps holds 3e6; the shipped labs at most 1.2e5.
- The tasks that train as one batch (same kind and settings) need at most MAX_TRAINING_BYTES
  (32 GiB) at once: activations, parameters and data of each network (memory.py says how
  they are counted, and why this bound).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from minact.errors import ConfigError
from minact.lab import families, suites
from minact.lab.checks import MAX_NESTING, MIN_OOD_FRACTION, check_keys, deep_key, nesting, shown
from minact.lab.expression import parse_expression
from minact.lab.files import FileRefused, read_regular
from minact.lab.kinds import MAX_SET_ELEMENTS
from minact.lab.memory import MAX_TRAINING_BYTES, check_memory
from minact.lab.parse import FamilyPlan, parse_cascade, parse_lab, parse_task, plan_family
from minact.lab.sampling import TargetError, check_edges, check_poles, sample
from minact.lab.task import Lab, Task

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "MAX_LAB_POINTS",
    "MAX_LAB_TASKS",
    "MAX_LAB_WORK",
    "MAX_OOD_SCALE",
    "MAX_SET_ELEMENTS",
    "MAX_TRAINING_BYTES",
    "PAIR_WORK",
]
__all__ += ["MAX_TASKS_FILE_BYTES", "MIN_OOD_FRACTION", "default_tasks_path", "load_lab"]
__all__ += ["lab_with_seeds"]
__all__ += ["transfer_suite_path"]

# A generated target whose standardised OOD values exceed this is redrawn, and a hand-written
# one is refused: its log-ratio would measure float32 range, not extrapolation. (A degree-5
# polynomial reaches about 100.)
MAX_OOD_SCALE = 1e3
MAX_TASKS_FILE_BYTES = 1 << 20
# The lab's total training work and the points sampled to load it (the module docstring says
# how each is counted, and what the shipped labs need).
MAX_LAB_WORK = 1e12
PAIR_WORK = 32.0  # a pair message's elementwise work per element, in multiply-adds (docstring)
MAX_LAB_POINTS = 20_000_000
MAX_LAB_TASKS = 10_000  # [[task]] tables plus [[family]] counts (docstring)


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
    Every table is checked, and the lab's total work (module docstring), before any data is
    sampled to check the targets.
    """
    path = suites.resolve(Path(path))
    document = _read(path)
    if nesting(document) > MAX_NESTING:
        raise ConfigError(f"{path}: tables and arrays nest more than {MAX_NESTING} deep")
    check_keys(str(path), document, ("lab", "task", "family"))
    raw_lab = document.get("lab", {})
    if not isinstance(raw_lab, dict):
        raise ConfigError(f"{path}: key 'lab' must be a table ([lab]), got {shown(raw_lab)}")
    defaults, lab_wide = parse_lab(f"{path}: [lab]", raw_lab)
    raw_tasks, raw_families = document.get("task", []), document.get("family", [])
    for key, value in (("task", raw_tasks), ("family", raw_families)):
        if not isinstance(value, list):
            raise ConfigError(
                f"{path}: needs at least one [[task]] or [[family]] table, got "
                f"{key} = {shown(value)}"
            )
    if not raw_tasks and not raw_families:
        raise ConfigError(f"{path}: needs at least one [[task]] or [[family]] table, got none")
    # The families first: their counts, with the tables, bound the work of all that follows.
    plans = [plan_family(path, i, raw, defaults) for i, raw in enumerate(raw_families, start=1)]
    _check_count(path, len(raw_tasks), plans)
    _check_distinct_families(path, plans)
    tasks: list[Task] = []
    seen: dict[str, int] = {}  # task name -> its position (a list lookup was quadratic)
    digests: dict[str, Task] = {}
    for i, raw in enumerate(raw_tasks, start=1):
        task = parse_task(path, i, raw, defaults)
        where = f"{path}: [[task]] {task.name!r} (#{i})"
        _check_unique(where, task.name, seen)
        if (same := digests.setdefault(task.digest(), task)) is not task:
            raise ConfigError(
                f"{where}: is the same task as #{seen[same.name]} {same.name!r} (all its keys "
                f"but 'name' and 'family' agree): it would count twice in the fitness"
            )
        seen[task.name] = len(tasks) + 1
        tasks.append(task)
    _check_size(path, tasks, plans)
    check_memory(path, tasks, plans)
    for i, task in enumerate(tasks, start=1):
        try:
            _check_data(task)  # finite, not constant and in scale, on the real data
        except TargetError as exc:
            key, value = _data_key(task)
            where = f"{path}: [[task]] {task.name!r} (#{i})"
            raise ConfigError(f"{where}: key {key!r} {shown(value)} {exc}") from None
    for i, plan in enumerate(plans, start=1):
        for task in _expand_family(plan):
            _check_unique(f"{path}: [[family]] #{i}", task.name, seen)
            seen[task.name] = len(tasks) + 1
            tasks.append(task)
    if "cascade" in raw_lab:
        lab_wide["cascade"] = parse_cascade(f"{path}: [lab]", raw_lab["cascade"], len(tasks))
    return Lab(path=path, tasks=tuple(tasks), **lab_wide)


def _read(path: Path) -> dict[str, Any]:
    """Returns the TOML document of the tasks file at `path`; raises ConfigError."""
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte-order mark, which
        # tomllib reports as an "invalid statement" at line 1, column 1.
        text = read_regular(path, MAX_TASKS_FILE_BYTES).decode("utf-8-sig")
        if (line := deep_key(text)) is not None:
            raise ConfigError(
                f"{path}: line {line}: a dotted key of more than {MAX_NESTING} parts: "
                f"tables and arrays nest more than {MAX_NESTING} deep"
            )
        document: dict[str, Any] = tomllib.loads(text)
        return document
    except FileNotFoundError:
        known = ", ".join(suites.SUITES)
        raise ConfigError(
            f"{path}: no such tasks file; pass an existing one or a built-in lab ({known})"
        ) from None
    except FileRefused as exc:
        raise ConfigError(f"{path}: cannot read the tasks file: it {exc}") from None
    except tomllib.TOMLDecodeError as exc:  # its message carries the line and column
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:  # an integer of more than 4300 digits: int() refuses to parse it
        # In minact's words: Python's differ between versions and advise Python code.
        most = getattr(sys, "get_int_max_str_digits", lambda: 4300)()  # 3.10.7 and later
        reason = f"an integer of more than {most} digits" if "digits" in str(exc) else str(exc)
        raise ConfigError(f"{path}: invalid TOML: {reason}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tasks file: {exc.strerror or exc}") from None
    except RecursionError:  # deeply nested arrays or tables
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None


def _check_unique(where: str, name: str, seen: dict[str, int]) -> None:
    """Raises ConfigError if `name` is already among `seen` (name -> 1-based position)."""
    if name in seen:
        raise ConfigError(f"{where}: key 'name' {name!r} is already used by task #{seen[name]}")


def _check_distinct_families(path: Path, plans: list[FamilyPlan]) -> None:
    """Raises ConfigError if two [[family]] tables draw the same stream of tasks."""
    streams: dict[tuple[object, ...], FamilyPlan] = {}
    for plan in plans:
        stream = (plan.generator, plan.seed, plan.train, plan.test, plan.settings)
        if (same := streams.setdefault(stream, plan)) is not plan:
            raise ConfigError(
                f"{plan.named}: key 'seed' {plan.seed!r} draws the same tasks as "
                f"{same.named.removeprefix(f'{path}: ')} "
                f"(same generator, seed, boxes and settings; the smaller count is a prefix of "
                f"the larger): they would count twice in the fitness; give another 'seed'"
            )


def _check_count(path: Path, n_tables: int, plans: list[FamilyPlan]) -> None:
    """Raises ConfigError if the [[task]] tables and the families' counts exceed MAX_LAB_TASKS."""
    drawn = sum(p.count for p in plans)
    if n_tables + drawn > MAX_LAB_TASKS:
        families = f" and {drawn} from the key 'count' of {len(plans)} [[family]] tables"
        raise ConfigError(
            f"{path}: the lab has {n_tables + drawn} tasks ({n_tables} [[task]] tables"
            f"{families if plans else ''}), above the limit of {MAX_LAB_TASKS}: remove tables"
            f"{' or lower a count' if plans else ''}"
        )


def _data_key(task: Task) -> tuple[str, str]:
    """Returns the key (and its value) that decides a task's data, for error messages."""
    if task.graph is not None:
        return "algorithm", task.graph.algorithm
    if task.dataset is not None:
        d = task.dataset
        return ("feature", d.feature) if d.feature else ("label", d.label)
    assert task.target is not None
    return ("element" if task.kind == "set" else "target"), task.target.source


def _expand_family(plan: FamilyPlan) -> list[Task]:
    """Returns the tasks of a [[family]] table: the generator's first usable targets."""
    tasks: list[Task] = []
    draws = 0
    for text in families.targets(plan.generator, plan.seed):
        draws += 1
        if len(tasks) == plan.count or draws > 20 * plan.count + 100:
            break
        target = parse_expression(text)  # a generator writes valid expressions only
        n = len(target.variables)
        task_name = f"{plan.name}-{plan.seed}-{len(tasks) + 1:03d}"
        train, test = (plan.train,) * n, (plan.test,) * n
        task = Task(task_name, plan.name, target, target.variables, train, test, plan.settings)
        try:
            data = sample(task)
        except TargetError:
            continue  # not finite or constant on these boxes: the next draw
        if _scale(data.y_ood) <= MAX_OOD_SCALE:
            tasks.append(task)
    if len(tasks) < plan.count:
        raise ConfigError(
            f"{plan.named}: key 'generator' {plan.generator!r} gave only {len(tasks)} usable "
            f"targets in {draws - 1} draws for these boxes, short of count = {plan.count}: "
            f"widen 'train'"
        )
    return tasks


def _scale(y: npt.NDArray[np.float64]) -> float:
    """Returns the largest magnitude among standardised targets (nan counts as infinite)."""
    scale = float(np.max(np.abs(y)))
    return scale if scale == scale else math.inf


def _check_data(task: Task) -> None:
    """Samples the task's data; raises TargetError unless its targets are finite (on the samples,
    at the boxes' bounds and 0, and along dense lines through the test box), not constant and,
    for real-valued targets (regression and set tasks), free of poles inside the boxes (sampling.
    check_poles) and within MAX_OOD_SCALE on the OOD region (as a generated target must be) and
    on fresh points of the training box."""
    data = sample(task)
    check_edges(task)  # 1/x on [-1, 1] is finite at every sampled point
    real_valued = task.kind in ("regression", "set") and task.dataset is None
    check_poles(task, bounded=real_valued)  # and 1/(x - 0.3) finite but huge near 0.3
    if not real_valued:
        return
    # A set's OOD sum grows with test_size, and its test box is often the train box.
    remedy = "lower 'test_size', narrow 'test'" if task.kind == "set" else "narrow 'test'"
    for region, y in (("training box", data.y_id), ("OOD region", data.y_ood)):
        scale = _scale(y)
        if scale > MAX_OOD_SCALE:
            raise TargetError(
                f"reaches {scale:.3g} training standard deviations from the training mean on "
                f"the {region}, above {MAX_OOD_SCALE:g}: its log-ratios would measure float32 "
                f"range, not extrapolation; {remedy} or rescale the target"
            )


def _task_cost(task_or_plan: Task | FamilyPlan) -> tuple[float, float]:
    """Returns (training work, points sampled) of one task (module docstring: how counted)."""
    s = task_or_plan.settings
    width, depth, n_train, n_test = float(s.width), float(s.depth), s.n_train, s.n_test
    mlp = width * width * depth
    if isinstance(task_or_plan, Task) and task_or_plan.graph is not None:
        g = task_or_plan.graph
        pairs = PAIR_WORK * g.nodes**2 * width
        step = n_train * g.rounds * (pairs + 2 * g.nodes * width * width)
        points = (n_train + n_test) * g.nodes**2 + n_test * g.test_nodes**2
    elif isinstance(task_or_plan, Task) and task_or_plan.sets is not None:
        sets = task_or_plan.sets
        step = n_train * (sets.size + 1) * mlp
        points = ((n_train + n_test) * sets.size + n_test * sets.test_size) * _inputs(task_or_plan)
    else:
        step = n_train * mlp
        points = (n_train + 2 * n_test) * _inputs(task_or_plan)
    return s.seeds * s.steps * step, float(points)


def _inputs(task_or_plan: Task | FamilyPlan) -> int:
    """Returns the numbers a point holds: one per input variable (a family draws one)."""
    return max(1, len(task_or_plan.variables)) if isinstance(task_or_plan, Task) else 1


_SIZE_LIMITS = (  # (what, limit, how it is counted per task, what to lower)
    (
        "training work",
        MAX_LAB_WORK,
        "seeds x steps x the multiply-adds of one step, n_train x width^2 x depth for an MLP",
        "steps, seeds, n_train, width, depth or a family's count",
    ),
    (
        "points sampled",
        MAX_LAB_POINTS,
        "n_train + 2 x n_test, times a set's elements or a graph's node pairs, times the "
        "input variables",
        "n_train, n_test, the set or graph sizes, the variables or a family's count",
    ),
)


def lab_with_seeds(lab: Lab, seeds: int, flag: str) -> Lab:
    """Returns `lab` with `seeds` networks per task; raises ConfigError, naming `flag`, if
    that lab's training work exceeds MAX_LAB_WORK (the file's own seeds passed the check)."""
    more = lab.with_seeds(seeds)
    work = sum(_task_cost(t)[0] for t in more.tasks)
    if work > MAX_LAB_WORK:
        raise ConfigError(
            f"{flag} {seeds}: {lab.path}'s training work would be {work:.3g} with {seeds} "
            f"networks per task, above the limit of {MAX_LAB_WORK:.0e}; lower {flag}"
        )
    try:
        check_memory(lab.path, more.tasks, [])
    except ConfigError as exc:
        raise ConfigError(f"{flag} {seeds}: {exc}") from None
    return more


def _check_size(path: Path, tasks: list[Task], plans: list[FamilyPlan]) -> None:
    """Raises ConfigError if the lab's training work or sampled points exceed their caps."""
    parts = [(f"[[task]] {t.name!r}", _task_cost(t)) for t in tasks]
    for p in plans:
        work, points = _task_cost(p)
        parts.append(
            (f"[[family]] {p.name!r} ({p.count} tasks)", (p.count * work, p.count * points))
        )
    for k, (what, limit, counted, lower) in enumerate(_SIZE_LIMITS):
        total = sum(cost[k] for _, cost in parts)
        if total > limit:
            name, cost = max(parts, key=lambda part: part[1][k])
            raise ConfigError(
                f"{path}: the lab's {what} is {total:.3g}, above the limit of {limit:.0e} (the "
                f"sum over tasks of {counted}); {name} alone is {cost[k]:.3g}: lower {lower}"
            )
