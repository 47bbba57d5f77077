"""How a run opens: its folder (new, or one whose run recorded nothing, started afresh),
its lab (on a resume, the one it started with) and run.json's first content."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import minact
from minact.errors import ConfigError
from minact.jobs.options import EvolveOptions
from minact.lab.cascade import stage_tasks
from minact.lab.loader import default_tasks_path, lab_with_seeds, load_lab
from minact.lab.task import Lab
from minact.runs.ranking import lab_summary
from minact.runs.rundir import RunExistsError, RunLog, new_run_id, recorded_nothing
from minact.search.loop import SearchConfig

__all__ = ["cascade_record", "create_log", "run_lab", "run_meta"]


def run_meta(
    log: RunLog,
    previous: Mapping[str, Any],
    options: EvolveOptions,
    config: SearchConfig,
    lab: Lab,
) -> dict[str, Any]:
    """Returns run.json's content at the start of a run (status "running")."""
    return {
        **previous,
        "run_id": log.directory.name,
        "directory": str(log.directory),
        "minact": minact.__version__,
        "created": previous.get("created", time.time()),
        "status": "running",
        "message": "",
        "options": options.to_dict(),
        "budget": config.budget,
        "concurrency": config.concurrency,
        "seed": config.seed,
        "islands": config.islands,
        "max_calls": config.call_cap,
        "tasks": options.tasks or str(lab.path),  # absolute (see minact.jobs.evolve)
        "lab_digest": lab.digest(),
        "task_digests": [t.digest() for t in lab.tasks],
        "lab_summary": lab_summary(lab),
        "cascade": cascade_record(lab),
    }


def run_lab(options: EvolveOptions, previous: Mapping[str, Any], tasks_given: bool = True) -> Lab:
    """Returns the run's lab; on a resume it must be the lab the run started with.

    `tasks_given`: whether --tasks was given; on a resume without it, a tasks file that
    is gone is said as the run's, with what to give instead.
    """
    path = Path(options.tasks) if options.tasks else default_tasks_path()
    if previous and not tasks_given and not path.exists():
        raise ConfigError(
            f"{path}: the tasks file the run started with is gone; give the same tasks with "
            "--tasks (a copy of the file, or the built-in lab's name) to resume it"
        )
    lab = load_lab(path)
    if options.confirm:  # refused now, not after the search
        lab_with_seeds(lab, options.confirm_seeds, "--confirm-seeds")
    if previous and lab.digest() != previous.get("lab_digest"):
        raise ConfigError(f"{lab.path}: the lab differs from the one the run started with")
    if previous and [t.digest() for t in lab.tasks] != previous.get("task_digests"):
        raise ConfigError(f"{lab.path}: the tasks differ from the ones the run started with")
    if previous and "cascade" not in previous:
        return replace(lab, cascade=None)  # a run from before cascades goes on without one
    if previous and cascade_record(lab) != previous["cascade"]:
        raise ConfigError(
            f"{lab.path}: [lab.cascade] {cascade_record(lab)} differs from the run's "
            f"{previous['cascade']}; the cascade decides which candidates are screened, "
            "so a resumed run keeps it"
        )
    return lab


def cascade_record(lab: Lab) -> dict[str, Any] | None:
    """Returns the run.json record of the lab's cascade: its settings and stage-1 tasks."""
    c = lab.cascade
    if c is None:
        return None
    return {**c.to_dict(), "stage_tasks": [t.name for t in stage_tasks(lab.tasks, c.tasks, c.seed)]}


def create_log(
    runs_dir: Path, run_id: str | None, seed: int, holding: ExitStack, say: Callable[[str], None]
) -> RunLog:
    """Returns the log of a new run directory, held in `holding`: runs_dir/run_id, or a new
    id's. A run_id whose folder recorded nothing (its start was killed) is started afresh."""
    if run_id is not None and recorded_nothing(runs_dir / run_id):
        log = RunLog(runs_dir / run_id)
        holding.enter_context(log.held())  # first: a start in progress holds its folder
        log.clear_leftovers()
        say(
            f"note: {log.directory} holds no run.json (its run stopped before it recorded "
            f"anything): run {run_id} starts afresh there, with the settings given"
        )
        return log
    log = _new_log(runs_dir, run_id, seed)
    holding.enter_context(log.held())
    return log


def _new_log(runs_dir: Path, run_id: str | None, seed: int) -> RunLog:
    if run_id is not None:
        return RunLog.create(runs_dir, run_id)
    base = new_run_id(time.time(), seed)
    for n in range(1, 100):
        try:
            return RunLog.create(runs_dir, base if n == 1 else f"{base}-{n}")
        except RunExistsError:
            continue  # a run started in the same second: take the next suffix
    raise ConfigError(f"cannot create a run directory under {runs_dir}: 99 names are taken")
