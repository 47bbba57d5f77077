"""Names and paths a user gives, driven through the CLI.

`score`: each candidate is shown under a name of its own (a file named like a built-in, or
like another file, is shown by its file name or path), and a built-in's name is the
built-in even where a file of that name is in the folder (said, with how to score the file).
A file where minact wants a folder (a run directory, the runs folder, a report's plots) is
named as a file in one line; `export -o FOLDER` writes the module into that folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.seeds import seed_candidate
from tests.conftest import TINY_TASKS, write_candidate

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One finished offline run of one candidate on the tiny lab."""
    base = tmp_path_factory.mktemp("paths")
    args = ["evolve", "--offline", "--budget", "1", "--tasks", str(TINY_TASKS), "--run-id", "r"]
    args += ["--cache-dir", str(base / "cache"), "--runs-dir", str(base / "runs")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    yield {"run": base / "runs" / "r", "cache": base / "cache", "runs": base / "runs"}


def _score(cache: Path, *srcs: str) -> tuple[list[dict[str, object]], str]:
    args = ["score", *srcs, "--json", "--tasks", str(TINY_TASKS), "--cache-dir", str(cache)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["candidates"], result.stderr


@pytest.mark.slow
def test_scored_files_never_share_a_name_with_a_built_in_or_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: dict[str, Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_candidate(tmp_path, "relu", "torch.tanh(x) + 0.3 * x")
    (tmp_path / "sub2").mkdir()
    write_candidate(tmp_path / "sub2", "relu", "torch.tanh(x) + 0.2 * x")
    rows, _ = _score(run["cache"], str(tmp_path / "relu.py"))
    assert sorted(r["name"] for r in rows) == ["relu", "relu.py"]  # the reference and the file
    rows, _ = _score(run["cache"], "sub2/relu.py", "relu.py")
    assert sorted(r["name"] for r in rows) == ["relu", "relu.py", "sub2/relu.py"]


@pytest.mark.slow
def test_a_built_ins_name_is_the_built_in_even_beside_a_file_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: dict[str, Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_candidate(tmp_path, "gelu", "torch.tanh(x) + 0.1 * x").rename(tmp_path / "gelu")
    rows, stderr = _score(run["cache"], "gelu")
    gelu = seed_candidate("gelu").code_hash
    assert [r["code_hash"] for r in rows if r["name"] == "gelu"] == [gelu]
    assert "the built-in gelu is scored, not the file ./gelu (give ./gelu for it)" in stderr
    rows, _ = _score(run["cache"], "./gelu")
    assert [r["name"] for r in rows if r["code_hash"] != seed_candidate("relu").code_hash] == [
        "./gelu"
    ]


def test_a_file_as_the_run_directory_or_runs_folder_is_named_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "runs6").mkdir()
    (tmp_path / "runs6" / "rid").write_text("x\n")
    (tmp_path / "afile").write_text("x\n")
    base = ["evolve", "--offline", "--budget", "1", "--tasks", str(TINY_TASKS)]
    base += ["--cache-dir", str(tmp_path / "cache")]
    runs6 = tmp_path / "runs6"
    result = runner.invoke(app, [*base, "--runs-dir", str(runs6), "--run-id", "rid"])
    assert result.exit_code == 1
    assert f"{runs6 / 'rid'} is a file, not a run directory" in result.stderr
    assert "--resume" not in result.stderr  # which would say the same
    afile = tmp_path / "afile"
    result = runner.invoke(app, [*base, "--runs-dir", str(afile)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: --runs-dir {afile}: cannot write there (it is a file, not a folder); "
        "choose a folder\n"
    )
    result = runner.invoke(app, [*base, "--runs-dir", str(afile / "sub")])
    assert f"({afile} is a file, not a folder)" in result.stderr


@pytest.mark.slow
def test_a_file_where_the_plots_go_is_one_clear_line(tmp_path: Path, run: dict[str, Path]) -> None:
    copy = tmp_path / "p"
    (copy / "plots").mkdir(parents=True)
    for name in ("run.json", "events.jsonl"):
        (copy / name).write_bytes((run["run"] / name).read_bytes())
    (copy / "plots").rmdir()
    (copy / "plots").write_text("x\n")
    result = runner.invoke(app, ["report", str(copy), "--cache-dir", str(run["cache"])])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {copy / 'plots'} is a file, not a folder")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_export_into_a_folder_writes_the_module_there(tmp_path: Path, run: dict[str, Path]) -> None:
    doc = json.loads((run["run"] / "ranking.json").read_text())
    best = next(c for c in doc["candidates"] if c["status"] == "ok" and not c["baseline"])
    prefix = best["code_hash"][:10]
    args = ["export", prefix, "--run", str(run["run"]), "--cache-dir", str(run["cache"])]
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    target = out / f"act_{best['code_hash'][:8]}.py"
    assert best["code_hash"] in target.read_text()
    again = runner.invoke(app, [*args, "-o", str(out)])
    assert again.exit_code == 1 and f"{target} exists; --force replaces it" in again.stderr


def test_export_to_a_folder_that_is_not_there_writes_no_file_of_its_name(
    tmp_path: Path, run: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `-o out/` names a folder: the module is not written as a file called out.
    monkeypatch.chdir(tmp_path)
    doc = json.loads((run["run"] / "ranking.json").read_text())
    best = next(c for c in doc["candidates"] if c["status"] == "ok" and not c["baseline"])
    args = ["export", best["code_hash"][:10], "--run", str(run["run"])]
    result = runner.invoke(app, [*args, "--cache-dir", str(run["cache"]), "-o", "out/"])
    assert result.exit_code == 2
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # the box wraps lines
    assert "out/: no such folder; create it, or give a file name" in flat
    assert not (tmp_path / "out").exists()
