"""Targets with a pole or a non-finite value strictly inside their boxes: refused at load time
in one line naming the file, the task, the key, the point and the value (sampling.check_poles,
and the sampled points' own check), while steep, oscillating or narrow but finite targets and
every tasks file shipped in the repository still load."""

from __future__ import annotations

from pathlib import Path

import pytest

from minact.lab.loader import load_lab
from tests.lab import load_error

ROOT = Path(__file__).resolve().parents[2]
TASK = '[[task]]\nname = "pole"\nfamily = "f"\ntarget = "{target}"\n'
BOXES = "[lab]\ntrain = [-1.0, 1.0]\ntest = [-2.0, 2.0]\n"


def _task(target: str, extra: str = "") -> str:
    return BOXES + TASK.format(target=target) + extra


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        # Finite at every sampled point and at the boxes' bounds and 0: found by the lines.
        ("1/(x - 0.3)", "not finite at x = 0.3 on the training box (value inf"),
        ("1000 + 1e-6/(x - 0.3)", "not finite at x = 0.3 on the training box"),
        ("abs(x - 1.31)**-0.4", "not finite at x = 1.31 on the OOD region"),
        ("tan(x)", "grows without bound near x = -1.5708 on the OOD region (value -1.63e+16"),
        ("0.001*tan(x)", "grows without bound near x = -1.5708"),
        ("1/sin(3*x - 0.5)", "not finite at x = 0.166667 on the training box"),
        # Two poles that the grid meets exactly, finite there (pi is rounded): neither may
        # count as the rest of the other's line.
        ("tan(pi*x/2)", "grows without bound near x = -1 on the training box (value -1.63e+16"),
        ("1/sinc(x)", "grows without bound near x = -2 on the OOD region"),
        # Finite everywhere, but a spike far narrower than the grid's cells and the samples.
        ("1/((x - 0.3)**2 + 1e-12)", "grows without bound near x = 0.3 on the training box"),
        # Two inputs: a pole along a line, met by the lines along either axis.
        ("1/(x1 + 2*x2 - 0.1)", "not finite at x1 = 0.266667, x2 = -0.0833333"),
        ("tan(x1 + x2)", "grows without bound near x1 = "),
        ("1/(x1*x2*x3 - 0.5)", "not finite at x1 = "),
    ],
)
def test_a_pole_inside_the_boxes_is_refused_naming_point_and_value(
    tmp_path: Path, target: str, reason: str
) -> None:
    message = load_error(tmp_path, _task(target))
    assert "[[task]] 'pole' (#1): key 'target' " in message, message
    assert reason in message, message
    assert message.endswith("choose boxes without it or rewrite the target"), message


def test_a_non_finite_sampled_point_is_named_with_its_value(tmp_path: Path) -> None:
    message = load_error(tmp_path, _task("sqrt(x - 0.5)"))
    assert "is not finite on the training box: nan at x = " in message, message
    assert "(a sampled point)" in message


@pytest.mark.parametrize("target", ["x*1e200", "exp(x)*1e300"])
def test_a_target_too_large_to_standardise_is_refused(tmp_path: Path, target: str) -> None:
    # Its variance overflows float64: the standardised targets were all 0, a task of nothing.
    message = load_error(tmp_path, _task(target))
    assert "on the training points: too large to standardise" in message, message
    assert "[[task]] 'pole' (#1): key 'target' " in message, message


def test_a_set_element_with_a_pole_is_refused(tmp_path: Path) -> None:
    sets = 'kind = "set"\naggregate = "sum"\nsize = 4\ntest_size = 8\n'
    text = BOXES + TASK.format(target="x").replace("target", "element") + sets
    text = text.replace('element = "x"', 'element = "1/(x - 0.3)"')
    assert "not finite at x = 0.3" in load_error(tmp_path, text)


@pytest.mark.parametrize(
    "target",
    [
        "x**5 - x",
        "exp(3*x)",
        "sin(20*x)",
        "exp(-(x - 0.3)**2/0.01)",  # a bump narrower than the train box, wider than a cell
        "1/(x**2 + 0.1)",
        "abs(x - 0.3)",  # a kink: a minimum, not a pole
        "sqrt(x1**2 + x2**2 - 2*x1*x2*cos(x3))",  # cancellation where x1 = x2 and x3 = 0
        "sin(20*x1)*cos(20*x2)",
        "maximum(x1 - 1.99, 0) + x2",
        "x1*x2/(0.3 + x3**2)",
    ],
)
def test_steep_oscillating_and_narrow_finite_targets_load(tmp_path: Path, target: str) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(_task(target), encoding="utf-8")
    assert load_lab(path).tasks[0].target is not None


def test_a_classification_boundary_on_a_pole_is_not_refused(tmp_path: Path) -> None:
    # Only the sign of a classification target counts: its magnitude near 0.3 does not.
    path = tmp_path / "lab.toml"
    path.write_text(_task("1/(x - 0.31) + 0.5", 'kind = "classification"\n'), encoding="utf-8")
    assert load_lab(path).tasks[0].kind == "classification"


TASK_FILES = [
    ROOT / "tasks.toml",
    *sorted((ROOT / "minact" / "lab" / "data").glob("*.toml")),
    *sorted((ROOT / "tests" / "assets").glob("*.toml")),
]


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: p.name)
def test_every_tasks_file_in_the_repository_loads(path: Path) -> None:
    if path.name == "real.toml":  # datasets only (no target expression): slow to load
        pytest.skip("no target expressions")
    assert load_lab(path).tasks
