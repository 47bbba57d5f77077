"""Tests for a run's checks after the search (`evolve --validate`, `evolve --confirm`),
driven through the CLI as a user drives them, with a real cache in a temporary folder."""

from __future__ import annotations

import json
from html import unescape
from pathlib import Path
from typing import Any

import diskcache
import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.jobs import checks
from minact.runs.checks import check_text
from tests.conftest import ASSETS, TINY_TASKS

runner = CliRunner()
LAB = ASSETS / "six_tasks.toml"
OTHER = ASSETS / "other_tasks.toml"


def _evolve(base: Path, run_id: str, *args: str) -> Any:
    common = ["--tasks", str(LAB), "--cache-dir", str(base / "cache")]
    common += ["--runs-dir", str(base / "runs"), "--run-id", run_id, "--seed", "4"]
    return runner.invoke(app, ["evolve", *common, *args])


def _events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("checks")
    args = ["--budget", "3", "--validate", str(OTHER), "--validate-top", "4"]
    result = _evolve(base, "r", *args, "--confirm", "2", "--confirm-seeds", "3")
    assert result.exit_code == 0, result.stderr
    run = base / "runs" / "r"
    doc = json.loads((run / "ranking.json").read_text())
    return {"base": base, "run": run, "doc": doc, "stderr": result.stderr, "stdout": result.stdout}


def test_validation_scores_the_top_k_by_lab_fitness_and_names_a_pick(
    checked: dict[str, Any],
) -> None:
    doc = checked["doc"]
    ok = [c for c in doc["candidates"] if c["status"] == "ok"]
    validated = [c for c in doc["candidates"] if "validation" in c]
    assert [c["code_hash"] for c in validated] == [c["code_hash"] for c in ok[:4]]
    # OTHER's "sine" is the lab's own task (same digest): the verdict rests on "cube" alone.
    events = _events(checked["run"])
    (event,) = [e for e in events if e["event"] == "validation"]
    cube = {s["code_hash"]: s["tasks"]["cube"][3] for s in event["scores"]}  # its log-ratio
    for c in validated:
        v = c["validation"]
        assert v["suite"] == str(OTHER) and v["status"] == "ok"
        assert v["held_out_fitness"] == pytest.approx(cube[c["code_hash"]])
        assert v["flag"] == (c["fitness"] < 0 and v["held_out_fitness"] > 0)  # relu = 0
    summary = doc["checks"]["validation"]
    assert summary["tasks"] == 2 and summary["top"] == 4 and summary["candidates"] == 4
    assert summary["shared_tasks"] == ["sine"] and summary["held_out_tasks"] == 1
    best = min(validated, key=lambda c: c["validation"]["held_out_fitness"])
    assert summary["recommended"]["code_hash"] == best["code_hash"]
    assert [c["validation"]["rank"] for c in validated if c is best] == [1]
    assert summary["flagged"] == [c["name"] for c in validated if c["validation"]["flag"]]
    said = " ".join(checked["stderr"].split())
    pick = f"recommended pick: {best['name']} (best fitness among them on the held-out task:"
    assert pick in said
    assert f"on {OTHER} (2 tasks; sine is also in the run's lab, so the verdict rests" in said
    assert "1 of its tasks (sine) is a task of the run's lab (the same data and settings)" in said
    assert "so the pick and the flags rest on the other task alone" in said
    # Never shown to the search: no prompt or outcome event mentions the validation lab.
    kinds = [e["event"] for e in events]
    assert kinds.index("validation") > max(i for i, k in enumerate(kinds) if k == "outcome")


def test_confirmation_rescores_with_more_seeds_under_their_own_key(
    checked: dict[str, Any],
) -> None:
    doc = checked["doc"]
    (event,) = [e for e in _events(checked["run"]) if e["event"] == "confirmation"]
    assert event["seeds"] == 3
    run_digests = {t["digest"] for t in doc["tasks"]}
    assert run_digests.isdisjoint(t["digest"] for t in event["lab_summary"]["tasks"])
    confirmed = [c for c in doc["candidates"] if "confirmation" in c]
    new = [c for c in doc["candidates"] if c["status"] == "ok" and not c["baseline"]]
    base = [c for c in doc["candidates"] if c["status"] == "ok" and c["baseline"]]
    expected = {c["code_hash"] for c in [*new[:2], *base[:3]]}
    assert {c["code_hash"] for c in confirmed} == expected
    for c in confirmed:
        assert c["confirmation"]["seeds"] == 3 and c["confirmation"]["fitness"] is not None
    # The 3-seed results are stored apart from the 2-seed ones.
    with diskcache.Cache(str(checked["base"] / "cache")) as cache:
        keys = [k for k in cache.iterkeys() if isinstance(k, str) and k.startswith("res/")]
    for d in [*run_digests, *(t["digest"] for t in event["lab_summary"]["tasks"])]:
        assert any(d in k for k in keys)
    winner = doc["checks"]["confirmation"]["winner"]
    claim = winner["claim"]
    assert claim["tasks"] == 6 and claim["verdict"] in ("yes", "no", "inconclusive")
    assert (
        claim["against"]
        == min((c for c in confirmed if c["baseline"]), key=lambda c: c["confirmation"]["fitness"])[
            "name"
        ]
    )
    assert f"beats best baseline ({claim['against']}): {claim['verdict']}" in checked["stderr"]
    # The winner was picked from all of the run's new candidates on these same tasks.
    pool = [c for c in doc["candidates"] if c["status"] == "ok" and not c["baseline"]]
    assert claim["compared"] == len(pool)
    if len(pool) > 1:
        said_err = " ".join(checked["stderr"].split())
        assert f"best of {len(pool)} candidates on these same tasks" in said_err
    # Under the ranking, the search's own claim for its best candidate, on the lab: the
    # sentence the reports write under theirs.
    best = next(c for c in doc["candidates"] if c["rank"] and not c["baseline"])
    said = " ".join(checked["stdout"].split())  # the terminal may wrap it
    (line,) = [x for x in (checked["run"] / "report.md").read_text().splitlines() if "noise?" in x]
    assert line.startswith(f"does {best['name']}, the best new candidate, beat the best baseline")
    assert " ".join(line.split()) in said
    assert f"beyond noise? {best['claim']['verdict']} (95% CI [" in said
    assert best["claim"]["compared"] == len(pool) > 1 and "so a yes is optimistic" in said


def test_reports_say_whether_the_best_beats_the_best_baseline_and_that_a_yes_is_optimistic(
    checked: dict[str, Any],
) -> None:
    run, doc = checked["run"], checked["doc"]
    best = next(c for c in doc["candidates"] if c["rank"] and not c["baseline"])
    claim = best["claim"]
    assert claim is not None and claim["compared"] > 1
    said = (
        f"does {best['name']}, the best new candidate, beat the best baseline "
        f"({claim['against']}) beyond noise? {claim['verdict']} (95% CI ["
    )
    for report in ("report.md", "report.html"):
        text = " ".join((run / report).read_text().split())
        assert said in text, report
        assert f"best of {claim['compared']} candidates on these same tasks" in text, report


def test_reports_show_both_fitnesses_and_report_rebuilds_them(checked: dict[str, Any]) -> None:
    run, doc = checked["run"], checked["doc"]
    md = (run / "report.md").read_text()
    assert "## Checks after the search" in md and "recommended pick:" in md
    assert f"| validation ({OTHER}) | held out (1 task) |" in md and "confirmed (3 seeds)" in md
    assert "1 of its tasks (sine) is a task of the run's lab" in md
    html = (run / "report.html").read_text()
    assert "Checks after the search" in html and "recommended pick:" in html
    assert "beats best baseline" in html
    (run / "ranking.json").unlink()
    result = runner.invoke(app, ["report", str(run), "--cache-dir", str(checked["base"] / "cache")])
    assert result.exit_code == 0, result.stderr
    again = json.loads((run / "ranking.json").read_text())
    assert again["checks"] == doc["checks"]
    assert [c.get("validation") for c in again["candidates"]] == [
        c.get("validation") for c in doc["candidates"]
    ]


def test_without_checks_nothing_changes_and_resume_refuses_another_validation(
    checked: dict[str, Any],
) -> None:
    base = checked["base"]
    result = _evolve(base, "plain", "--budget", "2")
    assert result.exit_code == 0, result.stderr
    plain = base / "runs" / "plain"
    doc = json.loads((plain / "ranking.json").read_text())
    assert "checks" not in doc
    assert not any("validation" in c or "confirmation" in c for c in doc["candidates"])
    assert "Checks after the search" not in (plain / "report.md").read_text()
    assert {e["event"] for e in _events(plain)}.isdisjoint({"validation", "confirmation"})
    again = ["evolve", "--resume", str(checked["run"]), "--validate", str(LAB)]
    resumed = runner.invoke(app, [*again, "--cache-dir", str(base / "cache")])
    assert resumed.exit_code == 1 and "--validate" in resumed.stderr


def _validated(base: Path, run_id: str, tasks: Path) -> tuple[Path, dict[str, Any], str]:
    """Runs a one-candidate search validated on `tasks` (its top 2); returns the run's
    folder, its ranking.json and what it said on stderr, spaces collapsed."""
    args = ["--budget", "1", "--validate", str(tasks), "--validate-top", "2"]
    result = _evolve(base, run_id, *args)
    assert result.exit_code == 0, result.stderr
    run = base / "runs" / run_id
    return run, json.loads((run / "ranking.json").read_text()), " ".join(result.stderr.split())


def test_a_task_of_the_lab_under_another_name_is_not_held_out_and_a_name_alone_is(
    checked: dict[str, Any], tmp_path: Path
) -> None:
    # "wave" is the lab's "sine" renamed (same data and settings: the same digest); "cube"
    # shares only its name with the lab's "cube" (another target): it is held out.
    settings = LAB.read_text().split("[[task]]")[0]
    other = tmp_path / "renamed.toml"
    other.write_text(
        settings
        + '[[task]]\nname = "wave"\nfamily = "waves"\ntarget = "sin(3*x)"\n\n'
        + '[[task]]\nname = "cube"\nfamily = "polynomial"\ntarget = "x**3 + x"\n'
    )
    run, doc, said = _validated(checked["base"], "renamed", other)
    summary = doc["checks"]["validation"]
    assert summary["shared_tasks"] == ["wave"] and summary["held_out_tasks"] == 1
    (event,) = [e for e in _events(run) if e["event"] == "validation"]
    cube = {s["code_hash"]: s["tasks"]["cube"][3] for s in event["scores"]}
    validated = [c for c in doc["candidates"] if "validation" in c]
    assert len(validated) == 2
    for c in validated:
        assert c["validation"]["held_out_fitness"] == pytest.approx(cube[c["code_hash"]])
    assert "1 of its tasks (wave) is a task of the run's lab" in said
    assert "rest on the other task alone" in said


def test_a_validation_made_of_the_labs_own_tasks_holds_nothing_out(
    checked: dict[str, Any],
) -> None:
    # The tiny lab's two tasks are both tasks of the six-task lab (same digests).
    run, doc, said = _validated(checked["base"], "same", TINY_TASKS)
    summary = doc["checks"]["validation"]
    assert summary["shared_tasks"] == ["sine", "product"] and summary["held_out_tasks"] == 0
    assert summary["recommended"] is None and summary["flagged"] == []
    validated = [c for c in doc["candidates"] if "validation" in c]
    assert len(validated) == 2
    for c in validated:
        v = c["validation"]
        assert v["fitness"] is not None  # its fitness there is still given
        assert v["held_out_fitness"] is None and v["rank"] is None and v["flag"] is False
    assert "sine, product are also in the run's lab, so none is held out" in said
    none = "so none is held out: no pick is recommended and none is flagged"
    assert none in said and "recommended pick" not in said
    for name in ("report.md", "report.html"):
        text = unescape(" ".join((run / name).read_text().split()))
        assert "2 of its tasks (sine, product) are tasks of the run's lab" in text, name
        assert none in text and "recommended pick" not in text and "held out (" not in text


def test_an_unknown_validation_suite_fails_before_the_search(tmp_path: Path) -> None:
    result = _evolve(tmp_path, "bad", "--budget", "1", "--validate", "imagenet")
    assert result.exit_code == 1 and "--validate 'imagenet'" in result.stderr
    assert not (tmp_path / "runs" / "bad" / "events.jsonl").exists()


def test_confirm_with_no_new_candidate_ranked_in_full_is_skipped(tmp_path: Path) -> None:
    # The cascade lab screens most offline candidates; at seed 5 the one candidate is screened,
    # so no new candidate has a full fitness and there is no claim to confirm.
    args = ["--offline", "--budget", "1", "--confirm", "2", "--confirm-seeds", "2"]
    common = ["--tasks", str(ASSETS / "cascade_tasks.toml"), "--seed", "5"]
    common += ["--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, ["evolve", *common, "--run-id", "s", *args])
    assert result.exit_code == 0, result.stderr
    run = tmp_path / "runs" / "s"
    doc = json.loads((run / "ranking.json").read_text())
    assert [c["status"] for c in doc["candidates"] if not c["baseline"]] == ["screened"]
    assert "confirming the top" not in result.stderr  # no baseline trained again
    assert "confirmation skipped: no new candidate was ranked on the full lab" in result.stderr
    (event,) = [e for e in _events(run) if e["event"] == "confirmation"]
    assert event["scores"] == [] and "1 screened by the cascade" in event["skipped"]
    assert not any("confirmation" in c for c in doc["candidates"])
    assert doc["checks"]["confirmation"]["winner"] is None
    assert "1 screened by the cascade" in doc["checks"]["confirmation"]["skipped"]
    for name in ("report.md", "report.html"):
        text = (run / name).read_text()
        assert "confirmation with 2 seeds per task skipped" in text
        assert "confirmed (2 seeds)" not in text  # no column of nothing
    # `report` rebuilds the same; a resume with nothing to add neither checks nor logs again.
    assert runner.invoke(app, ["report", str(run)]).exit_code == 0
    assert "skipped" in json.loads((run / "ranking.json").read_text())["checks"]["confirmation"]
    lines = (run / "events.jsonl").read_text()
    again = ["evolve", "--resume", str(run), "--cache-dir", str(tmp_path / "cache")]
    result = runner.invoke(app, again)
    assert result.exit_code == 0, result.stderr
    assert (run / "events.jsonl").read_text() == lines


@pytest.mark.parametrize(("held", "lose"), [(1, "held-out task"), (3, "3 held-out tasks")])
def test_the_flag_line_counts_the_held_out_tasks_it_rests_on(held: int, lose: str) -> None:
    # It said "lose validation's held-out tasks" of a single one, where the lines above it
    # say "the other task" and "the held-out task".
    pick = {"name": "c1", "code_hash": "ab" * 32, "fitness": -0.2,
            "validation_fitness": -0.1, "held_out_fitness": -0.05}  # fmt: skip
    validation = {"suite": "other.toml", "tasks": held + 1, "top": 2, "candidates": 2,
                  "shared_tasks": ["sine"], "held_out_tasks": held, "flagged": ["c0"],
                  "recommended": pick}  # fmt: skip
    lines = check_text({"validation": validation}, {"fitness": "mean_log_ratio"})
    assert lines[-1] == (
        f"win the lab (fitness below the reference's) but lose validation's {lose} (fitness "
        "above the reference's): c0"
    )


def test_a_check_that_fails_after_the_search_keeps_its_report_and_a_resume_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The validation file removed during the search: the run ended "failed" with no report
    # and no ranking.json, and run.json did not say the search had ended.
    held = tmp_path / "held.toml"
    held.write_text(TINY_TASKS.read_text())
    validation = checks.validation

    def gone(*args: Any) -> Any:
        held.unlink()  # as a user would, while the search runs
        return validation(*args)

    monkeypatch.setattr(checks, "validation", gone)
    common = ["--tasks", str(TINY_TASKS), "--cache-dir", str(tmp_path / "cache"), "--offline"]
    args = [*common, "--runs-dir", str(tmp_path / "runs"), "--run-id", "r", "--budget", "2"]
    result = runner.invoke(app, ["evolve", *args, "--validate", str(held)])
    assert result.exit_code == 1, result.stderr
    run = tmp_path / "runs" / "r"
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "failed" and "the checks after the search failed" in meta["message"]
    assert "no such tasks file" in meta["message"] and "--resume" in meta["message"]
    assert (run / "report.md").is_file() and (run / "ranking.json").is_file()
    monkeypatch.setattr(checks, "validation", validation)
    held.write_text(TINY_TASKS.read_text())
    resumed = runner.invoke(app, ["evolve", "--resume", str(run), *common[2:4]])
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert [e for e in _events(run) if e["event"] == "validation"]
