"""Tests for the cascade setting of a lab ([lab.cascade]) and its stage-1 tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from minact.errors import ConfigError
from minact.lab.cascade import Cascade, stage_tasks
from minact.lab.loader import load_lab

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FOUR_TASKS = """
[[task]]
name = "a"
family = "f"
target = "sin(3*x)"

[[task]]
name = "b"
family = "f"
target = "cos(2*x)"

[[task]]
name = "c"
family = "g"
target = "x**2"
"""


def _lab(tmp_path: Path, lab_table: str) -> Path:
    path = tmp_path / "tasks.toml"
    path.write_text(lab_table + FOUR_TASKS, encoding="utf-8")
    return path


def test_a_cascade_table_is_read_with_its_defaults(tmp_path: Path) -> None:
    lab = load_lab(_lab(tmp_path, "[lab.cascade]\ntasks = 2\n"))
    assert lab.cascade == Cascade(tasks=2, seed=0, top=10, margin=0.3)
    full = load_lab(_lab(tmp_path, "[lab.cascade]\ntasks = 1\nseed = 3\ntop = 4\nmargin = 0.1\n"))
    assert full.cascade == Cascade(tasks=1, seed=3, top=4, margin=0.1)


def test_no_table_or_false_means_no_cascade(tmp_path: Path) -> None:
    assert load_lab(_lab(tmp_path, "")).cascade is None
    assert load_lab(_lab(tmp_path, "[lab]\ncascade = false\n")).cascade is None


def test_the_cascade_changes_no_digest(tmp_path: Path) -> None:
    plain = load_lab(_lab(tmp_path, ""))
    staged = load_lab(_lab(tmp_path, "[lab.cascade]\ntasks = 2\n"))
    assert plain.digest() == staged.digest()
    assert [t.digest() for t in plain.tasks] == [t.digest() for t in staged.tasks]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[lab]\ncascade = 3\n", "key 'cascade' must be a table ([lab.cascade]"),
        ("[lab]\ncascade = true\n", "key 'cascade' must be a table"),
        ("[lab.cascade]\nseed = 1\n", "[lab.cascade]: key 'tasks' is required"),
        ("[lab.cascade]\ntasks = 3\n", "[lab.cascade]: key 'tasks' must be an integer in 1..2"),
        ("[lab.cascade]\ntasks = 0\n", "key 'tasks' must be an integer in 1..2, got 0"),
        ("[lab.cascade]\ntasks = 1\ntop = 0\n", "key 'top' must be an integer >= 1, got 0"),
        (
            "[lab.cascade]\ntasks = 1\nseed = 1" + "0" * 30 + "\n",
            "key 'seed' must be an integer >= 0 and at most",
        ),
        ("[lab.cascade]\ntasks = 1\nmargin = -0.1\n", "key 'margin' must be a number >= 0"),
        ("[lab.cascade]\ntasks = 1\nmargin = 'x'\n", "key 'margin' must be a number"),
        ("[lab.cascade]\ntasks = 1\nstage = 2\n", "unknown key 'stage' = 2; known: tasks, seed"),
    ],
)
def test_a_bad_cascade_names_the_file_the_table_and_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_lab(_lab(tmp_path, table))
    assert str(tmp_path / "tasks.toml") in str(err.value)
    assert message in str(err.value)


def test_a_one_task_lab_cannot_have_a_cascade(tmp_path: Path) -> None:
    path = tmp_path / "one.toml"
    path.write_text(
        '[lab.cascade]\ntasks = 1\n[[task]]\nname = "a"\nfamily = "f"\ntarget = "x**2"\n'
    )
    with pytest.raises(ConfigError, match="needs a lab of 2 or more tasks; it has 1"):
        load_lab(path)


def test_stage_tasks_keep_each_familys_share_and_the_lab_order() -> None:
    lab = load_lab(Path(__file__).resolve().parents[2] / "minact" / "lab" / "data" / "tasks.toml")
    for n in (4, 8, 20, 28):
        chosen = stage_tasks(lab.tasks, n, seed=0)
        assert len(chosen) == n
        families = [t.family for t in chosen]
        assert {f: families.count(f) for f in set(families)} == dict.fromkeys(
            lab.families(), n // 4
        )
        positions = [lab.tasks.index(t) for t in chosen]
        assert positions == sorted(positions)
    # The rule is a pure function of (tasks, n, seed); another seed is another draw.
    assert stage_tasks(lab.tasks, 20, 0) == stage_tasks(lab.tasks, 20, 0)
    assert stage_tasks(lab.tasks, 20, 0) != stage_tasks(lab.tasks, 20, 1)


def test_uneven_shares_round_by_largest_remainder(tmp_path: Path) -> None:
    lab = load_lab(_lab(tmp_path, ""))  # families f (2 tasks) and g (1 task)
    assert [t.family for t in stage_tasks(lab.tasks, 2, 0)].count("f") == 1
    assert [t.family for t in stage_tasks(lab.tasks, 1, 0)] == ["f"]  # 2/3 beats 1/3
    with pytest.raises(ValueError, match=r"1\.\.3 tasks, got 4"):
        stage_tasks(lab.tasks, 4, 0)


def test_the_cascade_test_lab_loads() -> None:
    lab = load_lab(ASSETS / "cascade_tasks.toml")
    assert lab.cascade == Cascade(tasks=2, seed=0, top=1, margin=0.0)
    assert sorted(t.family for t in stage_tasks(lab.tasks, 2, 0)) == ["harmonic", "polynomial"]
