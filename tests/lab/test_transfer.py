"""Tests for the set and classification task kinds and the built-in transfer suite."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minact.errors import ConfigError
from minact.lab.loader import load_lab, transfer_suite_path
from minact.lab.sampling import sample
from minact.lab.task import Lab, Task
from minact.sandbox.trainer import Job, Trainer

CLASSIC = Path(__file__).resolve().parents[2] / "minact" / "lab" / "data" / "classic.toml"

# Odd counts on purpose: no network's numbers may depend on where its block starts in a batched
# tensor. (The width stays a multiple of 8: on CPU, bmm's kernels round widths such as 5
# differently with the batch size, for regressions as well.)
TINY = """
[lab]
width = 8
depth = 2
steps = 20
lr = 0.02
seeds = 2
n_train = 37
n_test = 29
"""
SET_TASK = """
[[task]]
name = "sum"
family = "sets"
kind = "set"
element = "x"
aggregate = "sum"
size = 3
test_size = 7
"""
CLASS_TASK = """
[[task]]
name = "circle"
family = "classification"
kind = "classification"
target = "(x1 - 1)**2 + x2**2 - 1"
"""
REGRESSION_TASK = """
[[task]]
name = "sine"
family = "harmonic"
target = "sin(3*x)"
"""

# The classic lab's digests (the default lab before families) before the task kinds existed: a
# regression's digest must not change.
DEFAULT_DIGESTS = {
    "sin3x": "9942330ef86fc87453efab60f99cb79378dbd7da701682cff420cf79df947d1e",
    "two_tone": "dd523e2315b4a2c940f58aeff27c3710b227e959302012f4cee219f6054a307e",
    "sawtooth": "9fa24b686fb000e9c3c22df185ad03fdc94ca7dad440311413729988168fa093",
    "cubic": "6c40056a7d9be80ef483323420fc48d25713017d9cb443367ba91005594284d0",
    "quartic": "2c2b83f20d93f42a1b61918cbf25c357fb44ad8728ab3a5c75422ba928ada118",
    "product": "63473407498c1735b6bf671c743e3355b0fc646a3a7ecc3a5c2defc5f385ded4",
    "gaussian": "777789ce125f94e4e18a63aeaa64a11f189ee8a9e250fa1fab236f0f98b73c8b",
    "spring_energy": "7e4fd730096e50036aa11ec1011c49180e5668a1befc402ee9c43b8e782edd9b",
    "law_of_cosines": "eafba1c22e6a8eb3f7ae13542e67533deae8c84d19cd9485ab5a7af0ad23d858",
    "anharmonic": "fc3c23492a9c2c330a8b2170f04bbe03bbeaf53b9cd94666472d9e7f8e52c2b7",
}
DEFAULT_LAB_DIGEST = "11e95a56a709a4fd61b91dc5b61f3da56c8b1fdf6c8527d6481708c6f636b08a"


def _load(tmp_path: Path, text: str) -> Lab:
    path = tmp_path / "tasks.toml"
    path.write_text(text, encoding="utf-8")
    return load_lab(path)


def _nan_above_half(z: torch.Tensor) -> torch.Tensor:
    return torch.where(z > 0.5, z / 0.0 * 0.0, z)


# --- the shipped suite ---------------------------------------------------------------------------


def test_shipped_transfer_suite_loads_and_trains() -> None:
    path = transfer_suite_path()
    assert path.is_file() and path.name == "transfer.toml"
    lab = load_lab(path)
    assert {t.kind for t in lab.tasks} == {"set", "classification", "regression"}
    assert (lab.reference, lab.fitness) == ("relu", "mean_log_ratio")
    for task in lab.tasks:
        if task.kind == "set":
            assert task.sets is not None and task.sets.test_size > task.sets.size
    out = Trainer().train([Job(0, F.gelu, t) for t in lab.tasks])
    for task, result in zip(lab.tasks, out, strict=True):
        assert result.ok, (task.name, result.reason)
        assert len(result.ood) == len(result.id) == task.settings.seeds
        assert all(np.isfinite(result.ood)) and all(np.isfinite(result.id))


# --- digests and records -------------------------------------------------------------------------


def test_classic_lab_digests_are_unchanged() -> None:
    lab = load_lab(CLASSIC)
    assert {t.name: t.digest() for t in lab.tasks} == DEFAULT_DIGESTS
    assert lab.digest() == DEFAULT_LAB_DIGEST
    assert all(t.kind == "regression" and "kind" not in t.to_dict() for t in lab.tasks)


def test_new_kinds_round_trip_and_have_their_own_digests(tmp_path: Path) -> None:
    lab = _load(tmp_path, TINY + SET_TASK + CLASS_TASK)
    for task in lab.tasks:
        again = Task.from_dict(json.loads(json.dumps(task.to_dict())))
        assert again == task and again.digest() == task.digest()
    set_task, class_task = lab.tasks
    assert set_task.to_dict()["kind"] == "set" and set_task.to_dict()["test_size"] == 7
    as_regression = dataclasses.replace(class_task, kind="regression")
    assert as_regression.digest() != class_task.digest()
    assert set_task.sets is not None
    for change in ({"aggregate": "max"}, {"size": 4}, {"test_size": 8}):
        other = dataclasses.replace(set_task, sets=dataclasses.replace(set_task.sets, **change))
        assert other.digest() != set_task.digest(), change


# --- data ----------------------------------------------------------------------------------------


def test_set_data_has_longer_ood_sets_from_the_train_box(tmp_path: Path) -> None:
    task = _load(tmp_path, TINY + SET_TASK).tasks[0]
    data = sample(task)
    assert data.x_train.shape == (37, 3, 1) and data.x_id.shape == (29, 3, 1)
    assert data.x_ood.shape == (29, 7, 1)
    assert data.y_train.shape == (37,) and data.y_ood.shape == (29,)
    for x in (data.x_train, data.x_id, data.x_ood):
        assert np.all(np.abs(x) <= 1.0)
    np.testing.assert_allclose(data.y_ood, (data.x_ood.sum(axis=(1, 2)) - data.y_mean) / data.y_std)
    assert abs(data.y_train.mean()) < 1e-12 and abs(data.y_train.std() - 1.0) < 1e-12
    assert data.y_ood.std() > 1.2  # sums of 7 spread wider than sums of 3


@pytest.mark.parametrize(("aggregate", "reduce"), [("max", np.max), ("min", np.min)])
def test_set_aggregates_and_an_explicit_test_box(
    tmp_path: Path, aggregate: str, reduce: object
) -> None:
    text = SET_TASK.replace('"sum"', f'"{aggregate}"').replace('"x"', '"x**2"')
    task = _load(tmp_path, TINY + text + "test = [-3.0, 3.0]\n").tasks[0]
    data = sample(task)
    assert np.all((np.abs(data.x_ood) > 1.0) & (np.abs(data.x_ood) <= 3.0))
    raw = reduce(data.x_ood[..., 0] ** 2, axis=1)  # type: ignore[operator]
    np.testing.assert_allclose(data.y_ood, (raw - data.y_mean) / data.y_std)


def test_set_elements_can_be_vectors(tmp_path: Path) -> None:
    text = SET_TASK.replace('"x"', '"x1*x2"') + "train = { x1 = [0.0, 1.0], x2 = [-1.0, 1.0] }\n"
    task = _load(tmp_path, TINY + text).tasks[0]
    data = sample(task)
    assert data.x_train.shape == (37, 3, 2) and data.x_ood.shape == (29, 7, 2)
    assert np.all(data.x_ood[..., 0] >= 0.0) and np.all(data.x_ood[..., 0] <= 1.0)
    raw = (data.x_ood[..., 0] * data.x_ood[..., 1]).sum(axis=1)
    np.testing.assert_allclose(data.y_ood, (raw - data.y_mean) / data.y_std)
    (result,) = Trainer().train([Job(0, F.gelu, task)])
    assert result.ok


def test_set_tasks_ignore_the_lab_test_box(tmp_path: Path) -> None:
    task = _load(tmp_path, TINY + "test = [-5.0, 5.0]\n" + SET_TASK).tasks[0]
    assert task.test == task.train == ((-1.0, 1.0),)


def test_classification_labels_are_both_classes_and_not_standardised(tmp_path: Path) -> None:
    task = _load(tmp_path, TINY + CLASS_TASK).tasks[0]
    data = sample(task)
    assert (data.y_mean, data.y_std) == (0.0, 1.0)
    for x, y in ((data.x_train, data.y_train), (data.x_id, data.y_id), (data.x_ood, data.y_ood)):
        assert set(np.unique(y)) == {0.0, 1.0}
        np.testing.assert_array_equal(y, ((x[:, 0] - 1) ** 2 + x[:, 1] ** 2 > 1).astype(float))


# --- loader errors -------------------------------------------------------------------------------

ERRORS = [
    # (task text, key, value or phrase in the message)
    (SET_TASK.replace('"set"', '"sets"'), "kind", "'sets'"),
    (REGRESSION_TASK + 'element = "x"\n', "element", "'x'"),
    (REGRESSION_TASK + "size = 4\n", "size", "kind = 'set'"),
    (CLASS_TASK + 'aggregate = "sum"\n', "aggregate", "'sum'"),
    (SET_TASK + 'target = "x"\n', "target", "'element'"),
    (SET_TASK.replace('"sum"', '"median"'), "aggregate", "'median'"),
    (SET_TASK.replace("size = 3\n", "size = 0\n"), "size", "0"),
    (SET_TASK.replace("test_size = 7", "test_size = 2"), "test_size", ">= size (3)"),
    (SET_TASK.replace("test_size = 7", "test_size = 1.5"), "test_size", "1.5"),
    # No `test` and no longer sets: OOD would be drawn as the training sets are.
    (SET_TASK.replace("test_size = 7", "test_size = 3"), "test_size", "equals size"),
    (SET_TASK.replace("size = 3\n", "size = 30000\n").replace("= 7", "= 30000"), "size", "1110000"),
    (SET_TASK + "n_test = 200000\n", "test_size", "n_test 200000"),
    (SET_TASK.replace('"x"', '"x - x"'), "element", "constant"),
    (SET_TASK.replace('"x"', '"log(x)"'), "element", "not finite"),
    (SET_TASK.replace('"x"', '"sin("'), "element", "not a valid per-element expression"),
    (SET_TASK + "test = [-1.0, 1.0]\n", "test", "OOD region"),
    (CLASS_TASK.replace("2 - 1", "2 + 1"), "target", "labels that are all 1 on the training box"),
    (CLASS_TASK.replace("2 - 1", "2 - 9"), "target", "labels that are all 0 on the training box"),
    (CLASS_TASK + "noise = 0.1\n", "noise", "0.1"),
]


@pytest.mark.parametrize(("text", "key", "value"), ERRORS)
def test_errors_name_file_task_key_and_value(
    tmp_path: Path, text: str, key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, TINY + text)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'tasks.toml'}: [[task]] '")
    assert f"'{key}'" in message and value in message


@pytest.mark.parametrize("missing", ["element", "aggregate", "size", "test_size"])
def test_set_tasks_need_their_keys(tmp_path: Path, missing: str) -> None:
    text = "\n".join(line for line in SET_TASK.splitlines() if not line.startswith(missing + " "))
    with pytest.raises(ConfigError, match=rf"\[\[task\]\] #1: key '{missing}' is required"):
        _load(tmp_path, TINY + text)


def test_noise_from_the_lab_is_refused_for_classification(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'circle' \(#1\): key 'noise' .*\(from \[lab\]\)"):
        _load(tmp_path, TINY + "noise = 0.1\n" + CLASS_TASK)
    assert _load(tmp_path, TINY + "noise = 0.1\n" + CLASS_TASK + "noise = 0.0\n").tasks


# --- training ------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_text", [SET_TASK, CLASS_TASK])
def test_results_do_not_depend_on_batch_composition(tmp_path: Path, task_text: str) -> None:
    lab = _load(tmp_path, TINY + task_text + REGRESSION_TASK)
    alone = Trainer().train([Job(0, F.gelu, lab.tasks[0])])
    # Same settings, other kinds and other candidates: the regression trains in its own group.
    fns = (F.relu, torch.tanh, F.gelu, F.silu)
    mixed = Trainer().train([Job(k, fn, t) for k, fn in enumerate(fns) for t in lab.tasks])
    assert alone[0].ok and mixed[4].ok
    assert (mixed[4].ood, mixed[4].id) == (alone[0].ood, alone[0].id)


@pytest.mark.parametrize("task_text", [SET_TASK, CLASS_TASK])
def test_a_diverging_candidate_fails_alone(tmp_path: Path, task_text: str) -> None:
    task = _load(tmp_path, TINY + task_text).tasks[0]
    relu_alone = Trainer().train([Job(0, F.relu, task)])
    out = Trainer().train([Job(0, _nan_above_half, task), Job(1, F.relu, task)])
    assert out[0].status == "nonfinite" and "loss is nan" in out[0].reason
    assert out[1].ok and out[1].ood == relu_alone[0].ood


def test_compiled_set_training_matches_eager(tmp_path: Path) -> None:
    task = _load(tmp_path, TINY + SET_TASK).tasks[0]
    eager = Trainer().train([Job(0, F.silu, task)])
    compiled = Trainer(compile_backend="eager").train([Job(0, F.silu, task)])
    assert compiled[0].ood == eager[0].ood


def test_a_set_task_learns_and_a_linear_model_extrapolates_a_sum(tmp_path: Path) -> None:
    text = TINY.replace("steps = 20", "steps = 200").replace("width = 8", "width = 16")
    task = _load(tmp_path, text + SET_TASK).tasks[0]
    identity, tanh = Trainer().train([Job(0, lambda z: z, task), Job(1, torch.tanh, task)])
    assert identity.ok and tanh.ok
    assert max(tanh.id) < min(tanh.ood)  # interpolation beats length extrapolation
    # With the identity the model is linear, so it is exact on the training lengths and off
    # only by the pooled biases on longer sets; tanh saturates.
    assert max(identity.id) < 1e-6
    assert max(identity.ood) < min(tanh.ood)


def test_classification_learns(tmp_path: Path) -> None:
    text = TINY.replace("steps = 20", "steps = 150").replace("width = 8", "width = 16")
    task = _load(tmp_path, text + CLASS_TASK).tasks[0]
    (result,) = Trainer().train([Job(0, F.gelu, task)])
    assert result.ok and max(result.id) < 0.4 < np.log(2)  # better than a coin flip
