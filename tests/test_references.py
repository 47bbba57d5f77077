"""The package's text names only files that exist: no link to a document left outside the
repository, no path to a module that moved.

Scanned: minact/ (sources, templates, packaged labs) and README.md. Checked: every path
with a folder in it (`docs/lab.md`, `bench/evaluator.py`), found from the repository
root, the package or the naming file's folder; and every bare file name that is not a
Python module (`design.md`, `transfer.toml`), found anywhere in the tree. Names with
placeholders (`plots/<name>.svg`, `runs/*/`), joined onto a variable (`{dir}/report.md`)
or of the files a run writes are not checked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import minact

PACKAGE = Path(minact.__file__).resolve().parent
ROOT = PACKAGE.parent
SCANNED_SUFFIXES = {".py", ".toml", ".j2", ".css", ".md"}
# What runs, scores and exports write, named in docs and messages; not repository files.
WRITTEN = {"report.md", "report.html", "ranking.json", "run.json", "events.jsonl", "llm.jsonl"}
WRITTEN |= {".ranking-index.json"}  # beside ranking.json (minact.runs.index)
_NAME = re.compile(
    r"(?<![\w/.{}<>*-])([\w./<>*{}-]*\w\.(?:md|py|toml|json|jsonl|html|j2|css|svg))\b"
)
_SKIPPED_DIRS = {".git", ".venv", ".ci-venv", "__pycache__", "build", "dist"}


def _basenames() -> set[str]:
    """Returns the names of the files in the repository (virtualenvs, caches and a
    working directory's cache/ and runs/ left out)."""
    names: set[str] = set()
    for folder, dirs, files in os.walk(ROOT):
        skipped = _SKIPPED_DIRS | ({"cache", "runs"} if Path(folder) == ROOT else set())
        dirs[:] = [d for d in dirs if d not in skipped and not d.endswith("_cache")]
        names.update(files)
    return names


def _scanned() -> list[Path]:
    files = [p for p in PACKAGE.rglob("*") if p.suffix in SCANNED_SUFFIXES and p.is_file()]
    return sorted([*files, ROOT / "README.md"])


def _missing(name: str, where: Path, basenames: set[str]) -> bool:
    if any(c in name for c in "<>*{}") or name.startswith(("/", "minact.")):
        return False
    name = name.removeprefix("./")
    if "/" in name:
        return not any((base / name).exists() for base in (ROOT, PACKAGE, where.parent))
    return not name.endswith(".py") and name not in WRITTEN and name not in basenames


@pytest.mark.skipif(
    not (ROOT / "pyproject.toml").is_file(), reason="needs the repository, not an installed copy"
)
def test_every_file_the_package_names_exists() -> None:
    basenames = _basenames()
    dangling = [
        f"{path.relative_to(ROOT)}:{n}: {name}"
        for path in _scanned()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for name in _NAME.findall(line)
        if _missing(name, path, basenames)
    ]
    assert dangling == []


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("docs/lab.md", True),
        ("design.md", True),
        ("lab.md", True),
        ("bench/evaluator.py", False),
        ("templates/run.html.j2", False),
        ("minact/lab/data/transfer.toml", False),
        ("transfer.toml", False),
        ("report.md", False),
        ("plots/<name>.svg", False),
        ("validate.py", False),  # bare module names are prose, not links
    ],
)
def test_the_check_itself(name: str, missing: bool) -> None:
    basenames = _basenames()
    assert _missing(name, PACKAGE / "report" / "html.py", basenames) is missing
