"""A first session as README tells it: evolve, then show, export and rescore what it found."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS

runner = CliRunner()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A finished offline run on a lab with one network per task, as the default lab has."""
    base = tmp_path_factory.mktemp("first-session")
    lab = base / "one_seed.toml"
    text = TINY_TASKS.read_text()
    assert "seeds = 2\n" in text
    lab.write_text(text.replace("seeds = 2\n", "seeds = 1\n"))
    paths = {"base": base, "lab": lab, "cache": base / "cache", "runs": base / "runs"}
    result = _invoke(paths, "evolve", "--offline", "--budget", "2", "--tasks", str(lab))
    assert result.exit_code == 0, result.stderr
    yield paths


def _invoke(paths: dict[str, Path], *args: str) -> Any:
    return runner.invoke(
        app, [*args, "--runs-dir", str(paths["runs"]), "--cache-dir", str(paths["cache"])]
    )


def _new(paths: dict[str, Path]) -> dict[str, Any]:
    (run,) = paths["runs"].iterdir()
    doc = json.loads((run / "ranking.json").read_text())
    return next(c for c in doc["candidates"] if c["status"] == "ok" and not c["baseline"])


def test_a_name_from_the_ranking_table_is_answered_with_its_hash(
    session: dict[str, Path],
) -> None:
    # The table names candidates ("c1"); `show c1` says which hash to give instead.
    best = _new(session)
    for command in ("show", "export"):
        result = _invoke(session, command, best["name"])
        assert result.exit_code == 2  # a usage error: a name is no hash prefix
        flat = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # the box wraps lines
        assert "not a hash prefix" in flat
        assert f"{best['name']} is {best['code_hash'][:10]} in run" in flat
    shown = _invoke(session, "show", best["code_hash"][:10])
    assert shown.exit_code == 0, shown.stderr


def test_an_export_claims_no_seed_spread_the_lab_did_not_measure(
    session: dict[str, Path], tmp_path: Path
) -> None:
    best = _new(session)
    assert best["fitness_spread"] is None  # one network per task: no spread over seeds
    target = tmp_path / "act.py"
    result = _invoke(session, "export", best["code_hash"][:10], "-o", str(target))
    assert result.exit_code == 0, result.stderr
    line = next(x for x in target.read_text().splitlines() if x.startswith("Fitness "))
    # The report's digits for a log-ratio ("+.3f").
    assert line.startswith(f"Fitness {best['fitness']:+.3f} (mean log OOD-MSE ratio")
    assert "±" not in line


def test_rescore_shows_its_progress_on_a_terminal(session: dict[str, Path], tmp_path: Path) -> None:
    # A lab no one trained on: every baseline trains again, as on a suite of README's.
    other = tmp_path / "other.toml"
    other.write_text(session["lab"].read_text().replace("sin(3*x)", "cos(2*x)"))
    args = ["rescore", "--tasks", str(other), "--top", "1", "--out", str(tmp_path / "out")]
    args += ["--runs-dir", str(session["runs"]), "--cache-dir", str(session["cache"])]
    shown = _terminal_stderr([sys.executable, "-m", "minact", *args])
    assert "training" in shown, shown
    assert (tmp_path / "out" / "ranking.json").is_file()


def _terminal_stderr(command: list[str]) -> str:
    """Runs `command` with stderr on a pseudo-terminal, as in a user's shell; returns what
    it wrote there (read while it runs, so that a full terminal never blocks it)."""
    main, side = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=side, env=env
    )
    os.close(side)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                try:
                    data = os.read(main, 65536)
                except OSError:  # the other end is closed: the command has ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(main)
        code = proc.wait()
    text = b"".join(chunks).decode(errors="replace")
    assert code == 0, text
    return text
