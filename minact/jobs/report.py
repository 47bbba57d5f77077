"""`minact report` as a job: (re)write a run's report, with curves from the cache or the worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash
from minact.curves import Curve
from minact.errors import MinactError
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import default_tasks_path, load_lab
from minact.report import build, files
from minact.report.build import CurveSource
from minact.runs.rundir import RunLog

__all__ = ["evaluator_curves", "write_report"]


def evaluator_curves(evaluator: Evaluator) -> CurveSource:
    """Returns a curve source that asks `evaluator` (its cache first, then its worker)."""
    return evaluator.curves


def write_report(run_dir: Path, cache_dir: Path, device: str = "cpu") -> list[Path]:
    """Rewrites a run's report files and returns their paths; raises ConfigError.

    Curves the cache lacks are computed by a worker started only if needed, on the run's
    lab (or the built-in one when its file is gone: curves do not depend on the lab).
    """
    run = RunLog.open(run_dir).read_run()

    def curves(cands: Sequence[Candidate]) -> Mapping[Hash, Curve | None]:
        try:
            lab = load_lab(Path(str(run.get("tasks"))))
        except MinactError:
            lab = load_lab(default_tasks_path())
        with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
            with Evaluator(lab, cache, EvaluatorConfig(device=device)) as evaluator:
                return evaluator.curves(cands)

    return files.write(run_dir, build.build(run_dir, curves))
