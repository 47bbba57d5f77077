"""Tests for minact.jobs.rescore's rank agreement: what it ranks by, and which tasks it counts
as the candidates' own (hand-made ranking documents and the tiny lab; nothing is trained)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from minact.agreement import kendall_tau
from minact.jobs.rescore import _agreement, _folder, _shared
from minact.lab.loader import load_lab
from tests.conftest import TINY_TASKS, raised_on_fifo


def _doc(fitness: str, rows: list[tuple[str, float, list[float], list[float]]]) -> Any:
    """A rescore's ranking document: (name, original fitness, log-ratios, OOD MSEs) per row."""
    tasks = [f"t{i}" for i in range(len(rows[0][2]))]
    candidates = [
        {
            "name": name,
            "status": "ok",
            "original_fitness": original,
            "tasks": {
                t: {"log_ratio": r, "ood_loss": m}
                for t, r, m in zip(tasks, ratios, mse, strict=True)
            },
        }
        for name, original, ratios, mse in rows
    ]
    return {
        "lab": {"fitness": fitness},
        "tasks": [{"name": t, "digest": f"d{t}"} for t in tasks],
        "candidates": candidates,
    }


def test_the_agreement_ranks_by_the_measure_the_new_labs_fitness_averages() -> None:
    # The new lab's fitness is the mean OOD MSE: a ranks first there (mean 1.0), then b
    # (2.0), then c (3.0), as the original fitness does; by mean log-ratio the order is c, b, a.
    rows = [
        ("a", 0.1, [0.9, 0.9, 0.9], [1.0, 1.0, 1.0]),
        ("b", 0.2, [0.5, 0.5, 0.5], [2.0, 2.0, 2.0]),
        ("c", 0.3, [0.1, 0.1, 0.1], [1.0, 1.0, 7.0]),
    ]
    mse = _agreement(_doc("mean_ood_mse", rows), None)
    assert mse is not None and mse["kendall_tau"]["value"] == 1.0
    ratio = _agreement(_doc("mean_log_ratio", rows), None)
    assert ratio is not None and ratio["kendall_tau"]["value"] == -1.0
    assert ratio["kendall_tau"]["value"] == kendall_tau([0.1, 0.2, 0.3], [0.9, 0.5, 0.1])


def test_a_task_of_the_candidates_lab_trained_with_other_seeds_is_still_theirs() -> None:
    # `rescore --seeds 3` on the run's own lab: every task's digest changes with its number of
    # networks, but each is the very task the candidates were ranked on, not a held-out one.
    written = load_lab(TINY_TASKS)
    home = frozenset(t.digest() for t in written.tasks)
    assert _shared(written, written, home) == {"sine": False, "product": False}
    more = written.with_seeds(3)
    assert not home & {t.digest() for t in more.tasks}
    assert _shared(more, written, home) == {"sine": True, "product": True}
    assert _shared(more, written, frozenset({written.tasks[0].digest()})) == {"sine": True}
    assert _shared(more, written, None) is None  # candidates from hashes: their lab not known


def test_retrained_shared_tasks_are_named_and_left_out_of_the_held_out_agreement() -> None:
    rows = [
        ("a", 0.1, [0.1, 0.5, 0.9], [1.0, 1.0, 1.0]),
        ("b", 0.2, [0.2, 0.4, 0.8], [1.0, 1.0, 1.0]),
        ("c", 0.3, [0.3, 0.3, 0.7], [1.0, 1.0, 1.0]),
        ("d", 0.4, [0.4, 0.2, 0.6], [1.0, 1.0, 1.0]),
    ]
    got = _agreement(_doc("mean_log_ratio", rows), {"t0": True})
    assert got is not None and got["shared_tasks"] == ["t0"]
    assert got["reseeded_tasks"] == ["t0"]
    # Over t1 and t2 alone the ranking reverses the original one.
    assert got["held_out"]["tasks"] == 2 and got["held_out"]["kendall_tau"]["value"] == -1.0
    alike = _agreement(_doc("mean_log_ratio", rows), {"t0": False})
    assert alike is not None and alike["reseeded_tasks"] == []


@pytest.mark.parametrize(("reseeded", "said"), [(False, "scored alike there"), (True, "--seeds")])
def test_the_agreement_says_how_the_shared_tasks_were_scored(reseeded: bool, said: str) -> None:
    from minact.report.agreement import agreement_text

    rows = [(n, v, [v, 1 - v, v], [1.0] * 3) for n, v in (("a", 0.1), ("b", 0.2), ("c", 0.3))]
    got = _agreement(_doc("mean_log_ratio", rows), {"t0": reseeded})
    text = agreement_text(got)
    assert "1 of the 3 tasks here (t0) is a task of the lab the candidates came from" in text
    assert said in text


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_where_a_rescore_folder_keeps_its_ranking_is_not_waited_on(tmp_path: Path) -> None:
    # The folder a rescore would replace is read first: a FIFO there blocked the rescore for
    # ever once its training was done. It is not a ranking, so the rescore goes beside it.
    (tmp_path / "rescore-tiny").mkdir()
    fifo = tmp_path / "rescore-tiny" / "ranking.json"
    os.mkfifo(fifo)
    doc: Any = {"lab": {"digest": "d", "fitness": "mean_log_ratio"}, "tasks": []}
    chosen: list[Path] = []
    assert raised_on_fifo(fifo, lambda _: chosen.append(_folder(tmp_path, "tiny", doc))) is None
    assert chosen[0].parent == tmp_path and chosen[0].name.startswith("rescore-tiny-")
