"""Looking a hash up through runs' ranking indexes (minact.runs.index) gives what ranking
every run's log gives: the same entry, lineage and errors; a stale, missing or edited
index or ranking.json sends the lookup back to the log."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.errors import ConfigError
from minact.runs import catalog, index
from tests.conftest import offline_run

runner = CliRunner()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One finished offline run (3 candidates on the tiny lab); each test copies it."""
    base = tmp_path_factory.mktemp("indexed")
    run = offline_run(base, budget=3, seed=1, run_id="r")
    doc = json.loads((run / "ranking.json").read_text())
    new = [c for c in doc["candidates"] if not c["baseline"] and c["status"] == "ok"]
    return {"run": run, "cache": base / "cache", "hash": new[-1]["code_hash"]}


def _copy(finished: dict[str, Any], runs: Path, name: str = "r") -> Path:
    # copy2 keeps the files' times, as `cp -a` does: the index stays current
    return Path(shutil.copytree(finished["run"], runs / name))


def _replayed(prefix: str, run: Path) -> catalog.Found:
    """Returns what ranking the log finds (the index moved aside, then put back)."""
    kept = (run / index.INDEX_NAME).read_bytes()
    (run / index.INDEX_NAME).unlink()
    try:
        return catalog.find(prefix, [run], warn=None)
    finally:
        (run / index.INDEX_NAME).write_bytes(kept)


def _no_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the run was ranked from its log")

    monkeypatch.setattr(catalog, "run_ranking", refuse)


def test_a_finished_run_is_found_through_its_index_as_through_its_log(
    finished: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _copy(finished, tmp_path / "runs")
    h = finished["hash"]
    assert index.read(run) is not None
    expected = _replayed(h[:8], run)
    _no_replay(monkeypatch)
    found = catalog.find(h[:8], catalog.all_runs(tmp_path / "runs"), warn=None)
    assert found == expected and found.lineage  # entry, lineage, run, source
    with pytest.raises(ConfigError, match="no candidate's hash starts with 'ffffffffffff'"):
        catalog.find("ffffffffffff", [run], warn=None)  # no run holds it: no ranking read


def _append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line)


STALE = {
    "event_appended": lambda run: _append(run / "events.jsonl", '{"event": "x"}\n'),
    "run_json_rewritten": lambda run: (run / "run.json").write_text((run / "run.json").read_text()),
    "ranking_edited": lambda run: (run / "ranking.json").write_text(
        (run / "ranking.json").read_text().replace('"fitness": ', '"fitness": "x", "f": ')
    ),
    "ranking_gone": lambda run: (run / "ranking.json").unlink(),
    "index_edited": lambda run: (run / index.INDEX_NAME).write_text(
        (run / index.INDEX_NAME).read_text().replace('"skipped": 0', '"skipped": 1')
    ),
    "index_garbage": lambda run: (run / index.INDEX_NAME).write_bytes(b"\x00\xff{[" * 50),
    "index_a_folder": lambda run: (
        (run / index.INDEX_NAME).unlink(),
        (run / index.INDEX_NAME).mkdir(),
    ),
}


@pytest.mark.parametrize("change", list(STALE))
def test_a_stale_or_damaged_index_sends_the_lookup_to_the_log(
    finished: dict[str, Any], tmp_path: Path, change: str
) -> None:
    run = _copy(finished, tmp_path / "runs")
    h = finished["hash"]
    expected = _replayed(h[:8], run)
    later = os.stat(run / "run.json").st_mtime_ns + 10**9
    STALE[change](run)
    for name in ("events.jsonl", "run.json", "ranking.json"):  # a second later, surely
        if (run / name).exists() and change != "index_edited":
            os.utime(run / name, ns=(later, later))
    assert index.read(run) is None
    assert catalog.find(h[:8], [run], warn=None) == expected
    shown = runner.invoke(app, ["show", h[:8], "--runs-dir", str(run.parent)])
    assert shown.exit_code == 0 and h in shown.stdout and "Traceback" not in shown.output


def test_rows_of_the_wrong_type_under_a_current_index_are_not_shown(
    finished: dict[str, Any], tmp_path: Path
) -> None:
    # ranking.json edited and its index written again to match: the row's types are wrong,
    # so the log decides.
    run = _copy(finished, tmp_path / "runs")
    h = finished["hash"]
    expected = _replayed(h[:8], run)
    taken = index.stamp(run)
    doc = json.loads((run / "ranking.json").read_text())
    for c in doc["candidates"]:
        c["fitness"], c["tasks"] = "best", [1, 2]
    (run / "ranking.json").write_text(json.dumps(doc))
    index.write(run, doc, taken, 0)
    assert index.read(run) is not None
    assert catalog.find(h[:8], [run], warn=None) == expected


def test_a_prefix_shared_across_indexed_runs_is_ambiguous(
    finished: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    _copy(finished, runs, "a")
    other = _copy(finished, runs, "b")
    h = finished["hash"]
    twin = h[:8] + "0" * 56  # another candidate whose hash starts as h does
    events = (other / "events.jsonl").read_text().replace(h, twin)
    (other / "events.jsonl").write_text(events)
    reported = runner.invoke(app, ["report", str(other), "--cache-dir", str(finished["cache"])])
    assert reported.exit_code == 0, reported.output
    assert index.read(runs / "a") is not None and index.read(other) is not None
    _no_replay(monkeypatch)
    with pytest.raises(ConfigError, match=f"'{h[:8]}' is ambiguous: 2 candidates match"):
        catalog.find(h[:8], catalog.all_runs(runs), warn=None)
    assert catalog.find(h[:9], catalog.all_runs(runs), warn=None).run == runs / "a"
    name = json.loads((other / "ranking.json").read_text())["candidates"][0]["name"]
    with pytest.raises(ConfigError, match=f"{name} is "):
        catalog.find(name, catalog.all_runs(runs), warn=None)  # a name, told from the index


def test_an_interrupted_run_without_ranking_is_still_searched(
    finished: dict[str, Any], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run = _copy(finished, runs)
    for name in ("ranking.json", index.INDEX_NAME, "report.md", "report.html"):
        (run / name).unlink()
    found = catalog.find(finished["hash"][:8], catalog.all_runs(runs), warn=None)
    assert found.run == run and found.entry is not None
