"""Tests for `minact show`, `minact export` and `minact rescore`, driven through the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
import torch
from typer.testing import CliRunner

from minact.cli import app
from minact.errors import ConfigError
from minact.runs.catalog import find
from minact.runs.rundir import RunLog
from minact.sandbox.loader import load_activation
from tests.browser import needs_chromium, screenshot
from tests.conftest import ASSETS, TINY_TASKS, offline_run, write_candidate
from tests.llm_server import LLMServer, numbered_replies

runner = CliRunner()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    base = tmp_path_factory.mktemp("tools")
    result = runner.invoke(
        app,
        [
            "evolve",
            "--budget",
            "4",
            "--seed",
            "2",
            "--tasks",
            str(TINY_TASKS),
            "--cache-dir",
            str(base / "cache"),
            "--runs-dir",
            str(base / "runs"),
            "--run-id",
            "r",
        ],
    )
    assert result.exit_code == 0, result.stderr
    yield {"base": base, "run": base / "runs" / "r", "cache": base / "cache", "runs": base / "runs"}


def _best(paths: dict[str, Path]) -> dict[str, Any]:
    doc = json.loads((paths["run"] / "ranking.json").read_text())
    return next(c for c in doc["candidates"] if c["status"] == "ok" and not c["baseline"])


def _invoke(paths: dict[str, Path], *args: str) -> Any:
    return runner.invoke(
        app, [*args, "--runs-dir", str(paths["runs"]), "--cache-dir", str(paths["cache"])]
    )


def test_show_prints_code_scores_and_lineage(finished_run: dict[str, Path]) -> None:
    best = _best(finished_run)
    result = _invoke(finished_run, "show", best["code_hash"][:8])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert best["code_hash"] in out and "def activation(x):" in out
    assert "sine" in out and "product" in out and "lineage:" in out
    assert f"{best['fitness']:+.3f}" in out


def test_show_says_a_candidate_found_in_the_cache_is_not_in_the_run_named(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(finished_run["cache"], cache)
    new = write_candidate(tmp_path, "new", "torch.tanh(x) * 0.77")
    scored = runner.invoke(
        app, ["score", str(new), "--tasks", str(TINY_TASKS), "--cache-dir", str(cache), "--json"]
    )
    assert scored.exit_code == 0, scored.stderr
    code = next(c for c in json.loads(scored.stdout)["candidates"] if c["name"] == "new")
    run = str(finished_run["run"])
    args = ["show", code["code_hash"][:10], "--run", run, "--cache-dir", str(cache)]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.stderr
    # Compared without whitespace: a long temporary path may wrap.
    said = "".join(f"from the cache (not in run {run})".split())
    assert said in "".join(shown.stdout.split())


def test_show_unknown_and_bad_prefixes_are_clear(finished_run: dict[str, Path]) -> None:
    result = _invoke(finished_run, "show", "ffffffffffff")
    assert result.exit_code == 1 and "no candidate's hash starts with" in result.stderr
    assert "(in the runs or the cache)" in " ".join(result.stderr.split())
    # With --run, only that run (and the cache) was searched, and the error says so.
    result = _invoke(finished_run, "show", "ffffffffffff", "--run", str(finished_run["run"]))
    assert f"(in run {finished_run['run']} or the cache)" in " ".join(result.stderr.split())
    result = _invoke(finished_run, "show", "xyz")
    assert result.exit_code == 2 and "not a hash prefix" in result.stderr


def test_an_ambiguous_prefix_lists_the_matches() -> None:
    sources = [
        ("abcd1111" + "0" * 56, "def activation(x):\n    return x"),
        ("abcd2222" + "0" * 56, "def activation(x):\n    return -x"),
    ]
    with pytest.raises(ConfigError, match="ambiguous: 2 candidates match"):
        find("abcd", [], sources)
    assert find("abcd2", [], sources).source.endswith("-x")


def test_missing_or_corrupt_run_directories_are_clear(tmp_path: Path) -> None:
    (tmp_path / "runs" / "broken").mkdir(parents=True)
    (tmp_path / "runs" / "broken" / "run.json").write_text("{nope")
    paths = {"runs": tmp_path / "runs", "cache": tmp_path / "cache"}
    result = _invoke(paths, "show", "abcd", "--run", str(tmp_path / "runs" / "broken"))
    assert result.exit_code == 1 and "unreadable" in result.stderr
    result = _invoke(
        paths, "rescore", "--tasks", str(TINY_TASKS), "--run", str(tmp_path / "missing")
    )
    assert result.exit_code == 1 and "no such run directory" in result.stderr
    # A file where a run's folder was meant (a FIFO too: nothing reads from it).
    (tmp_path / "notes.txt").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    for path in ("notes.txt", "pipe"):
        for args in (["evolve", "--resume"], ["show", "abcd", "--run"]):
            result = _invoke(paths, *args, str(tmp_path / path))
            assert result.exit_code == 1, (args, result.output)
            assert "a file, not a run directory" in result.stderr, (args, result.stderr)
            result = runner.invoke(app, ["report", str(tmp_path / path)])
            assert result.exit_code == 1, (args, result.output)
            assert "a file, not a run directory" in result.stderr, (args, result.stderr)


def test_a_runs_dir_that_is_a_file_is_named_as_one_not_passed_by(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    # README: a file where minact wants a folder (the runs folder...) is named as a file in
    # the error. show and export would otherwise answer from the cache alone, as if no run
    # held the candidate, and rescore would say there are no runs.
    afile = tmp_path / "runs.txt"
    afile.write_text("x")
    prefix = _best(finished_run)["code_hash"][:8]
    paths = {"runs": afile, "cache": finished_run["cache"]}
    out = tmp_path / "out.py"
    for args in (
        ["show", prefix],
        ["export", prefix, "-o", str(out)],
        ["rescore", "--suite", "transfer"],
    ):
        result = _invoke(paths, *args)
        assert result.exit_code == 1, (args, result.output)
        assert f"--runs-dir {afile}: a file, not a folder of runs" in result.stderr, result.stderr
    assert not out.exists()


def test_export_writes_an_importable_matching_module(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    best = _best(finished_run)
    target = tmp_path / "my_act.py"
    result = _invoke(
        finished_run, "export", best["code_hash"][:10], "-o", str(target), "--name", "my_act"
    )
    assert result.exit_code == 0, result.stderr
    text = target.read_text()
    assert "minact" in text and best["code_hash"] in text and "Fitness" in text
    spec = importlib.util.spec_from_file_location("my_act", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = torch.linspace(-6, 6, 501, dtype=torch.float64)
    expected = load_activation(best["source"])(x)
    assert torch.allclose(module.my_act(x), expected)
    assert torch.allclose(module.MyAct()(x), expected)
    # A keyword, or a name the module or its layer uses (the layer's forward calls the
    # function: as `self`, `x` or `abs` it would call something else).
    for name in ("class", "self", "x", "abs", "__class__", "__private", "torch", "9a"):
        bad = _invoke(finished_run, "export", best["code_hash"][:10], "--name", name)
        assert bad.exit_code == 2 and "--name" in bad.stderr, (name, bad.stderr)


def test_an_exported_file_scores_as_the_same_candidate_from_the_cache(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    best = _best(finished_run)
    target = tmp_path / "exported.py"
    result = _invoke(finished_run, "export", best["code_hash"][:10], "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert f"def act_{best['code_hash'][:8]}(x" in target.read_text()
    cache = str(finished_run["cache"])
    scored = runner.invoke(
        app, ["score", str(target), "--tasks", str(TINY_TASKS), "--cache-dir", cache, "--json"]
    )
    assert scored.exit_code == 0, scored.stderr
    entry = next(c for c in json.loads(scored.stdout)["candidates"] if c["name"] == "exported")
    assert (entry["status"], entry["code_hash"], entry["cached"]) == ("ok", best["code_hash"], True)
    assert entry["fitness"] == best["fitness"]


def test_export_without_a_file_writes_the_function_name_in_the_current_folder(
    finished_run: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # README and --help: FILE defaults to <function name>.py in the current folder.
    monkeypatch.chdir(tmp_path)
    best = _best(finished_run)["code_hash"]
    result = _invoke(finished_run, "export", best[:10])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / f"act_{best[:8]}.py").is_file()
    named = _invoke(finished_run, "export", best[:10], "--name", "my_act")
    assert named.exit_code == 0, named.stderr
    assert "def my_act(x" in (tmp_path / "my_act.py").read_text()


def _result_keys(cache: Path) -> set[str]:
    with diskcache.Cache(str(cache)) as c:
        return {k for k in c.iterkeys() if isinstance(k, str) and k.startswith("res/")}


def test_rescore_reuses_cached_pairs_and_shows_old_fitness(finished_run: dict[str, Path]) -> None:
    before = _result_keys(finished_run["cache"])
    other = str(ASSETS / "other_tasks.toml")
    result = _invoke(finished_run, "rescore", "--tasks", other, "--top", "2", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    added = _result_keys(finished_run["cache"]) - before
    cands = doc["candidates"]
    assert len(cands) == 14 + 2
    # Only the new task ("cube") was trained: "sine" results came from the cache.
    assert len(added) == len({c["behaviour_hash"] for c in cands if c["behaviour_hash"]})
    new = [c for c in cands if not c["baseline"]]
    assert all(c["original_fitness"] is not None for c in new)
    relu = next(c for c in cands if c["name"] == "relu")
    assert relu["original_fitness"] == 0.0 and relu["fitness"] == 0.0
    again = _invoke(finished_run, "rescore", "--tasks", other, "--top", "2", "--json")
    assert all(c["cached"] for c in json.loads(again.stdout)["candidates"])
    report = (finished_run["run"] / "rescore-other_tasks" / "report.md").read_text()
    assert "| was |" in report
    # "was" names the lab it is on, and the rest names this one.
    assert doc["run"]["from_lab"]["fitness"] == "mean_log_ratio"
    came_from = doc["run"]["from_lab"]["path"]
    assert f"fitness on the lab the candidates came from, {came_from} (" in report
    assert "every other number: on " in report and "other_tasks.toml" in report


def _cache_cells(table: str) -> dict[str, str]:
    """Returns the "cache" cell of each row of a printed ranking table, by candidate name."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")][1:-1]
        if len(cells) > 2 and cells[0].isdigit():
            rows[cells[1]] = cells[-2]  # the last column is the code
    return rows


def test_the_cache_column_tells_a_part_from_the_cache_from_all_and_none(tmp_path: Path) -> None:
    run = offline_run(tmp_path, budget=2, seed=3, run_id="r")  # the tiny lab: sine, product
    paths = {"runs": tmp_path / "runs", "cache": tmp_path / "cache"}
    # other_tasks.toml: its "sine" is the run's (cached), its "cube" is new (trained).
    args = ("rescore", "--tasks", str(ASSETS / "other_tasks.toml"), "--run", str(run))
    result = _invoke(paths, *args, "--top", "2")
    assert result.exit_code == 0, result.stderr
    doc = json.loads((run / "rescore-other_tasks" / "ranking.json").read_text())
    ok = [c for c in doc["candidates"] if c["status"] == "ok"]
    assert len(ok) == 16 and all(not c["cached"] and c["cached_tasks"] == 1 for c in ok)
    assert set(_cache_cells(result.stdout).values()) == {"part"}
    # The line under the table is the one report.md writes (2 tasks: no claim is made).
    md = (run / "rescore-other_tasks" / "report.md").read_text().splitlines()
    (line,) = [x for x in md if x.startswith("whether ")]
    assert "the best new candidate" in line and "is not judged" in line
    assert " ".join(line.split()) in " ".join(result.stdout.split())
    again = _invoke(paths, *args, "--top", "2", "--json")
    cands = json.loads(again.stdout)["candidates"]
    assert all(c["cached"] and c["cached_tasks"] == 2 for c in cands if c["status"] == "ok")
    # Fewer candidates than the default --top: said, naming the flag the user did not give.
    fewer = _invoke(paths, *args)
    new = sum(1 for c in cands if c["status"] == "ok" and not c["baseline"])
    assert fewer.exit_code == 0, fewer.stderr
    said = f"has {new} new candidate{'' if new == 1 else 's'} with a fitness, fewer than --top 5"
    assert said in " ".join(fewer.stderr.split()), fewer.stderr
    # A search whose lab shares tasks with one scored before: the same three states.
    common = ["--offline", "--budget", "1", "--seed", "3", "--run-id", "six"]
    common += ["--tasks", str(ASSETS / "six_tasks.toml")]
    result = _invoke(paths, "evolve", *common)
    assert result.exit_code == 0, result.stderr
    six = tmp_path / "runs" / "six"
    doc = json.loads((six / "ranking.json").read_text())
    baselines = [c for c in doc["candidates"] if c["baseline"] and c["status"] == "ok"]
    assert len(baselines) == 14 and all(c["cached_tasks"] == 2 for c in baselines)
    cells = _cache_cells(result.stdout)
    # The terminal marks a baseline as report.md and report.html do.
    assert {cells[f"{c['name']} (baseline)"] for c in baselines} == {"part"}
    page = (six / "report.html").read_text()
    assert all(re.search(rf">{c['name']} \(baseline\)<.*?<td>part</td>", page) for c in baselines)


def test_rescore_writes_beside_the_runs_never_into_the_current_directory(
    finished_run: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    other = str(ASSETS / "other_tasks.toml")
    best = _best(finished_run)["code_hash"][:10]
    target = finished_run["runs"] / "rescore-other_tasks"
    for args in ([best], ["--all-cached"]):
        result = _invoke(finished_run, "rescore", *args, "--tasks", other)
        assert result.exit_code == 0, result.stderr
        assert f"{target}/report.md" in result.stderr
        assert (target / "ranking.json").is_file() and (target / "report.md").is_file()
    # --all-cached says how many it chose (a cache of many runs holds thousands).
    said = re.search(r"--all-cached: rescoring the (\d+) candidates", result.stderr)
    rows = json.loads((target / "ranking.json").read_text())["candidates"]
    assert said is not None and int(said[1]) == sum(not c["baseline"] for c in rows) > 0
    chosen = tmp_path / "chosen"
    result = _invoke(finished_run, "rescore", best, "--tasks", other, "--out", str(chosen))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in chosen.iterdir()) == ["ranking.json", "report.html", "report.md"]
    assert list(cwd.iterdir()) == []
    # A rescore's report says what it is; it has no run status, budget or seed to show.
    md = (target / "report.md").read_text()
    assert md.startswith("# minact rescore\n\n- candidates from: cache\n- lab: ")
    header = md.split("| #")[0]
    assert "None" not in header and "status" not in header and "budget" not in header


def test_rescore_prints_a_hostile_tasks_path_escaped(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    lab = tmp_path / "lab\x1b[41m\u202e\u200b.toml"
    shutil.copyfile(TINY_TASKS, lab)
    args = ("rescore", "--tasks", str(lab), "--top", "1", "--out", str(tmp_path / "out"))
    result = _invoke(finished_run, *args)
    assert result.exit_code == 0, result.stderr
    for text in (result.stdout, result.stderr):
        assert not re.search("[\x1b\u202e\u200b]", text)
    assert "ranking on" in result.stdout and "\\u202e" in result.stdout
    assert "rescore report: " in result.stderr


def test_a_line_break_in_a_lab_name_prints_no_line_of_its_own(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    # The report's folder is named after the lab (rescore-<stem>), and its path is printed.
    lab = tmp_path / "odd\nagreement: strong.toml"
    shutil.copyfile(TINY_TASKS, lab)
    result = _invoke(finished_run, "rescore", "--tasks", str(lab), "--top", "1")
    shutil.rmtree(finished_run["run"] / "rescore-odd\nagreement: strong")  # the run is shared
    assert result.exit_code == 0, result.stderr
    assert "rescore-odd\\nagreement: strong/report.md" in result.stderr
    for text in (result.stdout, result.stderr):
        assert not re.search("^agreement: strong", text, re.M), text


def test_a_rescore_it_cannot_write_says_its_scores_are_kept_and_where_to_put_them(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    args = ("rescore", "--tasks", str(TINY_TASKS), "--top", "1", "--json")
    result = _invoke(finished_run, *args, "--out", str(blocker / "out"))
    assert result.exit_code == 1, result.output
    said = f"error: cannot write the rescore to {blocker / 'out'}: Not a directory; its scores"
    assert " ".join(result.stderr.split()).startswith(said), result.stderr
    assert "give --out FOLDER to write the rescore there" in " ".join(result.stderr.split())
    again = _invoke(finished_run, *args, "--out", str(tmp_path / "out"))
    assert again.exit_code == 0, again.stderr
    assert all(c["cached"] for c in json.loads(again.stdout)["candidates"])


def test_rescore_measures_agreement_and_draws_it(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    other = str(ASSETS / "other_tasks.toml")
    out = tmp_path / "agree"
    result = _invoke(finished_run, "rescore", "--tasks", other, "--top", "2", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    doc = json.loads((out / "ranking.json").read_text())
    agreement = doc["agreement"]
    # Every scored candidate with a fitness on the run's lab: 14 baselines and the 2 picks
    # (fewer when two share a behaviour and fail alike; never more).
    ok = [c for c in doc["candidates"] if c["status"] == "ok"]
    assert agreement["candidates"] == len(ok) and agreement["tasks"] == 2
    from minact.agreement import kendall_tau, spearman_rho

    tau = kendall_tau([c["original_fitness"] for c in ok], [c["fitness"] for c in ok])
    assert agreement["kendall_tau"]["value"] == pytest.approx(tau)
    rho = spearman_rho([c["original_fitness"] for c in ok], [c["fitness"] for c in ok])
    assert agreement["spearman_rho"]["value"] == pytest.approx(rho)
    # Two tasks are too few to resample: the agreement comes without an interval.
    t = agreement["kendall_tau"]
    assert t["lo"] is None and t["median"] is None and t["hi"] is None
    assert f"Kendall tau {tau:+.2f} and" in result.stderr
    assert "no interval: 2 tasks here" in " ".join(result.stderr.split())
    assert "Kendall tau" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "<svg" in html and "Spearman rho" in html
    for name in ("relu", "gelu", "gelusine"):  # baselines are named in the scatter plot
        assert f">{name}<" in html


def test_rescore_says_which_tasks_it_shares_with_the_runs_lab(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    # other_tasks.toml holds the run's "sine" task as it is: on it the two rankings agree by
    # construction, so the agreement is also given over the new task ("cube") alone.
    other = str(ASSETS / "other_tasks.toml")
    out = tmp_path / "shared"
    result = _invoke(finished_run, "rescore", "--tasks", other, "--top", "2", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    agreement = json.loads((out / "ranking.json").read_text())["agreement"]
    assert agreement["shared_tasks"] == ["sine"]
    held_out = agreement["held_out"]
    assert held_out["tasks"] == 1 and held_out["candidates"] == agreement["candidates"]
    said = " ".join(result.stderr.split())
    assert "1 of the 2 tasks here (sine) is a task of the lab the candidates came from" in said
    tau = held_out["kendall_tau"]["value"]
    assert f"on the other task alone: Kendall tau {tau:+.2f} and" in said
    for report in ("report.md", "report.html"):
        assert "(sine) is a task of the lab" in " ".join((out / report).read_text().split())
    # The run's own lab again: every task is shared, and the agreement says nothing.
    same = tmp_path / "same"
    result = _invoke(finished_run, "rescore", "--tasks", str(TINY_TASKS), "--out", str(same))
    assert result.exit_code == 0, result.stderr
    agreement = json.loads((same / "ranking.json").read_text())["agreement"]
    assert sorted(agreement["shared_tasks"]) == ["product", "sine"]
    assert agreement["held_out"] is None
    said = " ".join(result.stderr.split())
    assert "this says nothing about how the ranking holds on other tasks" in said


def test_rescore_with_other_seeds_still_counts_the_runs_tasks_as_its_own(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    # --seeds 3 changes every task's digest (its networks), not the task: the run's own lab
    # with more networks per task says nothing about how the ranking holds on other tasks.
    out = tmp_path / "reseeded"
    args = ("rescore", "--tasks", str(TINY_TASKS), "--seeds", "3", "--out", str(out))
    result = _invoke(finished_run, *args)
    assert result.exit_code == 0, result.stderr
    agreement = json.loads((out / "ranking.json").read_text())["agreement"]
    assert sorted(agreement["shared_tasks"]) == ["product", "sine"]
    assert sorted(agreement["reseeded_tasks"]) == ["product", "sine"]
    assert agreement["held_out"] is None
    said = " ".join(result.stderr.split())
    assert "here trained with other networks (--seeds), so they agree with it largely" in said
    assert "this says nothing about how the ranking holds on other tasks" in said


def test_rescore_of_a_run_whose_candidates_all_failed_says_why_it_has_nothing(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    # Every reply's function is NaN wherever x is: each candidate fails its evaluation.
    with LLMServer(numbered_replies(lambda k: f"x * 0.0 / (x - x) + {k}")) as server:
        args = ["evolve", "--budget", "2", "--tasks", str(TINY_TASKS), "--run-id", "bad"]
        args += ["--llm-url", server.url, "--llm-retries", "1"]
        args += ["--cache-dir", str(finished_run["cache"]), "--runs-dir", str(tmp_path)]
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    doc = json.loads((tmp_path / "bad" / "ranking.json").read_text())
    new = [c for c in doc["candidates"] if not c["baseline"]]
    assert new and not any(c["status"] == "ok" for c in new)
    args = ["rescore", "--tasks", str(ASSETS / "other_tasks.toml"), "--run", str(tmp_path / "bad")]
    result = runner.invoke(app, [*args, "--cache-dir", str(finished_run["cache"])])
    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    assert f"no candidates to rescore from {tmp_path / 'bad'}: none of its {len(new)} new" in said
    assert "(each failed or was screened out; its report.md says why)" in said


@needs_chromium
def test_rescore_report_renders_in_headless_chromium(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "shot"
    other = str(ASSETS / "other_tasks.toml")
    result = _invoke(finished_run, "rescore", "--tasks", other, "--top", "2", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    png = tmp_path / "rescore.png"
    screenshot(out / "report.html", png, tmp_path / "chromium", "1200,1600")
    assert png.exists() and png.stat().st_size > 30_000


def test_rescore_with_more_seeds_is_cached_under_its_own_key(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    other = str(ASSETS / "other_tasks.toml")
    args = ("rescore", "--tasks", other, "--top", "1", "--json")
    base = json.loads(_invoke(finished_run, *args, "--out", str(tmp_path / "a")).stdout)
    before = _result_keys(finished_run["cache"])
    result = _invoke(finished_run, *args, "--seeds", "3", "--out", str(tmp_path / "b"))
    assert result.exit_code == 0, result.stderr
    more = json.loads(result.stdout)
    assert more["run"]["seeds"] == 3
    # The lab's digest per task changes with its seeds: nothing is served from the 2-seed
    # results, and every task's results are stored anew.
    assert {t["digest"] for t in more["tasks"]}.isdisjoint(t["digest"] for t in base["tasks"])
    assert not any(c["cached"] for c in more["candidates"] if c["status"] == "ok")
    assert len(_result_keys(finished_run["cache"]) - before) > 0
    again = _invoke(finished_run, *args, "--seeds", "3", "--out", str(tmp_path / "c"))
    assert all(c["cached"] for c in json.loads(again.stdout)["candidates"])


def test_rescore_needs_exactly_one_lab(finished_run: dict[str, Path]) -> None:
    # Neither or both is a usage error (exit 2, as README's exit codes say); a suite that
    # does not exist is a value at fault (exit 1, named).
    result = _invoke(finished_run, "rescore")
    assert result.exit_code == 2 and "exactly one of --tasks" in result.stderr
    result = _invoke(finished_run, "rescore", "--tasks", "x.toml", "--suite", "transfer")
    assert result.exit_code == 2 and "exactly one of --tasks" in result.stderr
    result = _invoke(finished_run, "rescore", "--suite", "imagenet")
    assert result.exit_code == 1 and "built-in suites" in result.stderr


def test_export_leaves_an_existing_file_alone_unless_forced(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    best = _best(finished_run)
    lab = tmp_path / "tasks.toml"
    lab.write_text(TINY_TASKS.read_text())
    refused = _invoke(finished_run, "export", best["code_hash"][:10], "-o", str(lab))
    assert refused.exit_code == 1 and "exists; --force replaces it" in refused.stderr
    assert lab.read_text() == TINY_TASKS.read_text()
    forced = _invoke(finished_run, "export", best["code_hash"][:10], "-o", str(lab), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert best["code_hash"] in lab.read_text()


def test_rescore_never_writes_over_a_runs_own_reports(finished_run: dict[str, Path]) -> None:
    run = finished_run["run"]
    before = (run / "ranking.json").read_text()
    result = _invoke(finished_run, "rescore", "--tasks", str(TINY_TASKS), "--out", str(run))
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # the box wraps lines
    assert result.exit_code == 2 and "is a run directory" in flat
    assert (run / "ranking.json").read_text() == before


def test_rescores_of_two_labs_of_one_name_are_both_kept(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    # lab.toml in two folders: the second rescore must not replace the first one's files.
    labs = []
    for folder, asset in (("a", TINY_TASKS), ("b", ASSETS / "other_tasks.toml")):
        (tmp_path / folder).mkdir()
        labs.append(tmp_path / folder / "lab.toml")
        labs[-1].write_text(asset.read_text())
    for lab in [*labs, labs[0]]:
        result = _invoke(finished_run, "rescore", "--tasks", str(lab), "--top", "1")
        assert result.exit_code == 0, result.stderr
    folders = sorted(finished_run["run"].glob("rescore-lab*"))
    assert len(folders) == 2, folders
    paths = {json.loads((f / "ranking.json").read_text())["lab"]["path"] for f in folders}
    assert paths == {str(labs[0]), str(labs[1])}
    # The same lab again replaces its own folder, the one named first.
    assert f"{finished_run['run'] / 'rescore-lab'}/report.md" in result.stderr


def test_a_run_left_marked_running_by_a_killed_process_is_reported_interrupted(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "r"
    shutil.copytree(finished_run["run"], run)
    meta = json.loads((run / "run.json").read_text())
    # What kill -9 (or a power cut) leaves: run.json as it was written at the start.
    (run / "run.json").write_text(json.dumps({**meta, "status": "running", "message": ""}))
    cache = ["--cache-dir", str(finished_run["cache"])]

    def shown() -> dict[str, Any]:
        result = runner.invoke(app, ["report", str(run), *cache])
        assert result.exit_code == 0, result.stderr
        return dict(json.loads((run / "ranking.json").read_text())["run"])

    with RunLog(run).held():  # a process still runs it: it is running
        assert shown()["status"] == "running"
    gone = shown()
    assert gone["status"] == "interrupted" and "--resume" in gone["message"]
    assert "status: **interrupted**" in (run / "report.md").read_text()
    assert json.loads((run / "run.json").read_text())["status"] == "running"  # only shown


def test_rescore_says_when_the_run_has_fewer_candidates_than_top(
    finished_run: dict[str, Path],
) -> None:
    ranking = json.loads((finished_run["run"] / "ranking.json").read_text())
    scored = [c for c in ranking["candidates"] if not c["baseline"] and c["status"] == "ok"]
    other = str(ASSETS / "other_tasks.toml")
    result = _invoke(finished_run, "rescore", "--tasks", other, "--top", "50", "--json")
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.stderr.split())
    n, s = len(scored), "" if len(scored) == 1 else "s"
    assert (
        f"{finished_run['run']} has {n} new candidate{s} with a fitness, fewer than --top 50"
        in said
    )
    assert len([c for c in json.loads(result.stdout)["candidates"] if not c["baseline"]]) == len(
        scored
    )
