"""Tests for the message-passing network of graph tasks: exact batch independence, isolation of
a diverging candidate, compile plumbing, and that it learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from minact.lab.loader import load_lab
from minact.lab.task import Lab
from minact.sandbox.trainer import Job, Trainer

# Odd graph counts and node counts on purpose: no network's numbers may depend on where its
# block starts in a batched tensor (the width stays a multiple of 8, as in trainer.py).
TINY = """
[lab]
width = 8
steps = 12
lr = 0.02
seeds = 2
n_train = 5
n_test = 7
"""


def _graph(algorithm: str, aggregate: str, **extra: object) -> str:
    text = (
        f'\n[[task]]\nname = "{algorithm}"\nfamily = "g"\nkind = "graph"\n'
        f'algorithm = "{algorithm}"\nnodes = 5\ntest_nodes = 11\nrounds = 3\n'
        f'aggregate = "{aggregate}"\nedge_prob = 0.4\n'
    )
    return text + "".join(f"{k} = {v}\n" for k, v in extra.items())


def _lab(tmp_path: Path, text: str) -> Lab:
    path = tmp_path / "tasks.toml"
    path.write_text(text, encoding="utf-8")
    return load_lab(path)


@pytest.fixture
def graph_lab(tmp_path: Path) -> Lab:
    """Returns four graph tasks: max and sum aggregation, regression and yes/no."""
    text = TINY + _graph("bfs", "max") + _graph("degree", "sum")
    text += _graph("reachability", "max") + _graph("bellman_ford", "sum")
    return _lab(tmp_path, text)


def _nan_above_half(z: torch.Tensor) -> torch.Tensor:
    return torch.where(z > 0.5, z / 0.0 * 0.0, z)


def test_graph_training_is_deterministic(graph_lab: Lab) -> None:
    jobs = [Job(0, F.gelu, t) for t in graph_lab.tasks]
    a, b = Trainer().train(jobs), Trainer().train(jobs)
    assert all(r.ok for r in a)
    assert [(r.ood, r.id) for r in a] == [(r.ood, r.id) for r in b]
    assert all(len(r.ood) == 2 for r in a)


def test_graph_results_do_not_depend_on_batch_composition(graph_lab: Lab, tmp_path: Path) -> None:
    regression = _lab(tmp_path, TINY + '[[task]]\nname = "s"\nfamily = "h"\ntarget = "sin(3*x)"\n')
    tasks = [*graph_lab.tasks, *regression.tasks]
    fns = (F.relu, torch.tanh, F.gelu, F.silu)
    mixed = Trainer().train([Job(k, fn, t) for k, fn in enumerate(fns) for t in tasks])
    for i, task in enumerate(graph_lab.tasks):
        (alone,) = Trainer().train([Job(0, F.gelu, task)])
        together = mixed[2 * len(tasks) + i]
        assert alone.ok and (together.ood, together.id) == (alone.ood, alone.id), task.name


def test_a_diverging_candidate_fails_alone_on_graphs(graph_lab: Lab) -> None:
    task = graph_lab.tasks[0]
    (relu_alone,) = Trainer().train([Job(0, F.relu, task)])
    out = Trainer().train([Job(0, _nan_above_half, task), Job(1, F.relu, task)])
    assert out[0].status == "nonfinite" and "loss is nan" in out[0].reason
    assert out[1].ok and out[1].ood == relu_alone.ood


def test_compiled_graph_training_matches_eager(graph_lab: Lab) -> None:
    jobs = [Job(0, F.silu, t) for t in graph_lab.tasks[:2]]
    eager = Trainer().train(jobs)
    compiled = Trainer(compile_backend="eager").train(jobs)
    assert [r.ood for r in compiled] == [r.ood for r in eager]


def test_a_graph_network_learns_and_max_aggregation_counts_nothing(tmp_path: Path) -> None:
    text = TINY.replace("steps = 12", "steps = 150").replace("width = 8", "width = 16")
    lab = _lab(tmp_path, text + _graph("bfs", "max") + _graph("degree", "sum"))
    bfs, degree = Trainer().train([Job(0, F.relu, t) for t in lab.tasks])
    assert bfs.ok and degree.ok
    assert max(bfs.id) < 0.2 and max(degree.id) < 0.2  # standardised targets: variance 1
    # Degrees grow on the larger, denser OOD graphs: the sum must extrapolate.
    assert min(degree.ood) > max(degree.id)
