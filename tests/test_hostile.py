"""The hostile-candidate corpus (tests/hostile/*.py), scored as a user would score files.

Each file starts with `# expect: KIND: REASON`. All of them go through one `minact score`
process with a secret in its environment: each must end as the expected rejection or
failure with a clear reason, within a bounded time, the process must survive, and
nothing may be written outside the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ASSETS

CORPUS = sorted((Path(__file__).parent / "hostile").glob("*.py"))
SECRET = "sk-hostile-corpus-secret-42"


def _expectation(path: Path) -> tuple[str, str]:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), path
    kind, _, reason = first.removeprefix("# expect: ").partition(": ")
    return kind.strip(), reason.strip()


def test_the_corpus_is_large_and_varied() -> None:
    kinds = {_expectation(p)[0] for p in CORPUS}
    assert len(CORPUS) >= 40
    # No file times out any more: big-integer arithmetic, the last way to hang the worker past
    # validation, is refused; test_evaluate builds such a candidate directly instead.
    assert {"invalid", "nonfinite", "bad_output", "error", "too_costly", "ok"} <= kinds


@pytest.mark.slow
def test_every_hostile_file_ends_with_its_expected_outcome(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "MINACT_API_KEY": SECRET, "HOME": str(home)}
    cmd = [
        sys.executable,
        "-m",
        "minact",
        "score",
        *map(str, CORPUS),
        "--tasks",
        str(ASSETS / "hostile_lab.toml"),
        "--cache-dir",
        "cache",
        "--json",
    ]
    # The timeout only stops a hung test; how long the corpus takes depends on the machine.
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    by_name = {c["name"]: c for c in json.loads(proc.stdout)["candidates"]}
    wrong = []
    for path in CORPUS:
        kind, reason = _expectation(path)
        got = by_name[path.stem]
        if got["status"] != kind or reason not in got["reason"]:
            wrong.append((path.name, got["status"], got["reason"]))
        if kind != "ok":
            assert got["fitness"] is None and got["rank"] is None
    assert not wrong, wrong
    # Nothing outside the cache: no "pwned" files, an untouched HOME, no secret on disk.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "home"]
    assert list(home.iterdir()) == []
    assert not list(Path.cwd().glob("pwned")) and not Path("/tmp/pwned").exists()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in proc.stdout + proc.stderr
