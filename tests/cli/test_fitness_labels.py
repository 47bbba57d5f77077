"""What the headers say a fitness is must be what it is: under `fitness = "mean_ood_mse"` the
reference scores its own mean OOD MSE, not 0, and a screened row's family columns would be
means over its stage-1 tasks alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minact.cli import app
from minact.cli._shared import print_ranking
from minact.report.html import render_ranking_html
from minact.runs.ranking import RankingDocument
from tests.conftest import TINY_TASKS

runner = CliRunner()


def _words(text: str) -> str:
    return " ".join(text.split())  # a wrapped title or cell reads as one line


def test_a_mean_ood_mse_run_never_says_the_reference_scores_0(tmp_path: Path) -> None:
    lab = tmp_path / "mse.toml"
    lab.write_text(TINY_TASKS.read_text().replace("[lab]\n", '[lab]\nfitness = "mean_ood_mse"\n'))
    args = ["evolve", "--offline", "--budget", "2", "--seed", "1", "--tasks", str(lab)]
    args += ["--run-id", "r", "--cache-dir", str(tmp_path / "cache")]
    args += ["--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "r"
    doc = json.loads((run / "ranking.json").read_text())
    relu = next(c for c in doc["candidates"] if c["name"] == "relu")["fitness"]
    assert relu > 0  # a mean OOD MSE: the headers must not call it 0

    assert "mean_ood_mse, lower is better" in _words(result.stdout)
    assert "relu = 0" not in _words(result.stdout)
    md = (run / "report.md").read_text()
    assert "fitness mean_ood_mse, lower is better)" in md
    assert "relu = 0" not in md and "reference = 0" not in md
    assert "relu = 0" not in (run / "report.html").read_text()
    svg = (run / "plots" / "fitness.svg").read_text()
    assert "reference (0)" not in svg and f"reference ({relu:.4g})" in svg
    assert "relu = 0" not in render_ranking_html(doc)  # a rescore's page on such a lab

    best = next(c for c in doc["candidates"] if c["rank"] and not c["baseline"])
    out = tmp_path / "act.py"
    args = ["export", best["code_hash"][:12], "-o", str(out)]
    args += ["--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]
    exported = runner.invoke(app, args)
    assert exported.exit_code == 0, exported.output
    head = out.read_text().split('"""')[1]
    # The report's digits for an MSE (4 significant), not a log-ratio's "+.4f" ("+28.3840").
    assert f"Fitness {best['fitness']:.4g} " in head and f"{best['fitness']:+.4f}" not in head
    assert "mean OOD MSE over the lab's tasks" in head and "log OOD-MSE ratio" not in head

    args = ["show", best["code_hash"][:12], "--runs-dir", str(tmp_path / "runs")]
    shown = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "cache")])
    assert shown.exit_code == 0, shown.output
    assert f"fitness {best['fitness']:.4g} ± " in _words(shown.stdout)
    assert f"{best['fitness']:+.3f}" not in shown.stdout
    # Per task, report.md's digits (3 significant): the same number in both places.
    task = doc["tasks"][0]["name"]
    ood = best["tasks"][task]["ood_loss"]
    row = next(x for x in shown.stdout.splitlines() if f" {task} " in x)
    assert f" {ood:.3g} " in row


def _row(name: str, rank: int | None, status: str, fitness: float | None) -> dict[str, object]:
    return {
        "rank": rank, "name": name, "code_hash": name * 8, "status": status, "fitness": fitness,
        "reason": "screened after stage 1: fitness 3.0 on 1 of 2 tasks" if rank is None else "",
        "fitness_spread": None, "mean_ood_mse": 1.0 if rank else None, "baseline": rank == 1,
        "families": {"harmonic": 0.25 if rank else 7.125, "polynomial": 0.5 if rank else 8.375},
        "cached": False, "cached_tasks": 0, "claim": None, "tasks": {},
    }  # fmt: skip


def test_the_terminal_shows_no_family_means_for_a_screened_candidate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = {
        "lab": {"path": "lab.toml", "fitness": "mean_log_ratio", "reference": "relu",
                "families": ["harmonic", "polynomial"]},
        "tasks": [{"name": "a"}, {"name": "b"}],
        "candidates": [_row("relu", 1, "ok", 0.0), _row("c1", None, "screened", None)],
    }  # fmt: skip
    print_ranking(RankingDocument(**doc))  # type: ignore[typeddict-item]
    out = capsys.readouterr().out
    assert "+0.250" in out and "+0.500" in out  # the ranked row keeps its families
    # The screened row's are over its stage-1 tasks only: not the family means of the lab.
    assert "+7.125" not in out and "+8.375" not in out


def test_show_gives_no_per_task_spread_over_one_seed(tmp_path: Path) -> None:
    lab = tmp_path / "one.toml"
    lab.write_text(TINY_TASKS.read_text().replace("seeds = 2", "seeds = 1"))
    args = ["score", "gelu", "--tasks", str(lab), "--cache-dir", str(tmp_path / "c"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    gelu = next(c for c in json.loads(result.stdout)["candidates"] if c["name"] == "gelu")
    assert gelu["fitness_spread"] is None
    assert all(t["ood_spread"] == 0 for t in gelu["tasks"].values())  # the document's number
    run = [str(tmp_path / "runs")]
    evolve = ["evolve", "--offline", "--budget", "1", "--tasks", str(lab), "--run-id", "r"]
    result = runner.invoke(app, [*evolve, "--cache-dir", str(tmp_path / "c"), "--runs-dir", *run])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["show", gelu["code_hash"][:12], "--runs-dir", *run])
    assert shown.exit_code == 0, shown.output
    rows = [line for line in shown.stdout.splitlines() if line.strip("│ ").startswith("sine")]
    cells = [c.strip() for c in rows[0].split("│")[1:-1]]
    assert cells[0] == "sine" and cells[3] == "—", cells
