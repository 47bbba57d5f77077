"""A run's checks after its search (`evolve --validate`, `evolve --confirm`): score, log.

Both run once the search has finished, between the loop and the report, not in its
background: the search decides nothing from them, so waiting costs no search quality, and
the cores stay the search's while it runs. Each check scores its candidates in batches
through the search's warm workers and the same cache as everything else, on its own lab
(a validation lab, or the run's lab with more seeds per task: a different task digest, so
its results have their own cache keys), and appends one event that `report` rebuilds it
from (minact.runs.checks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from minact.agreement import shared_tasks, task_names
from minact.candidate import Candidate
from minact.errors import ConfigError
from minact.evaluate import Evaluator
from minact.lab.loader import load_lab
from minact.lab.suites import resolve
from minact.lab.task import Lab
from minact.runs.checks import BASELINES_CONFIRMED, check_event
from minact.runs.ranking import RankingDocument, RankingEntry, lab_summary
from minact.score import Score
from minact.validate import validate

__all__ = ["confirmation", "validation", "validation_lab"]


def validation_lab(suite_or_file: str) -> Lab:
    """Returns the validation lab a `--validate` value names (a built-in suite or a tasks
    file); raises ConfigError naming the flag."""
    try:
        return load_lab(resolve(Path(suite_or_file)))
    except ConfigError as e:
        raise ConfigError(f"--validate {suite_or_file!r}: {e}") from None


def _score(
    lab: Lab, rows: Sequence[RankingEntry], evaluator: Evaluator
) -> tuple[list[Score], float]:
    """Returns the Scores of `rows` on `lab` (baselines marked as the rows say), and the
    seconds it took, through `evaluator`'s cache and workers."""
    cands = [c for r in rows if isinstance(c := validate(r["source"], name=r["name"]), Candidate)]
    started = time.monotonic()
    scores = evaluator.on_lab(lab).score(cands)
    baseline = {r["code_hash"]: r["baseline"] for r in rows}
    # The evaluator adds the reference; it is reported only when it was asked for.
    kept = [replace(s, baseline=baseline[s.code_hash]) for s in scores if s.code_hash in baseline]
    return kept, time.monotonic() - started


def validation(
    ranking: RankingDocument,
    suite_or_file: str,
    top: int,
    evaluator: Evaluator,
    say: Callable[[str], None],
) -> Mapping[str, Any]:
    """Scores the run's top `top` candidates by lab fitness (baselines among them count) on
    the validation lab; returns the event to append."""
    lab = validation_lab(suite_or_file)
    rows = [c for c in ranking["candidates"] if c["status"] == "ok"][:top]
    summary = lab_summary(lab)
    # Its tasks that are the lab's are scored too (their results are cached): the report
    # gives the fitness on all of them, and the verdict on the others (runs.checks).
    shared = shared_tasks(summary["tasks"], {str(t["digest"]) for t in ranking["tasks"]})
    said = f"validating the top {len(rows)} on {suite_or_file} ({len(lab.tasks)} tasks"
    if shared:
        held = len(lab.tasks) - len(shared)
        other = "the other task" if held == 1 else f"the other {held} tasks"
        said += (
            f"; {task_names(shared)} {'is' if len(shared) == 1 else 'are'} also in the "
            "run's lab, so "
            + (f"the verdict rests on {other} alone" if held else "none is held out")
        )
    say(said + ")")
    scores, seconds = _score(lab, rows, evaluator)
    return check_event(
        "validation",
        summary,
        scores,
        suite=suite_or_file,
        top=top,
        seconds=seconds,
        time=time.time(),
    )


def confirmation(
    ranking: RankingDocument,
    lab: Lab,
    top: int,
    seeds: int,
    evaluator: Evaluator,
    say: Callable[[str], None],
) -> Mapping[str, Any]:
    """Scores the run's top `top` new candidates and its best baselines again with `seeds`
    networks per task; returns the event to append."""
    ok = [c for c in ranking["candidates"] if c["status"] == "ok"]
    new = [c for c in ok if not c["baseline"]][:top]
    # The best baselines too: a claim is paired, so both sides need the same seeds.
    baselines = [c for c in ok if c["baseline"]][:BASELINES_CONFIRMED]
    more = lab.with_seeds(seeds)  # its size was checked before the search (jobs.opening.run_lab)
    if not new:
        # Baselines alone make no claim: training them again would cost minutes for nothing.
        # The event still says the check was asked for and why it made none (the report).
        reason = _nothing_to_confirm(ranking)
        say(f"confirmation skipped: {reason}")
        return check_event(
            "confirmation",
            lab_summary(more),
            [],
            seeds=seeds,
            top=top,
            seconds=0.0,
            time=time.time(),
            skipped=reason,
        )
    say(f"confirming the top {len(new)} and {len(baselines)} baselines with {seeds} seeds")
    scores, seconds = _score(more, [*new, *baselines], evaluator)
    return check_event(
        "confirmation",
        lab_summary(more),
        scores,
        seeds=seeds,
        top=top,
        seconds=seconds,
        time=time.time(),
    )


def _nothing_to_confirm(ranking: RankingDocument) -> str:
    """Returns why a run has no new candidate to confirm: how many were screened or failed."""
    new = [c for c in ranking["candidates"] if not c["baseline"]]
    screened = sum(1 for c in new if c["status"] == "screened")
    failed = len(new) - screened
    parts = [f"{screened} screened by the cascade"] if screened else []
    parts += [f"{failed} failed"] if failed else []
    why = f" ({', '.join(parts)})" if parts else ""
    return f"no new candidate was ranked on the full lab{why}, so there is no claim to confirm"
