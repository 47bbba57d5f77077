"""The loader's limits: values of the wrong type for keys that name things, numbers beyond
float32's reach, labs whose total work is absurd, and tasks files that are not small regular
files. Each is a ConfigError naming the file, the key and the value, raised before any data is
sampled (nothing here trains)."""

from __future__ import annotations

import os
import tracemalloc
import warnings
from pathlib import Path

import pytest

from minact.errors import ConfigError
from minact.lab import loader
from minact.lab.checks import MAX_COORDINATE
from minact.lab.loader import (
    MAX_LAB_POINTS,
    MAX_LAB_TASKS,
    MAX_LAB_WORK,
    MAX_TASKS_FILE_BYTES,
    load_lab,
)
from minact.lab.suites import SUITES, suite_path
from tests.conftest import raised_on_fifo

TASK = '[[task]]\nname = "sine"\nfamily = "harmonic"\ntarget = "sin(3*x)"\n'
SET = '[[task]]\nname = "s"\nfamily = "sets"\nkind = "set"\nelement = "x"\n'
SET += 'aggregate = "sum"\nsize = 3\ntest_size = 7\n'
GRAPH = '[[task]]\nname = "g"\nfamily = "graphs"\nkind = "graph"\nalgorithm = "bfs"\n'
GRAPH += "nodes = 8\ntest_nodes = 12\n"
DATASET = '[[task]]\nname = "d"\nfamily = "t"\ndataset = "diabetes"\nshift = "top"\n'
DATASET += 'feature = "bmi"\n'
FAMILY = '[[family]]\nname = "poly"\ngenerator = "polynomial"\ncount = 2\n'


def _load(tmp_path: Path, text: str) -> ConfigError:
    """Returns the ConfigError of loading `text`; fails the test if it loads."""
    path = tmp_path / "lab.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_lab(path)
    assert str(info.value).startswith(f"{path}: "), info.value
    return info.value


# --- 8. lists and tables for keys that name things -----------------------------------------------

UNHASHABLE = {  # case: (text, key, what the message says the key must be)
    "generator": (FAMILY.replace('"polynomial"', '["polynomial"]'), "generator", "one of"),
    "generator-table": (FAMILY.replace('"polynomial"', "{a = 1}"), "generator", "one of"),
    "algorithm": (GRAPH.replace('"bfs"', '["bfs"]'), "algorithm", "one of 'bfs'"),
    "graph-aggregate": (GRAPH + 'aggregate = ["max"]\n', "aggregate", "'sum' or 'max'"),
    "set-aggregate": (SET.replace('"sum"', '["sum"]'), "aggregate", "one of 'sum'"),
    "dataset": (DATASET.replace('"diabetes"', '["diabetes"]'), "dataset", "one of 'digits'"),
    "shift": (DATASET.replace('"top"', '["top"]'), "shift", "for 'diabetes' must be one of"),
    "label": (DATASET + 'label = [""]\n', "label", "for 'diabetes' must be one of ''"),
    "kind": (TASK + 'kind = ["set"]\n', "kind", "one of 'regression'"),
    "fitness": ('[lab]\nfitness = ["mean_ood_mse"]\n' + TASK, "fitness", "'mean_log_ratio' or"),
    "reference": ('[lab]\nreference = ["relu"]\n' + TASK, "reference", "a short name"),
    "family": (TASK.replace('"harmonic"', '["harmonic"]'), "family", "a short name"),
}


@pytest.mark.parametrize("case", UNHASHABLE, ids=list(UNHASHABLE))
def test_a_list_for_a_key_that_names_something_is_a_config_error(tmp_path: Path, case: str) -> None:
    text, key, expected = UNHASHABLE[case]
    message = str(_load(tmp_path, text))
    assert f"key {key!r} " in message and expected in message and ", got " in message


# --- 9. numbers beyond float32's reach -----------------------------------------------------------

OVERFLOWS = {
    "probe-1e40": ("[lab]\nprobe = [-1e40, 1e40]\n" + TASK, "probe", "[-1e+40, 1e+40]"),
    "probe-1e308": ("[lab]\nprobe = [-1e308, 1e308]\n" + TASK, "probe", "1e+308"),
    "test-1e30": ("[lab]\ntest = [-1e30, 1e30]\n" + TASK, "test", "1e+30"),
    "test-1e308": (TASK + "test = [-1e308, 1e308]\n", "test", "1e+308"),
    "train-per-variable": (
        TASK + "train = {x = [-1e7, 1.0]}\ntest = {x = [-1e7, 2.0]}\n",
        "train.x",
        "-10000000.0",
    ),
    "family-test": (FAMILY + "test = [-2.0, 1e9]\n", "test", "1000000000.0"),
    "noise": (TASK + "noise = 1e300\n", "noise", "1e+300"),
    "lab-noise": ("[lab]\nnoise = 101.0\n" + TASK, "noise", "101.0"),
}


@pytest.mark.parametrize("case", OVERFLOWS, ids=list(OVERFLOWS))
def test_values_beyond_float32_are_refused_naming_key_and_value(tmp_path: Path, case: str) -> None:
    text, key, value = OVERFLOWS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from sampling either
        message = str(_load(tmp_path, text))
    assert f"key {key!r} must " in message and value in message


def test_the_bounds_themselves_are_accepted(tmp_path: Path) -> None:
    text = f"[lab]\nprobe = [{-MAX_COORDINATE}, {MAX_COORDINATE}]\nnoise = 100.0\n" + TASK
    text += f"train = [{-MAX_COORDINATE / 2}, 1.0]\ntest = [{-MAX_COORDINATE}, 2.0]\n"
    path = tmp_path / "lab.toml"
    path.write_text(text.replace("sin(3*x)", "sin(x/100000)"), encoding="utf-8")
    lab = load_lab(path)
    assert lab.probe == (-MAX_COORDINATE, MAX_COORDINATE) and lab.tasks[0].settings.noise == 100


@pytest.mark.parametrize(
    "extra",
    [
        'target = "exp(exp(exp(x)))"\ntest = [-1.6, 1.6]\n',  # finite in float64 only
        'target = "x"\ntest = [-1e5, 1e5]\n',  # within the coordinate bound, far out of scale
        'target = "exp(20*x)"\n',
    ],
    ids=["exp-exp-exp", "wide-test", "steep"],
)
def test_a_hand_written_target_beyond_the_ood_scale_is_refused(tmp_path: Path, extra: str) -> None:
    task = '[[task]]\nname = "big"\nfamily = "f"\n' + extra
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        message = str(_load(tmp_path, task))
    assert "[[task]] 'big' (#1): key 'target' " in message
    assert "above 1000" in message and "float32" in message


def test_a_set_task_beyond_the_ood_scale_is_refused(tmp_path: Path) -> None:
    text = SET.replace('element = "x"', 'element = "exp(4*x)"') + "test = [-3.0, 3.0]\n"
    message = str(_load(tmp_path, text))
    assert "key 'element' 'exp(4 * x)' reaches " in message and "above 1000" in message
    assert "lower 'test_size', narrow 'test' or rescale" in message  # the set's own remedy


# --- 10. the lab's total work --------------------------------------------------------------------


def _never_sample(*args: object) -> None:
    raise AssertionError("the loader sampled data before checking the lab's size")


def _balanced_sum(n: int, first: int = 0) -> str:
    """Returns a0 + ... + a(n-1) as a balanced tree (a chain would pass the depth limit)."""
    if n == 1:
        return f"a{first}"
    half = n // 2
    return f"({_balanced_sum(half, first)}+{_balanced_sum(n - half, first + half)})"


SIZES = {
    "family-count": (
        "[lab]\nn_train = 1000000\nn_test = 1000000\n" + FAMILY.replace("2", "1000"),
        "training work",
        "[[family]] 'poly' (1000 tasks)",
    ),
    "one-huge-task": (
        "[lab]\nwidth = 4096\ndepth = 16\nsteps = 1000000\nseeds = 100\nn_train = 1000000\n" + TASK,
        "training work",
        "[[task]] 'sine'",
    ),
    # Each pair's messages are elementwise work (loader.PAIR_WORK): 256 nodes, width 1.
    "graph-pairs": (
        "[lab]\nwidth = 1\ndepth = 1\nsteps = 12000\nseeds = 2\nn_train = 4\nn_test = 4\n"
        + GRAPH.replace("nodes = 8\ntest_nodes = 12", "nodes = 255\ntest_nodes = 256\nrounds = 16"),
        "training work",
        "[[task]] 'g'",
    ),
    "many-test-points": (
        "[lab]\nwidth = 1\ndepth = 1\nsteps = 1\nseeds = 1\nn_train = 4\nn_test = 1000000\n"
        + FAMILY.replace("2", "1000"),
        "points sampled",
        "[[family]] 'poly' (1000 tasks)",
    ),
    # One point is one number per variable: 250 of them make a small task's points large.
    "many-variables": (
        "[lab]\nwidth = 1\ndepth = 1\nsteps = 1\nseeds = 1\nn_train = 100000\nn_test = 100000\n"
        '[[task]]\nname = "wide"\nfamily = "f"\ntarget = "' + _balanced_sum(250) + '"\n',
        "points sampled",
        "[[task]] 'wide'",
    ),
    "many-tasks": (
        "".join(
            TASK.replace("sine", f"t{i}") + f"n_test = 1000000\ndata_seed = {i}\n"
            for i in range(11)
        ),
        "points sampled",
        "[[task]] 't0'",
    ),
}


@pytest.mark.parametrize("case", SIZES, ids=list(SIZES))
def test_an_absurd_lab_is_refused_before_any_data_is_sampled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    text, what, largest = SIZES[case]
    monkeypatch.setattr(loader, "sample", _never_sample)
    message = str(_load(tmp_path, text))
    limit = f"{MAX_LAB_WORK if what == 'training work' else MAX_LAB_POINTS:.0e}"
    assert f"the lab's {what} is " in message and f"above the limit of {limit}" in message
    assert largest in message and "lower " in message


def test_a_lab_of_too_many_tasks_is_refused_before_any_is_parsed_or_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "sample", _never_sample)
    # A 100 KB file of families asked for 1.6 million tasks: the loader drew them for hours.
    small = "[lab]\nsteps = 1\nseeds = 1\nn_train = 4\nn_test = 4\nwidth = 1\ndepth = 1\n"
    families = "".join(FAMILY.replace('"poly"', f'"p{i}"').replace("2", "1000") for i in range(11))
    message = str(_load(tmp_path, small + families))
    assert message.endswith(
        f"the lab has 11000 tasks (0 [[task]] tables and 11000 from the key 'count' of 11 "
        f"[[family]] tables), above the limit of {MAX_LAB_TASKS}: remove tables or lower a count"
    )
    tables = "".join(TASK.replace("sine", f"t{i}") for i in range(MAX_LAB_TASKS + 1))
    message = str(_load(tmp_path, small + tables))
    assert f"the lab has {MAX_LAB_TASKS + 1} tasks ({MAX_LAB_TASKS + 1} [[task]] tables)" in message


def test_a_task_written_twice_under_two_names_is_refused(tmp_path: Path) -> None:
    # The same numbers under another name and family, spelled differently: counted twice.
    twice = TASK + TASK.replace("sine", "again").replace("harmonic", "h2").replace("3*x", "3 * x")
    message = str(_load(tmp_path, twice))
    assert message.endswith(
        "[[task]] 'again' (#2): is the same task as #1 'sine' (all its keys but 'name' and "
        "'family' agree): it would count twice in the fitness"
    )
    path = tmp_path / "lab.toml"
    path.write_text(twice + "seeds = 2\n", encoding="utf-8")
    assert len(load_lab(path).tasks) == 2  # another setting: another task


def test_two_families_drawing_the_same_tasks_are_refused(tmp_path: Path) -> None:
    again = FAMILY.replace('"poly"', '"again"').replace("2", "5")
    message = str(_load(tmp_path, FAMILY + again))
    assert "[[family]] 'again' (#2): key 'seed' 0 draws the same tasks as [[family]] 'poly' " in (
        message
    )
    path = tmp_path / "lab.toml"
    path.write_text(FAMILY + again + "seed = 1\n", encoding="utf-8")
    assert len(load_lab(path).tasks) == 7


def test_every_shipped_lab_is_far_below_the_size_limits() -> None:
    for name in SUITES:
        try:
            lab = load_lab(suite_path(name))
        except ConfigError as exc:  # the real suite without scikit-learn
            assert "scikit-learn" in str(exc)
            continue
        work, points = (sum(loader._task_cost(t)[k] for t in lab.tasks) for k in (0, 1))
        assert work * 50 < MAX_LAB_WORK and points * 50 < MAX_LAB_POINTS, name


# --- 12. the tasks file itself -------------------------------------------------------------------


def test_a_tasks_file_over_the_size_limit_is_refused_without_reading_it_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "huge.toml"
    with path.open("wb") as f:
        f.truncate(2 << 30)  # a 2 GB sparse file: nothing on disk, everything on a read
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            load_lab(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (
        f"{path}: cannot read the tasks file: it is larger than the limit of "
        f"{MAX_TASKS_FILE_BYTES} bytes"
    )
    assert peak < 8 * MAX_TASKS_FILE_BYTES
    # One byte over is refused; a file at the limit is read (and parsed).
    path.write_bytes(TASK.encode() + b"#" * (MAX_TASKS_FILE_BYTES - len(TASK) + 1))
    with pytest.raises(ConfigError, match="larger than the limit"):
        load_lab(path)
    path.write_bytes(TASK.encode() + b"#" * (MAX_TASKS_FILE_BYTES - len(TASK)))
    assert load_lab(path).tasks[0].name == "sine"


def test_an_integer_too_long_for_python_is_invalid_toml(tmp_path: Path) -> None:
    # tomllib lets int() raise a plain ValueError (not a TOMLDecodeError) past 4300 digits.
    message = str(_load(tmp_path, f"[lab]\ndata_seed = {'9' * 5000}\n" + TASK))
    # In minact's words on every Python (3.10's and 3.11's differ), without advice for code.
    assert message.endswith("lab.toml: invalid TOML: an integer of more than 4300 digits")


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(TASK, encoding="utf-8-sig")  # as Notepad saves "UTF-8 with BOM"
    assert load_lab(path).tasks[0].name == "sine"


def test_an_empty_task_table_says_so(tmp_path: Path) -> None:
    message = str(_load(tmp_path, "[[task]]\n"))
    assert message.endswith("[[task]] #1: key 'name' is required; got an empty table")


def test_a_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    link = tmp_path / "zero.toml"
    link.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match=r"zero.toml: .* not a regular file \(a character device"):
        load_lab(link)


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    target = tmp_path / "real.toml"
    target.write_text(TASK, encoding="utf-8")
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    assert load_lab(link).tasks[0].name == "sine"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    exc = raised_on_fifo(fifo, load_lab)
    assert isinstance(exc, ConfigError)
    assert (
        str(exc)
        == f"{fifo}: cannot read the tasks file: it is not a regular file (a FIFO (named pipe))"
    )
