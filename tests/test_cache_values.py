"""A cached result whose numbers no training could have produced (edited by a user or
another tool) is a miss with a warning, never a number in a ranking nor a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import load_lab
from minact.score import TaskResult
from minact.validate import validate
from tests.conftest import TINY_TASKS

H = Hash("c0de" * 16)
B = Hash("beef" * 16)


@pytest.mark.parametrize(
    "losses",
    [{"ood": [-4.0, -6.0]}, {"id": [0.1, -0.2]}, {"ood": [1e308, 1e308]}],
    ids=["negative-ood", "negative-id", "beyond-float32"],
)
def test_impossible_losses_are_a_miss(tmp_path: Path, losses: dict[str, Any]) -> None:
    # Served, a negative reference turned every candidate's log-ratio upside down, and
    # losses past float32's range broke the fitness with "math domain error".
    entry = {**TaskResult("ok", "", (4.0, 6.0), (0.1, 0.2)).to_dict(), **losses}
    with pytest.raises(ValueError, match="squared errors"):
        TaskResult.from_dict(entry)
    assert TaskResult.from_dict({**entry, "ood": [0.0, 3e38], "id": [0.0, 1.0]}).ok


def test_a_result_with_another_seed_count_than_its_task_is_a_miss(tmp_path: Path) -> None:
    with FitnessCache(tmp_path / "c", "1") as cache:
        cache.put_result(B, "task", "lab", TaskResult("ok", "", (1.0,), (2.0,)), H)
        assert cache.get_result(B, "task", "lab", seeds=3) is None
        assert "unreadable (ValueError: 1 losses for a task of 3 seeds)" in cache.warnings[0]
        assert cache.get_result(B, "task", "lab", seeds=1) is not None
        # A failure records the seeds it reached: its count says nothing.
        cache.put_result(H, "task", "lab", TaskResult("nonfinite", "nan at step 3"), H)
        assert cache.get_result(H, "task", "lab", seeds=3) is not None


def _relu() -> Candidate:
    c = validate("def activation(x):\n    return F.relu(x)\n", name="relu")
    assert isinstance(c, Candidate), c
    return c


def test_the_evaluator_trains_again_over_an_entry_of_too_few_seeds(tmp_path: Path) -> None:
    # The tiny lab has 2 seeds a task; an entry cut to one loss was ranked as the result.
    lab, relu = load_lab(TINY_TASKS), _relu()
    config = EvaluatorConfig(threads=1)
    with FitnessCache(tmp_path / "c", EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, config) as ev:
            (first,) = ev.score([relu])
        assert first.behaviour_hash is not None
        for task in lab.tasks:
            stored = cache.get_result(first.behaviour_hash, task.digest(), lab.digest())
            assert stored is not None and stored.producer is not None
            cut = TaskResult("ok", "", (1e-3,), (1e-3,), trace=stored.result.trace, traced=2)
            cache.put_result(first.behaviour_hash, task.digest(), lab.digest(), cut, relu.code_hash)
        with Evaluator(lab, cache, config) as ev:
            (again,) = ev.score([relu])
        assert not again.cached and again.tasks == first.tasks
        assert any("1 losses for a task of 2 seeds" in w for w in cache.warnings)
