"""The loader's bound on training memory (minact.lab.memory): a lab whose networks would not
fit in memory together is refused before any data is sampled, naming the task and the keys
to lower; the shipped labs are far below it. Nothing here trains."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from minact.errors import ConfigError
from minact.lab import loader, memory
from minact.lab.loader import MAX_TRAINING_BYTES, lab_with_seeds, load_lab
from minact.lab.suites import SUITES, suite_path
from tests.lab import load_error

TASK = '[[task]]\nname = "sine"\nfamily = "harmonic"\ntarget = "sin(3*x)"\n'
GRAPH = '[[task]]\nname = "g"\nfamily = "graphs"\nkind = "graph"\nalgorithm = "bfs"\n'
SET = '[[task]]\nname = "s"\nfamily = "sets"\nkind = "set"\nelement = "x"\n'
SET += 'aggregate = "sum"\nsize = 4\ntest_size = 5\n'
FAMILY = '[[family]]\nname = "poly"\ngenerator = "polynomial"\ncount = 10\n'
# Within every other limit (training work 1e12 at steps = 1), yet some 480 GiB of activations.
HUGE = "[lab]\nwidth = 250\ndepth = 16\nsteps = 1\nseeds = 1\nn_train = 1000000\n"


def _never_sample(*args: object) -> None:
    raise AssertionError("the loader sampled data before checking the lab's memory")


def _refusal(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Returns the ConfigError message of loading `text`, which must not sample any data."""
    monkeypatch.setattr(loader, "sample", _never_sample)
    message = load_error(tmp_path, text)
    assert "above the limit of 32.0 GiB (minact/lab/memory.py)" in message
    return message


@pytest.mark.parametrize(
    ("text", "named", "keys"),
    [
        (HUGE + TASK, "[[task]] 'sine' (#1): training needs about", "n_train, width, depth"),
        (
            HUGE.replace("250", "64") + FAMILY,
            "[[family]] 'poly' (10 tasks): training needs",
            "n_train, width, depth or seeds, or count",
        ),
        (
            "[lab]\nwidth = 128\nsteps = 1\nseeds = 1\nn_train = 250000\nn_test = 4\n" + SET,
            "[[task]] 's' (#1)",
            "n_train, size, width",
        ),
        (
            "[lab]\nwidth = 512\nsteps = 1\nseeds = 1\nn_train = 4\nn_test = 4\n"
            + GRAPH
            + "nodes = 255\ntest_nodes = 256\nrounds = 64\n",
            "[[task]] 'g' (#1)",
            "n_train, nodes, rounds, width or seeds",
        ),
    ],
    ids=["mlp", "family", "set", "graph"],
)
def test_a_task_beyond_the_memory_bound_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, named: str, keys: str
) -> None:
    message = _refusal(tmp_path, text, monkeypatch)
    assert named in message and f"lower {keys}" in message


def test_tasks_that_train_as_one_batch_count_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five tasks of 7.6 GiB each fit alone; of one kind and settings, they train together.
    lab = "[lab]\nwidth = 64\ndepth = 4\nsteps = 1\nseeds = 1\nn_train = 250000\nn_test = 4\n"
    tasks = [TASK.replace("sine", f"t{i}").replace("3*x", f"{i}*x") for i in range(1, 6)]
    message = _refusal(tmp_path, lab + "".join(tasks), monkeypatch)
    assert "5 tables of tasks of the same kind and settings train as one batch" in message
    assert "[[task]] 't1' (#1) alone needs 7.6 GiB" in message


def test_the_batch_key_separates_what_the_trainer_trains_apart() -> None:
    # Other settings make other batches, trained one after the other: each fits.
    lab = load_lab(suite_path("classic"))
    big = replace(lab.tasks[0].settings, width=64, depth=4, steps=1, seeds=1, n_train=250000)
    tasks = [replace(t, settings=big) for t in lab.tasks[:5]]
    with pytest.raises(ConfigError, match="5 tables of tasks of the same kind"):
        memory.check_memory(Path("lab.toml"), tasks, [])
    apart = [replace(t, settings=replace(big, n_train=250000 - i)) for i, t in enumerate(tasks)]
    memory.check_memory(Path("lab.toml"), apart, [])  # five batches of 7.6 GiB


def test_more_seeds_on_the_command_line_are_checked_too() -> None:
    lab = load_lab(suite_path("classic"))
    big = replace(lab.tasks[0].settings, width=512, depth=2, steps=1, seeds=1, n_train=65536)
    one = replace(lab, tasks=(replace(lab.tasks[0], settings=big),))
    assert memory.training_bytes(one.tasks[0]) < MAX_TRAINING_BYTES
    with pytest.raises(ConfigError) as info:
        lab_with_seeds(one, 12, "--seeds")
    assert str(info.value).startswith("--seeds 12: ") and "lower n_train" in str(info.value)


def test_the_estimate_grows_with_every_key_it_names() -> None:
    task = load_lab(suite_path("classic")).tasks[0]
    base = memory.training_bytes(task)
    for key in ("n_train", "width", "depth", "seeds"):
        bigger = replace(
            task, settings=replace(task.settings, **{key: 2 * getattr(task.settings, key)})
        )
        assert memory.training_bytes(bigger) > base, key


def test_every_shipped_lab_is_far_below_the_memory_bound() -> None:
    for name in SUITES:
        try:
            lab = load_lab(suite_path(name))
        except ConfigError as exc:  # the real suite without scikit-learn
            assert "scikit-learn" in str(exc)
            continue
        # All of a lab's tasks at once: more than any one batch holds.
        assert sum(memory.training_bytes(t) for t in lab.tasks) * 100 < MAX_TRAINING_BYTES, name
