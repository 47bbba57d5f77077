"""Graph tasks' data: random graphs and the exact outputs of graph algorithms on them.

In the spirit of CLRS-30 (Veličković et al. 2022): a network learns what an algorithm computes
per node on small graphs and is scored on larger ones. Every graph is an Erdős–Rényi G(n, p)
graph with the same p at both sizes (CLRS-30's samplers keep p when they grow n), so the OOD
graphs are both larger and denser: a node sees more messages, and sums over them grow. Edge
weights are uniform in [0.1, 1] for Bellman-Ford and 1 otherwise; node values are uniform in
[0, 1]; the source is a uniformly drawn node.

The targets are the exact outputs of `rounds` synchronous steps of each algorithm (the
network runs as many rounds, so what it must compute is within its reach at any size): BFS and
Bellman-Ford distances after `rounds` steps, with rounds + 1 for nodes not reached (larger than
any path of `rounds` edges of weight <= 1), reachability within `rounds` hops, the degree, the
largest value among a node and its neighbours or within `rounds` hops.

Node features (x, per node): the source indicator for bfs, bellman_ford and reachability; the
value for max_neighbour and max_reachable; a constant 1 for degree. Edges (e, per node pair):
the weight, 0 where there is no edge; no self-loops (the model adds them).
"""

from __future__ import annotations

import numpy as np

from minact.lab.sampling import FloatArray, TargetError, TaskData
from minact.lab.task import BINARY_ALGORITHMS, GraphSpec, Task

__all__ = ["WEIGHT_RANGE", "algorithm_targets", "random_graphs", "sample_graphs"]

WEIGHT_RANGE = (0.1, 1.0)  # Bellman-Ford edge weights: positive, so distances are well defined


def sample_graphs(task: Task, rng: np.random.Generator) -> TaskData:
    """Returns a graph task's data: x (graphs, nodes, 1), e (graphs, nodes, nodes), y per node."""
    spec = task.graph
    assert spec is not None
    s = task.settings
    # The draw order is part of DATA_VERSION: training graphs, ID graphs, OOD graphs.
    parts = [
        _split(rng, spec, count, n)
        for count, n in (
            (s.n_train, spec.nodes),
            (s.n_test, spec.nodes),
            (s.n_test, spec.test_nodes),
        )
    ]
    (x_t, e_t, y_t), (x_i, e_i, y_i), (x_o, e_o, y_o) = parts
    if spec.algorithm in BINARY_ALGORITHMS:
        share = float(np.mean(y_t))
        if share in (0.0, 1.0):
            raise TargetError(f"gives labels that are all {share:.0f} on the training graphs")
        return TaskData(x_t, y_t, x_i, y_i, x_o, y_o, 0.0, 1.0, e_t, e_i, e_o)
    mean, std = float(np.mean(y_t)), float(np.std(y_t))
    if not std > 1e-12 * max(1.0, abs(mean)):
        raise TargetError(f"is constant on the training graphs (value {mean:g})")
    y_t, y_i, y_o = ((y - mean) / std for y in (y_t, y_i, y_o))
    if s.noise > 0:
        y_t = y_t + s.noise * rng.standard_normal(y_t.shape)
    return TaskData(x_t, y_t, x_i, y_i, x_o, y_o, mean, std, e_t, e_i, e_o)


def _split(
    rng: np.random.Generator, spec: GraphSpec, count: int, n: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Returns x (count, n, 1), e (count, n, n) and the targets (count, n) of fresh graphs."""
    weighted = spec.algorithm == "bellman_ford"
    adjacency, weights = random_graphs(rng, count, n, spec.edge_prob, weighted)
    source = rng.integers(0, n, size=count)
    values = rng.random((count, n))
    y = algorithm_targets(spec.algorithm, adjacency, weights, source, values, spec.rounds)
    if spec.algorithm in ("max_neighbour", "max_reachable"):
        x = values
    elif spec.algorithm == "degree":
        x = np.ones((count, n))
    else:
        x = (np.arange(n)[None, :] == source[:, None]).astype(np.float64)
    return x[..., None], np.where(adjacency, weights, 0.0), y


def random_graphs(
    rng: np.random.Generator, count: int, n: int, p: float, weighted: bool
) -> tuple[np.ndarray, FloatArray]:
    """Returns `count` undirected G(n, p) graphs: adjacency (count, n, n) bool and weights."""
    upper = np.triu(rng.random((count, n, n)) < p, k=1)
    adjacency = upper | upper.transpose(0, 2, 1)
    if weighted:
        lo, hi = WEIGHT_RANGE
        w = np.triu(lo + (hi - lo) * rng.random((count, n, n)), k=1)
        weights: FloatArray = w + w.transpose(0, 2, 1)
    else:
        weights = np.ones((count, n, n))
    return adjacency, weights


def algorithm_targets(
    algorithm: str,
    adjacency: np.ndarray,
    weights: FloatArray,
    source: np.ndarray,
    values: FloatArray,
    rounds: int,
) -> FloatArray:
    """Returns the exact per-node output (graphs, n) of `rounds` steps of `algorithm`."""
    n = adjacency.shape[1]
    if algorithm == "degree":
        degree: FloatArray = adjacency.sum(axis=-1).astype(np.float64)
        return degree
    closed = adjacency | np.eye(n, dtype=bool)[None]  # each node and its neighbours
    if algorithm == "max_neighbour":
        best: FloatArray = np.where(closed, values[:, None, :], -np.inf).max(axis=-1)
        return best
    if algorithm == "max_reachable":
        v = values
        for _ in range(rounds):
            v = np.where(closed, v[:, None, :], -np.inf).max(axis=-1)
        return v
    start = np.arange(n)[None, :] == source[:, None]  # (graphs, n)
    unreached = float(rounds + 1)
    if algorithm == "bellman_ford":
        dist = np.where(start, 0.0, np.inf)
        edge = np.where(adjacency, weights, np.inf)
        for _ in range(rounds):  # synchronous relaxation: paths of at most k edges after k rounds
            dist = np.minimum(dist, (dist[:, None, :] + edge).min(axis=-1))
        out: FloatArray = np.where(np.isfinite(dist), dist, unreached)
        return out
    hops = np.where(start, 0.0, unreached)
    reached = start
    for k in range(1, rounds + 1):  # BFS, one frontier per round
        reached = reached | (adjacency & reached[:, None, :]).any(axis=-1)
        hops = np.where(reached & (hops == unreached), float(k), hops)
    if algorithm == "bfs":
        return hops
    if algorithm == "reachability":
        labels: FloatArray = reached.astype(np.float64)
        return labels
    raise ValueError(f"unknown graph algorithm {algorithm!r}")
