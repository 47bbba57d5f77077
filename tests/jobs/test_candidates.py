"""Tests for minact.jobs.candidates: `minact export` refuses what crashed or no longer validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from minact import seeds
from minact.cache import FitnessCache
from minact.candidate import Hash
from minact.errors import ConfigError
from minact.evaluate import EVALUATOR_VERSION
from minact.jobs.candidates import export
from minact.runs.catalog import Found
from minact.score import Conditions, TaskResult


def _found(source: str) -> Found:
    return Found(code_hash="ab12" * 16, source=source)


def test_the_module_says_it_was_checked(tmp_path: Path) -> None:
    gelu = seeds.seed_candidate("gelu")
    target, name = export(Found(gelu.code_hash, gelu.source), tmp_path / "g.py", "g", tmp_path)
    text = target.read_text()
    assert name == "g" and "Checked by minact" in text and "static validation" in text
    assert "float32" in text and "no run records its score" in text


def test_code_whose_evaluation_crashed_is_not_exported(tmp_path: Path) -> None:
    found = _found(seeds.seed_candidate("gelu").source)
    with FitnessCache(tmp_path / "cache", EVALUATOR_VERSION) as cache:
        crash = TaskResult("crashed", "training: the worker died (signal 8)")
        cache.put_transient(Hash(found.code_hash), "task", "lab", crash, Conditions(120.0, "cpu"))
    with pytest.raises(ConfigError, match=r"crashed the evaluation worker.*signal 8"):
        export(found, tmp_path / "out.py", None, tmp_path / "cache")
    assert not (tmp_path / "out.py").exists()


def test_code_that_no_longer_validates_is_not_exported(tmp_path: Path) -> None:
    source = "def activation(x):\n    return x * (x > 0)\n"  # cached before the float-only rule
    with pytest.raises(ConfigError, match=r"does not pass minact's validation.*comparison"):
        export(_found(source), tmp_path / "out.py", None, None)
