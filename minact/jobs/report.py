"""`minact report` as a job: (re)write a run's report, with curves from the cache or the worker.

`finish` is the end of `minact evolve`: the report of a run whose search has ended, then
run.json saying how it ended, in that order, so that a run.json that says how the run
ended always has that run's report beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash
from minact.curves import Curve
from minact.errors import ConfigError, MinactError
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab import suites
from minact.lab.loader import load_lab
from minact.lab.task import Lab
from minact.report import build, files
from minact.report.build import CurveSource
from minact.report.data import ReportData
from minact.runs import index
from minact.runs.catalog import Warn, log_warning
from minact.runs.rundir import RunLog

__all__ = ["finish", "write_report"]


def _lab_curves(lab: Lab, cache: FitnessCache, device: str = "cpu") -> CurveSource:
    """Returns a curve source that asks the cache first, then a worker of its own, started
    only if the cache lacks a curve."""

    def curves(cands: Sequence[Candidate]) -> Mapping[Hash, Curve | None]:
        with Evaluator(lab, cache, EvaluatorConfig(device=device)) as evaluator:
            return evaluator.curves(cands)

    return curves


def write_report(run_dir: Path, cache_dir: Path, device: str = "cpu") -> list[Path]:
    """Rewrites a run's report files and returns their paths; raises ConfigError.

    Curves the cache lacks are computed by a worker started only if needed, on the run's
    lab (or the built-in one when its file is gone: curves do not depend on the lab).
    A report of a live run whose run.json is written meanwhile (the run ended, or a resume
    began) is built again, so that it never replaces the run's own, newer report.
    """
    log = RunLog.open(run_dir)
    run = log.read_run()

    def curves(cands: Sequence[Candidate]) -> Mapping[Hash, Curve | None]:
        try:
            lab = load_lab(Path(str(run.get("tasks"))))
        except MinactError:  # the packaged lab: a ./tasks.toml may be anything, or broken
            lab = load_lab(suites.suite_path("default"))
        with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
            return _lab_curves(lab, cache, device)(cands)

    warn: Warn | None = log_warning
    while True:
        seen = log.version()
        data = build.build(run_dir, curves, warn=warn)
        with log.writing():
            # A run that ended (or was resumed) while this report was built has written
            # run.json, and its own report before it: this one, of the run as it was, would
            # replace that report with a stale one. Build it again from what is there now.
            if log.version() == seen:
                return files.write(run_dir, data)
        warn = None  # the log's warnings were said once


def finish(
    log: RunLog, meta: dict[str, Any], evaluator: Evaluator, cache: FitnessCache
) -> ReportData:
    """Writes the report of a run whose search has ended (its log closed), then run.json
    (`meta`: how the run ended); returns the report's data.

    Curves come from the run's evaluator, or, where a stop ended its workers (the run is
    interrupted), from a worker of its own, as `minact report` draws them. A
    KeyboardInterrupt while they are drawn (a second stop) leaves out those the cache
    lacks; one while the files are written goes on to the caller, run.json not yet
    rewritten.
    """
    stopped = meta.get("status") == "interrupted"
    curves = _lab_curves(evaluator.lab, cache) if stopped else evaluator.curves
    try:
        data = build.build(log.directory, curves, warn=None, meta=meta)
    except KeyboardInterrupt:
        evaluator.interrupt()  # its curves now come from the cache alone
        data = build.build(log.directory, evaluator.curves, warn=None, meta=meta)
        if any(w.startswith("no curve for") for w in data.warnings):
            data.warnings.append(
                f"a stop came before every curve was drawn: `minact report {log.directory}` "
                "draws the rest"
            )
    # The index is written once run.json says what the ranking's "run" says.
    with log.writing():  # a `minact report` of the run writes before or after, not between
        files.write(log.directory, replace(data, stamp=None))
        try:
            log.write_run(meta)
        except ConfigError as e:  # a full disk: the caller marks the run ended as it can
            raise ConfigError(
                f"{e}; the run's report is written, but run.json could not record how the "
                f"run ended ({meta.get('status')}): once it can be written, `minact evolve "
                f"--resume {log.directory}` records it, asking no LLM"
            ) from None
        index.write(log.directory, data.ranking, index.stamp(log.directory), data.skipped)
    return data
