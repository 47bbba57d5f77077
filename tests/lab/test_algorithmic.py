"""Tests for graph tasks: exact algorithm targets, the generated graphs and the shipped suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from minact.errors import ConfigError
from minact.lab.graphs import WEIGHT_RANGE, algorithm_targets
from minact.lab.loader import load_lab
from minact.lab.sampling import sample
from minact.lab.suites import suite_path
from minact.lab.task import GRAPH_ALGORITHMS, Task

# A path 0 - 1 - 2 - 3 and an isolated node 4; source 0; values per node; rounds 2.
EDGES = [(0, 1), (1, 2), (2, 3)]
WEIGHTS = {(0, 1): 0.5, (1, 2): 0.25, (2, 3): 1.0}
VALUES = [0.1, 0.9, 0.3, 0.7, 0.5]


def _path_graph() -> tuple[np.ndarray, np.ndarray]:
    adjacency = np.zeros((1, 5, 5), dtype=bool)
    weights = np.zeros((1, 5, 5))
    for i, j in EDGES:
        adjacency[0, i, j] = adjacency[0, j, i] = True
        weights[0, i, j] = weights[0, j, i] = WEIGHTS[(i, j)]
    return adjacency, weights


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("bfs", [0, 1, 2, 3, 3]),  # not reached within 2 rounds: rounds + 1
        ("bellman_ford", [0, 0.5, 0.75, 3, 3]),  # 3 is two hops away: unreached after 2 rounds
        ("reachability", [1, 1, 1, 0, 0]),
        ("degree", [1, 2, 2, 1, 0]),
        ("max_neighbour", [0.9, 0.9, 0.9, 0.7, 0.5]),
        ("max_reachable", [0.9, 0.9, 0.9, 0.9, 0.5]),  # two hops of max
    ],
)
def test_algorithm_targets_on_a_path(algorithm: str, expected: list[float]) -> None:
    adjacency, weights = _path_graph()
    out = algorithm_targets(algorithm, adjacency, weights, np.array([0]), np.array([VALUES]), 2)
    np.testing.assert_allclose(out[0], expected)


def test_bellman_ford_needs_enough_rounds_for_the_shorter_longer_path() -> None:
    # 0 -1.0- 1 and 0 -0.2- 2 -0.2- 1: after one round 1 is at 1.0, after two at 0.4
    adjacency = np.zeros((1, 3, 3), dtype=bool)
    weights = np.zeros((1, 3, 3))
    for (i, j), w in {(0, 1): 1.0, (0, 2): 0.2, (2, 1): 0.2}.items():
        adjacency[0, i, j] = adjacency[0, j, i] = True
        weights[0, i, j] = weights[0, j, i] = w
    values = np.zeros((1, 3))
    one = algorithm_targets("bellman_ford", adjacency, weights, np.array([0]), values, 1)
    two = algorithm_targets("bellman_ford", adjacency, weights, np.array([0]), values, 2)
    np.testing.assert_allclose(one[0], [0, 1.0, 0.2])
    np.testing.assert_allclose(two[0], [0, 0.4, 0.2])


def test_the_shipped_suite_has_every_algorithm_and_larger_ood_graphs() -> None:
    lab = load_lab(suite_path("algorithmic"))
    assert lab.path.name == "algorithmic.toml"
    assert {t.graph.algorithm for t in lab.tasks if t.graph} == set(GRAPH_ALGORITHMS)
    for task in lab.tasks:
        assert task.kind == "graph" and task.graph is not None and task.target is None
        g, s = task.graph, task.settings
        data = sample(task)
        assert data.x_train.shape == (s.n_train, g.nodes, 1)
        assert data.x_ood.shape == (s.n_test, g.test_nodes, 1)
        assert data.y_train.shape == (s.n_train, g.nodes) and data.y_ood.shape == (
            s.n_test,
            g.test_nodes,
        )
        for e in (data.e_train, data.e_id, data.e_ood):
            assert e is not None
            np.testing.assert_array_equal(e, e.transpose(0, 2, 1))  # undirected
            assert np.all(np.diagonal(e, axis1=1, axis2=2) == 0)  # no self-loops
            weights = e[e > 0]
            lo = WEIGHT_RANGE[0] if g.algorithm == "bellman_ford" else 1.0
            assert weights.min() >= lo and weights.max() <= 1.0
        if task.loss == "bce":
            assert set(np.unique(data.y_train)) == {0.0, 1.0}
        else:
            assert abs(data.y_train.mean()) < 1e-9 and abs(data.y_train.std() - 1) < 1e-9
        # denser OOD graphs: more neighbours per node than in training
        assert data.e_ood is not None and data.e_train is not None
        assert (data.e_ood > 0).sum(axis=2).mean() > 2 * (data.e_train > 0).sum(axis=2).mean()


def test_graph_data_is_deterministic_and_digest_bound() -> None:
    task = load_lab(suite_path("algorithmic")).task("bellman_ford")
    a, b = sample(task), sample(task)
    for x, y in ((a.x_train, b.x_train), (a.e_ood, b.e_ood), (a.y_ood, b.y_ood)):
        np.testing.assert_array_equal(x, y)
    again = Task.from_dict(json.loads(json.dumps(task.to_dict())))
    assert again == task and again.digest() == task.digest()
    assert task.to_dict()["graph"]["algorithm"] == "bellman_ford" and "target" not in task.to_dict()


TINY = "[lab]\nwidth = 8\nsteps = 5\nseeds = 1\nn_train = 8\nn_test = 8\n"
GRAPH = (
    '[[task]]\nname = "g"\nfamily = "paths"\nkind = "graph"\nalgorithm = "bfs"\n'
    "nodes = 6\ntest_nodes = 12\n"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GRAPH.replace('"bfs"', '"dijkstra"'), "key 'algorithm' must be one of 'bfs'"),
        (GRAPH + 'aggregate = "mean"\n', "key 'aggregate' must be 'sum' or 'max', got 'mean'"),
        (
            GRAPH.replace("test_nodes = 12", "test_nodes = 4"),
            "key 'test_nodes' must be >= nodes (6)",
        ),
        (
            GRAPH.replace("test_nodes = 12", "test_nodes = 6"),
            "key 'test_nodes' 6 equals nodes: its OOD graphs would be drawn as its training",
        ),
        (
            GRAPH.replace('"bfs"', '"reachability"') + "noise = 0.5\n",
            "key 'noise' must be 0 for algorithm 'reachability' tasks (labels are not noised)",
        ),
        (GRAPH + "edge_prob = 0.0\n", "key 'edge_prob' must be a number > 0 and <= 1, got 0.0"),
        (GRAPH + "rounds = 0\n", "key 'rounds' must be an integer in 1..64, got 0"),
        (
            GRAPH.replace("test_nodes = 12", "test_nodes = 256") + "n_test = 8\n",
            "node pairs per network",
        ),
        (GRAPH + 'target = "x"\n', "key 'target' = 'x' is not for kind 'graph' tasks"),
        (GRAPH + "size = 3\n", "use kind = 'set'"),
        (GRAPH.replace("nodes = 6\n", ""), "key 'nodes' is required"),
        (
            GRAPH.replace('"bfs"', '"degree"') + "edge_prob = 1.0\n",
            "key 'algorithm' 'degree' is constant",
        ),
    ],
)
def test_graph_task_errors_name_the_task_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tasks.toml"
    path.write_text(TINY + text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_lab(path)
    assert str(info.value).startswith(f"{path}: [[task]] 'g' (#1): ")
    assert message in str(info.value)


def test_dataset_keys_are_refused_on_graph_tasks(tmp_path: Path) -> None:
    path = tmp_path / "tasks.toml"
    path.write_text(TINY + GRAPH + 'dataset = "digits"\n', encoding="utf-8")
    with pytest.raises(
        ConfigError, match="dataset tasks are kind 'regression' or 'classification'"
    ):
        load_lab(path)
