"""Tests for minact.tasks and minact.labfile: the default lab, digests, sampling, config errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from minact.errors import ConfigError
from minact.lab.expression import parse_expression
from minact.lab.loader import default_tasks_path, load_lab
from minact.lab.sampling import TargetError, sample
from minact.lab.task import Lab, Settings, Task

ROOT = Path(__file__).resolve().parents[2]
ROOT_TASKS = ROOT / "tasks.toml"
PACKAGED_TASKS = ROOT / "minact" / "lab" / "data" / "tasks.toml"
CLASSIC = ROOT / "minact" / "lab" / "data" / "classic.toml"

ONE_TASK = """
[[task]]
name = "sin3"
family = "harmonic"
target = "sin(3*x)"
"""
TWO_VARS = """
[[task]]
name = "prod"
family = "polynomial"
target = "x1*x2"
"""


def _write(tmp_path: Path, text: str, name: str = "tasks.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str) -> Lab:
    return load_lab(_write(tmp_path, text))


def _task(tmp_path: Path, text: str) -> Task:
    return _load(tmp_path, text).tasks[0]


# --- the default lab -----------------------------------------------------------------------------


def test_default_lab_is_four_generated_families_of_one_seed() -> None:
    lab = load_lab(ROOT_TASKS)
    assert lab.families() == ("polynomial", "fourier", "saturating", "feynman")
    assert [sum(t.family == f for t in lab.tasks) for f in lab.families()] == [25] * 4
    assert {(t.settings.seeds, t.settings.steps, t.settings.n_train) for t in lab.tasks} == {
        (1, 200, 128)
    }
    assert lab.tasks[0].name == "polynomial-1-001" and {t.kind for t in lab.tasks} == {"regression"}
    assert (lab.reference, lab.fitness, lab.max_cost, lab.probe) == (
        "relu",
        "mean_log_ratio",
        16.0,
        (-10.0, 10.0),
    )
    # the large lab holds the same families: the default lab's tasks are its first 20 of each
    large = load_lab(Path("large"))
    assert len(large.tasks) == 200 and large.digest() == lab.digest()
    assert {t.digest() for t in lab.tasks} <= {t.digest() for t in large.tasks}


def test_classic_lab_loads_with_three_families() -> None:
    lab = load_lab(CLASSIC)
    assert 9 <= len(lab.tasks) <= 10
    assert lab.families() == ("harmonic", "polynomial", "feynman")
    for family in lab.families():
        assert sum(t.family == family for t in lab.tasks) >= 3
    assert (lab.reference, lab.fitness, lab.max_cost, lab.probe) == (
        "relu",
        "mean_log_ratio",
        16.0,
        (-10.0, 10.0),
    )
    assert max(len(t.variables) for t in lab.tasks if t.family == "feynman") <= 3
    for task in lab.tasks:
        data = sample(task)
        for array in (data.y_train, data.y_id, data.y_ood, data.x_train, data.x_id, data.x_ood):
            assert np.all(np.isfinite(array)), task.name


def test_packaged_copy_is_byte_identical() -> None:
    assert PACKAGED_TASKS.read_bytes() == ROOT_TASKS.read_bytes()


def test_default_tasks_path_prefers_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = default_tasks_path()
    assert shipped.is_absolute() and shipped.read_bytes() == ROOT_TASKS.read_bytes()
    _write(tmp_path, ONE_TASK)
    assert default_tasks_path() == Path("tasks.toml")
    assert load_lab(default_tasks_path()).tasks[0].name == "sin3"


def test_lab_lookup_and_families() -> None:
    lab = load_lab(CLASSIC)
    assert lab.task("sin3x").target.source == "sin(3 * x)"
    with pytest.raises(KeyError, match="sin3x"):
        lab.task("nope")


# --- digests and round trips ---------------------------------------------------------------------


def test_digest_is_stable_across_loads() -> None:
    first, second = load_lab(ROOT_TASKS), load_lab(ROOT_TASKS)
    assert [t.digest() for t in first.tasks] == [t.digest() for t in second.tasks]
    assert first.digest() == second.digest()
    assert len({t.digest() for t in first.tasks}) == len(first.tasks)


def test_digest_ignores_name_family_comments_and_number_spelling(tmp_path: Path) -> None:
    base = _task(tmp_path, ONE_TASK).digest()
    renamed = ONE_TASK.replace('"sin3"', '"other"').replace('"harmonic"', '"waves"')
    assert _task(tmp_path, renamed).digest() == base
    commented = "# a comment\n" + ONE_TASK.replace("sin(3*x)", "sin( 3 * x )") + "# end\n"
    assert _task(tmp_path, commented).digest() == base
    explicit = ONE_TASK + "train = [-1, 1]\ntest = [-2.0, 2]\nwidth = 32\n"
    assert _task(tmp_path, explicit).digest() == base


@pytest.mark.parametrize(
    "change",
    [
        'target = "sin(3*x) + 0"',
        "train = [-1.0, 0.5]",
        "test = [-2.0, 3.0]",
        "width = 64",
        "depth = 3",
        "steps = 401",
        "lr = 0.02",
        "seeds = 2",
        "n_train = 128",
        "n_test = 100",
        "noise = 0.1",
        "data_seed = 1",
    ],
)
def test_digest_changes_with_anything_that_affects_the_numbers(tmp_path: Path, change: str) -> None:
    base = _task(tmp_path, ONE_TASK).digest()
    key = change.split(" =")[0]
    text = ONE_TASK if key != "target" else ONE_TASK.replace('target = "sin(3*x)"\n', "")
    assert _task(tmp_path, text + change + "\n").digest() != base


def test_digest_changes_with_every_settings_field(tmp_path: Path) -> None:
    task = _task(tmp_path, ONE_TASK)
    for field in dataclasses.fields(Settings):
        value = getattr(task.settings, field.name)
        changed = dataclasses.replace(task.settings, **{field.name: value + 1})
        assert dataclasses.replace(task, settings=changed).digest() != task.digest(), field.name


def test_lab_digest_covers_reference_cost_and_probe_only(tmp_path: Path) -> None:
    base = _load(tmp_path, ONE_TASK).digest()
    for lab_line in ['reference = "gelu"', "max_cost = 8.0", "probe = [-5.0, 5.0]"]:
        assert _load(tmp_path, f"[lab]\n{lab_line}\n{ONE_TASK}").digest() != base
    for lab_line in ["timeout = 5.0", 'fitness = "mean_ood_mse"', "width = 8"]:
        assert _load(tmp_path, f"[lab]\n{lab_line}\n{ONE_TASK}").digest() == base


def test_to_dict_round_trip_keeps_the_digest() -> None:
    lab = load_lab(ROOT_TASKS)
    for task in lab.tasks:
        again = Task.from_dict(json.loads(json.dumps(task.to_dict())))
        assert again == task and again.digest() == task.digest()
    again_lab = Lab.from_dict(json.loads(json.dumps(lab.to_dict())))
    assert again_lab == lab and again_lab.digest() == lab.digest()


# --- sampling ------------------------------------------------------------------------------------


def _inside(x: np.ndarray, box: tuple[tuple[float, float], ...]) -> np.ndarray:
    lo, hi = np.array(box).T
    inside: np.ndarray = np.all((x >= lo) & (x <= hi), axis=1)
    return inside


def test_sample_is_deterministic_and_respects_the_boxes() -> None:
    for task in load_lab(ROOT_TASKS).tasks:
        a, b = sample(task), sample(task)
        for field in dataclasses.fields(a):
            np.testing.assert_array_equal(getattr(a, field.name), getattr(b, field.name))
        n, m, d = task.settings.n_train, task.settings.n_test, len(task.variables)
        assert a.x_train.shape == (n, d) and a.y_train.shape == (n,)
        assert a.x_id.shape == a.x_ood.shape == (m, d) and a.y_id.shape == a.y_ood.shape == (m,)
        assert a.x_train.dtype == a.y_ood.dtype == np.float64
        assert _inside(a.x_train, task.train).all() and _inside(a.x_id, task.train).all()
        assert not _inside(a.x_ood, task.train).any()
        assert _inside(a.x_ood, task.test).all()
        assert not np.array_equal(a.x_train[:m], a.x_id)  # fresh ID points


def test_standardisation_uses_training_statistics(tmp_path: Path) -> None:
    task = _task(tmp_path, TWO_VARS)
    data = sample(task)
    assert abs(data.y_train.mean()) < 1e-12 and abs(data.y_train.std() - 1.0) < 1e-12
    raw_ood = task.target.evaluate({"x1": data.x_ood[:, 0], "x2": data.x_ood[:, 1]})
    np.testing.assert_allclose(data.y_ood, (raw_ood - data.y_mean) / data.y_std)
    assert data.y_ood.std() > 2.0  # the OOD targets are not re-standardised


def test_noise_is_added_to_training_targets_only(tmp_path: Path) -> None:
    clean = sample(_task(tmp_path, ONE_TASK))
    noisy = sample(_task(tmp_path, ONE_TASK + "noise = 0.5\n"))
    residual = noisy.y_train - np.sin(3 * noisy.x_train[:, 0]) / noisy.y_std + noisy.y_mean
    assert 0.3 < residual.std() < 0.7
    raw_id = np.sin(3 * noisy.x_id[:, 0])
    np.testing.assert_allclose(noisy.y_id, (raw_id - noisy.y_mean) / noisy.y_std)
    assert not np.array_equal(clean.x_train, noisy.x_train)  # the seed covers the noise level


def test_data_seed_changes_the_points(tmp_path: Path) -> None:
    a = sample(_task(tmp_path, ONE_TASK))
    b = sample(_task(tmp_path, ONE_TASK + "data_seed = 7\n"))
    assert not np.array_equal(a.x_train, b.x_train)


def test_task_overrides_and_box_tables(tmp_path: Path) -> None:
    text = TWO_VARS + 'vars = ["x2", "x1"]\ntrain = { x1 = [0, 1], x2 = [-1, 1] }\nsteps = 10\n'
    task = _task(tmp_path, "[lab]\nwidth = 8\n" + text)
    assert task.variables == ("x2", "x1")
    assert task.train == ((-1.0, 1.0), (0.0, 1.0)) and task.test == ((-2.0, 2.0),) * 2
    assert (task.settings.width, task.settings.steps, task.settings.depth) == (8, 10, 2)


def test_sample_rejects_a_target_that_is_unusable() -> None:
    task = dataclasses.replace(
        load_lab(CLASSIC).tasks[0], name="bad", target=parse_expression("sqrt(1 - x**2)")
    )
    with pytest.raises(TargetError, match=r"not finite on the OOD region"):
        sample(task)


# --- errors: each names the file, the task, the key and the value --------------------------------

TASK_ERRORS = [
    # (text appended to ONE_TASK's [[task]], key, value as shown)
    ("stesp = 4", "stesp", "4"),
    ("steps = -4", "steps", "-4"),
    ("steps = true", "steps", "True"),
    ('steps = "400"', "steps", "'400'"),
    ("seeds = 2.5", "seeds", "2.5"),
    ("width = 0", "width", "0"),
    ("width = 5000", "width", "5000"),
    ("depth = 17", "depth", "17"),
    ("lr = 0", "lr", "0"),
    ("lr = 11.0", "lr", "11.0"),
    ("lr = nan", "lr", "nan"),
    ("lr = 5e-324", "lr", "5e-324"),  # 0 in float32: nothing would learn
    ("seeds = 101", "seeds", "101"),
    ("n_train = 3", "n_train", "3"),
    ("n_test = 2", "n_test", "2"),
    ("noise = -0.1", "noise", "-0.1"),
    ("data_seed = -1", "data_seed", "-1"),
    ("train = [1.0, -1.0]", "train", "[1.0, -1.0]"),
    ("train = [0.0]", "train", "[0.0]"),
    ('train = ["a", 1]', "train", "['a', 1]"),
    ("train = [-3.0, 1.0]", "train", "[-3, 1]"),
    ("test = [-1.0, 1.0]", "test", "[[-1.0, 1.0]]"),
    ("test = [-1.0, 1.001]", "test", "[[-1.0, 1.001]]"),
    ('vars = ["y"]', "vars", "['y']"),
    ('vars = ["x", "x"]', "vars", "['x', 'x']"),
    ("train = { y = [0.0, 1.0] }", "y", "[0.0, 1.0]"),
    ("train = { x = [2.0, 1.0] }", "train.x", "[2.0, 1.0]"),
    ("train = [0.0, 1e-300]", "train", "lo < hi in float32"),  # one point in float32
    # 16 float32 values: the networks would see 16 inputs, whatever the target does between.
    ("train = [999999.0, 1000000.0]", "train", "(the networks train in float32; these are 16"),
]


@pytest.mark.parametrize(("extra", "key", "value"), TASK_ERRORS)
def test_task_errors_name_file_task_key_and_value(
    tmp_path: Path, extra: str, key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, ONE_TASK + extra + "\n")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'tasks.toml'}: [[task]] 'sin3' (#1): ")
    assert f"'{key}'" in message
    assert value in message


def test_the_documented_message_shape(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, ONE_TASK + "steps = -4\n")
    assert str(info.value).endswith(": key 'steps' must be an integer in 1..1000000, got -4")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("log(x)", "not finite on the training box"),
        ("sqrt(1 - x**2)", "not finite on the OOD region"),
        ("x - x + 2", "constant"),
        ("np.sin(x)", "not a valid target"),
        ("3", "no variables"),
        # nan and inf are no variables: `nan * x` loaded as a task of two inputs.
        ("nan * x", "name 'nan' is not allowed: a target must be finite"),
        ("x + inf - inf", "name 'inf' is not allowed"),
        ("Infinity * x", "name 'Infinity' is not allowed"),
        ("x / 0", "not finite on the training box"),
        # Finite at every sampled point, infinite at points of the boxes.
        ("1 / x", "not finite at x = 0 on the training box"),
        ("1 / (x - 2)", "not finite at x = 2 on the OOD region"),
        ("sin(x) / x", "not finite at x = 0"),
    ],
)
def test_unusable_targets_name_the_task(tmp_path: Path, target: str, reason: str) -> None:
    text = ONE_TASK.replace("sin(3*x)", target)
    with pytest.raises(ConfigError, match=f"'sin3' \\(#1\\): key 'target' .*{reason}"):
        _load(tmp_path, text)


LAB_ERRORS = [
    ("widht = 3", "widht", "3"),
    ('fitness = "best"', "fitness", "'best'"),
    ('reference = ""', "reference", "''"),
    ("max_cost = 0", "max_cost", "0"),
    ("timeout = -1", "timeout", "-1"),
    ("timeout = 1e-9", "timeout", ">= 1"),  # every candidate would fail, blaming the machine
    ("probe = [1.0, -1.0]", "probe", "[1.0, -1.0]"),
    ("probe = [0.0, 1e-300]", "probe", "lo < hi in float32"),
    ("train = { x = [0.0, 1.0] }", "train", "{'x': [0.0, 1.0]}"),
    ("train = [-3.0, 1.0]", "train", "[-3, 1]"),
    ("depth = 0", "depth", "0"),
]


def test_a_target_of_two_variables_is_checked_at_its_boxes_corners(tmp_path: Path) -> None:
    text = TWO_VARS.replace("x1*x2", "x1 / (x1 + x2)")
    where = r"'prod' \(#1\): key 'target' .*not finite at x1 = -2, x2 = 2 on the OOD region"
    with pytest.raises(ConfigError, match=where):
        _load(tmp_path, text)
    # pi and e are constants, finite everywhere: one input.
    assert _task(tmp_path, ONE_TASK.replace("sin(3*x)", "e * x + pi")).variables == ("x",)


@pytest.mark.parametrize(("line", "key", "value"), LAB_ERRORS)
def test_lab_errors_name_file_key_and_value(
    tmp_path: Path, line: str, key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f"[lab]\n{line}\n{ONE_TASK}")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'tasks.toml'}: [lab]: ")
    assert f"'{key}'" in message and value in message


def test_an_unknown_reference_is_a_load_error_naming_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f'[lab]\nreference = "swishy"\n{ONE_TASK}')
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'tasks.toml'}: [lab]: key 'reference' ")
    assert "'swishy'" in message and "relu" in message and "gelu" in message
    # A known name is accepted in any case, under its canonical name (the lab digest's).
    assert _load(tmp_path, f'[lab]\nreference = "GELU"\n{ONE_TASK}').reference == "gelu"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ONE_TASK.replace('target = "sin(3*x)"\n', ""), "[[task]] #1: key 'target' is required"),
        (ONE_TASK.replace('name = "sin3"\n', ""), "[[task]] #1: key 'name' is required"),
        (ONE_TASK.replace('"sin3"', '""'), "key 'name' must be"),
        (ONE_TASK.replace('"harmonic"', '"two words"'), "key 'family' must be"),
        (ONE_TASK + ONE_TASK, "[[task]] 'sin3' (#2): key 'name' 'sin3' is already used by task #1"),
        ("[lab]\nwidth = 8\n", "needs at least one [[task]]"),
        ("[task]\nname = 'a'\n", "needs at least one [[task]]"),
        ("[[tasks]]\nname = 'a'\n", "unknown key 'tasks'"),
        ("lab = 3\n" + ONE_TASK, "key 'lab' must be a table"),
        ("task = [1]\n", "[[task]] #1: must be a table"),
        ("[lab\nwidth = 3\n", "invalid TOML"),
        (TWO_VARS + "train = { x1 = [0.0, 1.0] }\n", "missing x2"),
    ],
)
def test_file_level_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert str(tmp_path / "tasks.toml") in str(info.value)
    assert expected in str(info.value)


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 3"):
        _load(tmp_path, ONE_TASK.replace('name = "sin3"', "name = sin3"))


def test_missing_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such tasks file"):
        load_lab(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_lab(tmp_path)  # a directory
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe name = 1")
    with pytest.raises(ConfigError, match=r"binary\.toml: .*(UTF-8|TOML)"):
        load_lab(binary)
