"""Shared fixtures: a tiny lab, a temporary cache, and helpers to write candidate files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from minact.cache import FitnessCache
from minact.evaluate import EVALUATOR_VERSION
from minact.lab.loader import load_lab
from minact.lab.task import Lab

ASSETS = Path(__file__).parent / "assets"
TINY_TASKS = ASSETS / "tiny_tasks.toml"


@pytest.fixture
def tiny_lab() -> Lab:
    """Returns the two-task test lab."""
    return load_lab(TINY_TASKS)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[FitnessCache]:
    """Yields a fitness cache in a temporary directory."""
    with FitnessCache(tmp_path / "cache", EVALUATOR_VERSION) as c:
        yield c


def write_candidate(directory: Path, name: str, body: str) -> Path:
    """Writes `def activation(x): return <body>` to directory/name.py and returns the path."""
    path = directory / f"{name}.py"
    path.write_text(
        "import math\nimport torch\nimport torch.nn.functional as F\n\n\n"
        f"def activation(x):\n    return {body}\n"
    )
    return path
