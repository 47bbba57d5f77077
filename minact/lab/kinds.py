"""The kind-specific keys of a [[task]] table: set, graph and dataset specs.

Each parser returns the checked spec or raises ConfigError naming the place, key and value.
`misplaced` says which key belongs to which kind, so that a key given to the wrong kind of
task is reported with the kind it is for.
"""

from __future__ import annotations

from typing import Any

from minact.errors import ConfigError
from minact.lab.checks import float_value, int_value, one_of, require, shown
from minact.lab.task import (
    AGGREGATES,
    GRAPH_AGGREGATES,
    GRAPH_ALGORITHMS,
    DatasetSpec,
    GraphSpec,
    SetSpec,
    Settings,
)

__all__ = ["DATASET_KEYS", "EXPRESSION_KEYS", "GRAPH_KEYS", "MAX_GRAPH_PAIRS", "MAX_SET_ELEMENTS"]
__all__ += ["SET_KEYS", "allowed_keys", "dataset_spec", "graph_spec", "misplaced", "set_spec"]

# Elements per network in a set task's training or OOD data: no more than a regression task
# may have points (n_train <= 1e6), so a set network costs no more memory than the largest one.
MAX_SET_ELEMENTS = 1_000_000
# Node pairs per network (graphs x nodes^2): each pair holds a message of `width` numbers.
MAX_GRAPH_PAIRS = 1 << 18

SET_KEYS = ("element", "aggregate", "size", "test_size")
GRAPH_KEYS = ("algorithm", "nodes", "test_nodes", "edge_prob", "rounds", "aggregate")
DATASET_KEYS = ("dataset", "label", "shift", "amount", "feature")
EXPRESSION_KEYS = ("target", "vars", "train", "test")
_DEFAULT_AMOUNT = {"translate": 1.0, "contrast": 1.5, "top": 0.2}


def allowed_keys(kind: str, raw: dict[str, Any]) -> tuple[str, ...]:
    """Returns the kind-specific keys a [[task]] of `kind` may have."""
    if kind == "set":
        return (*SET_KEYS, "vars", "train", "test")
    if kind == "graph":
        return GRAPH_KEYS
    return DATASET_KEYS if "dataset" in raw else EXPRESSION_KEYS


def misplaced(where: str, kind: str, key: str, value: object) -> ConfigError:
    """Returns the error for a kind-specific `key` given to a task of another kind."""
    if kind == "set" and key == "target":
        use = "use 'element' for the per-element expression"
    elif kind in ("graph", "set") and key in DATASET_KEYS:
        use = "dataset tasks are kind 'regression' or 'classification'"
    elif key in GRAPH_KEYS and key in SET_KEYS:
        use = "use kind = 'set' or kind = 'graph'"
    elif key in SET_KEYS:
        use = "use kind = 'set'"
    elif key in GRAPH_KEYS:
        use = "use kind = 'graph'"
    else:
        use = f"a {kind} task {'with a dataset ' if kind != 'graph' else ''}defines its own inputs"
    return ConfigError(
        f"{where}: key {key!r} = {shown(value)} is not for kind {kind!r} tasks; {use}"
    )


def set_spec(where: str, raw: dict[str, Any], settings: Settings) -> SetSpec:
    """Returns the set task's aggregate and sizes, within MAX_SET_ELEMENTS per network."""
    aggregate = one_of(where, "aggregate", raw["aggregate"], AGGREGATES)
    size = int_value(where, "size", raw["size"], (1, MAX_SET_ELEMENTS))
    test_size = int_value(where, "test_size", raw["test_size"], (1, MAX_SET_ELEMENTS))
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
    if test_size == size and "test" not in raw:  # as `test` = `train`, refused by check_boxes
        raise ConfigError(
            f"{where}: key 'test_size' {test_size!r} equals size and the task gives no 'test' "
            f"box: its OOD sets would be drawn as its training sets are (nothing to extrapolate "
            f"to); raise test_size or give 'test'"
        )
    return SetSpec(aggregate, size, test_size)


def graph_spec(where: str, raw: dict[str, Any], settings: Settings) -> GraphSpec:
    """Returns the graph task's algorithm and graphs, within MAX_GRAPH_PAIRS per network."""
    require(where, raw, ("algorithm", "nodes", "test_nodes"))
    algorithm = one_of(where, "algorithm", raw["algorithm"], GRAPH_ALGORITHMS)
    aggregate = one_of(
        where, "aggregate", raw.get("aggregate", "max"), GRAPH_AGGREGATES, sep=" or "
    )
    nodes = int_value(where, "nodes", raw["nodes"], (2, 256))
    test_nodes = int_value(where, "test_nodes", raw["test_nodes"], (2, 256))
    if test_nodes < nodes:
        raise ConfigError(
            f"{where}: key 'test_nodes' must be >= nodes ({nodes}): the OOD graphs are the "
            f"larger ones, got {test_nodes!r}"
        )
    if test_nodes == nodes:
        raise ConfigError(
            f"{where}: key 'test_nodes' {test_nodes!r} equals nodes: its OOD graphs would be "
            f"drawn as its training graphs are (nothing to extrapolate to); raise test_nodes"
        )
    edge_prob = float_value(where, "edge_prob", raw.get("edge_prob", 0.3), (0.0, 1.0, True))
    rounds = int_value(where, "rounds", raw.get("rounds", 4), (1, 64))
    for key, n, graphs in (("nodes", nodes, "n_train"), ("test_nodes", test_nodes, "n_test")):
        count = getattr(settings, graphs)
        if count * n * n > MAX_GRAPH_PAIRS:
            raise ConfigError(
                f"{where}: key {key!r} {n!r} squared times {graphs} {count} is {count * n * n} "
                f"node pairs per network, above {MAX_GRAPH_PAIRS}: lower {key} or {graphs}"
            )
    return GraphSpec(algorithm, nodes, test_nodes, edge_prob, rounds, aggregate)


def dataset_spec(where: str, kind: str, raw: dict[str, Any]) -> DatasetSpec:
    """Returns the dataset task's dataset, label rule and shift (scikit-learn must be there)."""
    from minact.lab.datasets import DATASETS, LABELS, SHIFTS, require_sklearn

    require(where, raw, ("dataset", "shift"))
    name = one_of(where, "dataset", raw["dataset"], DATASETS)
    if DATASETS[name] != kind:
        raise ConfigError(
            f"{where}: key 'dataset' {name!r} makes {DATASETS[name]} tasks; set kind = "
            f"{DATASETS[name]!r}, got kind {kind!r}"
        )
    label = one_of(
        where, "label", raw.get("label", LABELS[name][0]), LABELS[name], of=f"for {name!r}"
    )
    shift = one_of(where, "shift", raw["shift"], SHIFTS[name], of=f"for {name!r}")
    rules = {"translate": (1.0, 3.0, False), "contrast": (0.0, 10.0, True), "top": (0.0, 0.5, True)}
    amount = float_value(where, "amount", raw.get("amount", _DEFAULT_AMOUNT[shift]), rules[shift])
    if shift == "translate" and amount != int(amount):
        raise ConfigError(f"{where}: key 'amount' must be whole pixels (1..3), got {amount!r}")
    feature = raw.get("feature", "")
    if (shift == "top") != bool(feature) or not isinstance(feature, str):
        need = "names the column the 'top' shift sorts by" if shift == "top" else "is for 'top'"
        raise ConfigError(f"{where}: key 'feature' {need}, got {shown(feature)}")
    require_sklearn(f"{where}: key 'dataset' {name!r}")
    return DatasetSpec(name, label, shift, amount, feature)
