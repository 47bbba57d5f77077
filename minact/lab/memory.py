"""The memory a lab's training needs at once, checked by the loader before any data is sampled.

A worker trains one candidate's networks batched by task settings (sandbox/trainer.py): the
networks of all tasks of one kind and the same settings are stacked and train as one, and a
step keeps every layer's activations for the backward pass. The other limits bound time
(loader.MAX_LAB_WORK) and data (MAX_LAB_POINTS); neither bounds this: one task of 1e6 points
and 16 layers of width 250 is within both, yet would ask for some 500 GB, and the worker ran
out of memory only after sampling its data and starting to train.

Counted per network, in float32 numbers:
- activations: points x width x layers, where points are n_train (times a set's `size`,
  plus one rho layer per set; times a graph's nodes^2 message pairs, plus 2 x nodes node
  updates, per round: the rounds are a graph network's layers), times ACTIVATION_COPIES;
- parameters: width^2 x (depth + 4) + width x (inputs + 8), an upper bound for the MLP, the
  DeepSets and the message-passing networks, times PARAMETER_COPIES;
- data: (n_train + 2 x n_test) points of `inputs` numbers, times DATA_COPIES.
A task counts (seeds + 1) networks: the trace of its first network (trace.py) keeps that
network's pre-activations from four snapshots and samples them with int64 indices, about
as much again as training it (measured: one seed of 65536 x 256 held 22 copies of a layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from minact.errors import ConfigError
from minact.lab.parse import FamilyPlan
from minact.lab.task import Task

__all__ = ["ACTIVATION_COPIES", "MAX_TRAINING_BYTES", "check_memory", "training_bytes"]

# The memory minact counts on for one batch of training: a CPU worker's address space is
# capped at half its machine's memory (sandbox/client.py), so 32 GiB is what a 64 GB server
# gives; a 40 or 80 GB GPU holds it too. Not probed: a tasks file must load, or be refused,
# the same on every machine, and a smaller machine still reports what does not fit as a
# crash from outside ("ran out of memory"), retried later. The shipped labs need 0.25 GB
# at most (large: 200 tasks in one batch).
MAX_TRAINING_BYTES = 32 << 30
# Copies of a layer's (points x width) block one network holds at the peak of a step: its
# input, pre-activation and their gradients, and what the activation saves for backward.
# Measured with the trainer on CPU (2 steps of 16 networks of 16384 points x 256 units):
# about 3 for GELU and 11 for gsp, GELU(x) * (1 + 0.5 * sinc(x)); a candidate may spend
# max_cost (default 16) elementwise operations, and most of them save a tensor.
ACTIVATION_COPIES = 16
PARAMETER_COPIES = 5  # the weights, their gradient, Adam's two moments, the initial weights
DATA_COPIES = 3  # float32 on the device, and the float64 arrays they are stacked from
_FLOAT_BYTES = 4


def training_bytes(task: Task | FamilyPlan) -> float:
    """Returns the bytes one task's networks need to train together (module docstring)."""
    s = task.settings
    width, depth, n_train, n_test = float(s.width), float(s.depth), s.n_train, s.n_test
    # A family draws targets of 1 to 3 inputs; a graph packs each node's row of edge weights.
    inputs = max(1, len(task.variables)) if isinstance(task, Task) else 3
    if isinstance(task, Task) and task.graph is not None:
        g = task.graph
        units = n_train * g.rounds * (g.nodes**2 + 2 * g.nodes) * width
        data = (n_train * g.nodes + n_test * (g.nodes + g.test_nodes)) * (inputs + g.test_nodes)
    elif isinstance(task, Task) and task.sets is not None:
        sets = task.sets
        units = n_train * (sets.size * depth + 1) * width
        data = (n_train * sets.size + n_test * (sets.size + sets.test_size)) * inputs
    else:
        units = n_train * depth * width
        data = (n_train + 2 * n_test) * inputs
    params = width * width * (depth + 4) + width * (inputs + 8)
    network = ACTIVATION_COPIES * units + PARAMETER_COPIES * params + DATA_COPIES * data
    return _FLOAT_BYTES * (s.seeds + 1) * network


def _batch_key(task: Task | FamilyPlan) -> tuple[object, ...]:
    """Returns what tasks that may train in one batch share. The trainer groups by these and
    more (sandbox/trainer.py, `_group_key`), so a group here holds all of a batch, or more."""
    s = task.settings
    kind = task.kind if isinstance(task, Task) else "regression"
    sizes: tuple[object, ...] = ()
    if isinstance(task, Task) and task.sets is not None:
        sizes = (task.sets.size, task.sets.test_size)
    elif isinstance(task, Task) and task.graph is not None:
        g = task.graph
        sizes = (g.nodes, g.test_nodes, g.rounds, g.aggregate)
    return (kind, s.width, s.depth, s.steps, s.lr, s.n_train, s.n_test, *sizes)


def _keys(task: Task | FamilyPlan) -> str:
    """Returns the keys that make a task's training memory, for an error message."""
    if isinstance(task, Task) and task.graph is not None:
        return "n_train, nodes, rounds, width or seeds"
    if isinstance(task, Task) and task.sets is not None:
        return "n_train, size, width, depth or seeds"
    return "n_train, width, depth or seeds" + ("" if isinstance(task, Task) else ", or count")


def _gib(n: float) -> str:
    """Returns `n` bytes in GiB, for an error message."""
    return f"{n / 2**30:,.1f} GiB"


def _named(path: Path, i: int, task: Task | FamilyPlan) -> str:
    """Returns how an error names a [[task]] (by name and position) or a [[family]]."""
    if isinstance(task, FamilyPlan):
        return f"[[family]] {task.name!r} ({task.count} tasks)"
    return f"[[task]] {task.name!r} (#{i})"


def check_memory(path: Path, tasks: Sequence[Task], plans: Sequence[FamilyPlan]) -> None:
    """Raises ConfigError naming the task (or the tasks that train together) whose training
    would need more than MAX_TRAINING_BYTES at once."""
    groups: dict[tuple[object, ...], list[tuple[str, Task | FamilyPlan, float]]] = {}
    members: list[tuple[int, Task | FamilyPlan, int]] = [
        (i, t, 1) for i, t in enumerate(tasks, start=1)
    ]
    members += [(i, p, p.count) for i, p in enumerate(plans, start=1)]
    for i, member, count in members:
        entry = (_named(path, i, member), member, count * training_bytes(member))
        groups.setdefault(_batch_key(member), []).append(entry)
    for group in groups.values():
        total = sum(need for _, _, need in group)
        if total <= MAX_TRAINING_BYTES:
            continue
        name, task, need = max(group, key=lambda entry: entry[2])
        s = task.settings
        limit = f"above the limit of {_gib(MAX_TRAINING_BYTES)} (minact/lab/memory.py)"
        if len(group) == 1:
            raise ConfigError(
                f"{path}: {name}: training needs about {_gib(need)} at once (n_train "
                f"{s.n_train}, width {s.width}, depth {s.depth}, seeds {s.seeds}), {limit}: "
                f"lower {_keys(task)}"
            )
        raise ConfigError(
            f"{path}: {len(group)} tables of tasks of the same kind and settings train as one "
            f"batch and need about {_gib(total)} at once, {limit}; {name} alone needs "
            f"{_gib(need)}: lower {_keys(task)}, or give them different settings"
        )
