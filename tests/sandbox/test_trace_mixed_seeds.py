"""A job's results and trace do not depend on what shares its batch, where jobs of one
and of three seeds train together (batched tracing, and graph tasks', one by one)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from minact.lab.task import Lab, Task
from minact.sandbox.trainer import Job, Trainer
from tests.sandbox.test_graph import TINY, _graph, _lab


def _seeds(task: Task, n: int, name: str) -> Task:
    return dataclasses.replace(
        task, name=name, settings=dataclasses.replace(task.settings, seeds=n)
    )


def _check(task: Task) -> None:
    three, one = _seeds(task, 3, "three"), _seeds(task, 1, "one")
    alone = Trainer().train([Job(0, F.gelu, three)])[0]
    mixed_jobs = [
        Job(1, F.relu, one),
        Job(0, F.gelu, one),
        Job(0, F.gelu, three),
        Job(2, torch.tanh, three),
        Job(2, torch.tanh, one),
    ]
    mixed = Trainer().train(mixed_jobs)[2]
    assert mixed.ood == alone.ood and mixed.id == alone.id
    assert mixed.trace == alone.trace
    assert len(alone.trace) <= 256


def test_mlp_trace_with_mixed_seed_counts(tiny_lab: Lab) -> None:
    _check(tiny_lab.tasks[0])


def test_graph_trace_with_mixed_seed_counts(tmp_path: Path) -> None:
    lab = _lab(tmp_path, TINY + _graph("degree", "sum"))
    _check(lab.tasks[0])
