"""Shared fixtures: a tiny lab, a temporary cache, helpers to write candidate files, and a
finished offline run to copy."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minact.cache import FitnessCache
from minact.candidate import Candidate
from minact.evaluate import EVALUATOR_VERSION
from minact.lab.loader import load_lab
from minact.lab.task import Lab
from minact.validate import validate

# CI services ask for colour (GITHUB_ACTIONS, FORCE_COLOR, PY_COLORS, TTY_COMPATIBLE), and
# Typer and Rich then write escape codes into the output the tests read; a terminal's
# COLUMNS narrows the boxes of usage errors, which wrap a long value inside a word. The
# tests, and the commands they start, get what a pipe gets (80 columns) wherever they run;
# a test that needs another width passes its own COLUMNS.
os.environ["_TYPER_FORCE_DISABLE_TERMINAL"] = "1"
os.environ["COLUMNS"] = "80"
for _name in ("FORCE_COLOR", "PY_COLORS", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERMINAL_WIDTH"):
    os.environ.pop(_name, None)

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


def candidate_source(body: str) -> str:
    """Returns a candidate module: torch, F and math imported; `def activation(x): return body`."""
    return (
        "import math\nimport torch\nimport torch.nn.functional as F\n\n\n"
        f"def activation(x):\n    return {body}\n"
    )


def candidate(body: str, name: str = "") -> Candidate:
    """Returns the validated Candidate of `candidate_source(body)`."""
    c = validate(candidate_source(body), name=name)
    assert isinstance(c, Candidate), c
    return c


def write_candidate(directory: Path, name: str, body: str) -> Path:
    """Writes `candidate_source(body)` to directory/name.py and returns the path."""
    path = directory / f"{name}.py"
    path.write_text(candidate_source(body))
    return path


def raised_on_fifo(fifo: Path, read: Callable[[Path], object]) -> BaseException | None:
    """Returns what `read(fifo)` raised (None if nothing), failing the test if it blocks
    on the FIFO: nobody writes to it, so a reader that opens it for reading waits for ever."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            read(fifo)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # release the blocked reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"reading {fifo.name} blocked on a FIFO")
    return outcome[0]


def offline_run(base: Path, *, budget: int, seed: int, run_id: str) -> Path:
    """Returns the directory of a finished `minact evolve --offline` run on the tiny lab,
    written as a user writes it, to base/runs (its cache: base/cache)."""
    from typer.testing import CliRunner

    from minact.cli import app

    args = ["evolve", "--offline", "--budget", str(budget), "--tasks", str(TINY_TASKS)]
    args += ["--seed", str(seed), "--run-id", run_id]
    args += ["--cache-dir", str(base / "cache"), "--runs-dir", str(base / "runs")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return base / "runs" / run_id
