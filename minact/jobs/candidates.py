"""`minact show` and `minact export` as jobs: find one candidate, write it out as a module."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minact.cache import FitnessCache
from minact.candidate import Hash, Rejection
from minact.errors import CacheError, ConfigError, UsageError
from minact.evaluate import EVALUATOR_VERSION
from minact.export import NAME_RULE, module_text, valid_name
from minact.numbers import number_text
from minact.runs.catalog import Found, all_runs, find, log_warning
from minact.runs.ranking import fitness_kind, fitness_specs
from minact.runs.rundir import RunLog
from minact.validate import validate

__all__ = ["Exported", "export", "find_candidate", "run_lab"]


def find_candidate(prefix: str, runs_dir: Path, run: Path | None, cache_dir: Path) -> Found:
    """Returns the candidate whose code hash starts with `prefix`, in the runs or the cache.

    A cache that cannot be opened (damaged, read-only, on a full disk) does not hide what
    the runs record: they are searched alone, with a warning that the cache was not; a
    prefix no run holds then fails with the cache's error beside its own.
    """
    runs = [run] if run is not None else all_runs(runs_dir)
    where = f"run {run}" if run is not None else "the runs"
    if not cache_dir.exists():
        return find(prefix, runs, where=where)
    try:
        with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
            sources = list(cache.sources())
    except CacheError as unread:
        try:
            found = find(prefix, runs, where=where)
        except UsageError:  # no hash prefix at all: the cache has nothing to do with it
            raise
        except ConfigError as e:
            raise ConfigError(f"{e}; the cache was not searched: {unread}") from None
        log_warning(f"warning: the cache was not searched for {prefix!r}: {unread}")
        return found
    return find(prefix, runs, sources, where=where)


@dataclass(frozen=True, slots=True)
class Exported:
    """A written module.

    Attributes:
        target: the file written.
        name: the function's name in it.
        failed: "status: reason" where the candidate's recorded evaluation did not pass
            (the module's docstring says so too); None otherwise.
    """

    target: Path
    name: str
    failed: str | None = None


def export(
    found: Found,
    output: Path | None,
    name: str | None,
    cache_dir: Path | None = None,
    *,
    force: bool = False,
) -> Exported:
    """Writes `found` as a standalone module.

    `output` is the file, or a folder to write `<name>.py` into (default: the current
    folder). An existing file (a lab file, a run's run.json, ...) is replaced only with
    `force`.

    Refuses code that no longer passes static validation, and code whose last evaluation
    crashed (in the run, or as recorded in the cache at `cache_dir`): a module that kills
    the process importing it is not a result. Code that failed otherwise (too_costly,
    nonfinite, ...) is exported with that status in its docstring, and `failed` says it:
    those verdicts hold for a lab's budget and probe range, and the code is still the
    user's to read or to try elsewhere.
    """
    fname = name or f"act_{found.code_hash[:8]}"
    if not valid_name(fname):
        raise ConfigError(f"--name {fname!r}: the name must be {NAME_RULE}")
    checked = validate(found.source)
    if isinstance(checked, Rejection):
        raise ConfigError(
            f"{found.code_hash[:12]} does not pass minact's validation ({checked.reason}); "
            "it is not exported"
        )
    verdicts = _verdicts(found, cache_dir)
    crashes = [reason for status, reason in verdicts if status == "crashed"]
    if crashes:
        raise ConfigError(
            f"{found.code_hash[:12]} crashed the evaluation worker when last evaluated "
            f"({crashes[0]}); code that crashes is not exported"
        )
    failure = _failure(verdicts)
    target = output or Path(f"{fname}.py")
    if target.is_dir():  # as cp does: the module goes into the folder
        target = target / f"{fname}.py"
    text = module_text(found.source, fname, _docstring(found, fname, verdicts))
    try:
        # "x" creates the file or fails if it is there, in one step: no race with a check.
        with target.open("w" if force else "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise ConfigError(f"{target} exists; --force replaces it") from None
    except IsADirectoryError:  # made meanwhile, or a folder named <name>.py
        raise ConfigError(f"cannot write {target}: a folder is there; give another -o") from None
    except OSError as e:
        raise ConfigError(f"cannot write {target}: {e.strerror or e}") from None
    return Exported(target, fname, f"{failure[0]}: {failure[1]}" if failure else None)


# Statuses under which the worker admitted the code (a screened candidate trained on part
# of the lab); every other one is a failure of some check.
_PASSED = frozenset({"ok", "screened"})


def _failure(verdicts: list[tuple[str, str]]) -> tuple[str, str] | None:
    """Returns the first (status, reason) of `verdicts` that is a failed check, if any."""
    return next(((s, r) for s, r in verdicts if s not in _PASSED), None)


def _verdicts(found: Found, cache_dir: Path | None) -> list[tuple[str, str]]:
    """Returns (status, reason) of `found`'s evaluation: its run entry's, else what the cache
    at `cache_dir` recorded of it (admissions, transient failures; empty when nothing).
    A crash the cache recorded counts beside a run entry too: it may come from a later
    command (a rescore on another lab), and crashing code is never exported.

    A cache that cannot be opened (damaged, read-only) does not hide a run's entry, as it
    does not in `find_candidate`: the run's verdict stands, with a warning that the cache's
    record was not read; code that only the cache knows then fails with its error."""
    cached: list[tuple[str, str]] = []
    if cache_dir is not None and cache_dir.exists():
        try:
            with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
                cached = cache.verdicts(Hash(found.code_hash))
        except CacheError as unread:
            if found.entry is None:
                raise
            log_warning(
                f"warning: the cache's record of {found.code_hash[:12]} was not read "
                f"(a crash in a later command would not be seen): {unread}"
            )
    if found.entry is None:
        return cached
    entry = (found.entry["status"], found.entry["reason"])
    return [entry, *(v for v in cached if v[0] == "crashed")]


_ADMITTED = (
    "When evaluated, minact ran it only in a separate worker process, which admitted it "
    "(shape and dtype kept, pointwise, f and f' finite in float64 and float32 at fixed, "
    "secretly salted and random inputs of the probe range, cost within budget)"
)


def _evaluation(found: Found, verdicts: list[tuple[str, str]]) -> str:
    """Returns what the docstring says of the evaluation: only the checks it passed."""
    failure = _failure(verdicts)
    if failure is not None:
        status, reason = failure
        return (
            "When evaluated, minact ran it only in a separate worker process, and it did not "
            f"pass: its recorded status is {status}"
            + (f" ({reason})" if reason else "")
            + ". The checks it failed are not claimed; minact ranks no such candidate."
        )
    if not verdicts:
        return "No evaluation of it is recorded: how it runs was not checked."
    status, reason = verdicts[0]
    if found.entry is None:
        return f"{_ADMITTED}; no run records its score."
    if status == "screened":
        return (
            f"{_ADMITTED}; the lab's evaluation cascade screened it ({reason}): its fitness "
            "on the whole lab was not measured."
        )
    return f"{_ADMITTED}; it trained to finite losses on the lab (status ok)."


def run_lab(found: Found) -> dict[str, Any]:
    """Returns the lab summary of `found`'s run, as ranking documents hold it ({} without a
    readable run.json: its fitness kind is then the default, what a run without one ranked
    by)."""
    lab: Any = {}
    if found.run is not None:
        try:
            lab = RunLog.open(found.run).read_run().get("lab_summary")
        except ConfigError:
            pass
    lab = lab.get("lab") if isinstance(lab, dict) else None
    return lab if isinstance(lab, dict) else {}


_MEANING = {
    "mean_log_ratio": "mean log OOD-MSE ratio to the reference; lower is better, 0 = reference",
    "mean_ood_mse": "mean OOD MSE over the lab's tasks; lower is better",
}


def _docstring(found: Found, name: str, verdicts: list[tuple[str, str]]) -> str:
    e = found.entry
    lines = [f"{name}: an activation function found by minact.", ""]
    if e is not None and e["fitness"] is not None:
        # With one network per task there is no spread over seeds: none is claimed.
        spread = e["fitness_spread"]
        lab = run_lab(found)
        kind = fitness_kind(lab)
        # The digits the run's report gives this fitness kind: a log-ratio's "+.4f" printed
        # an MSE of 28.38 as "+28.3840".
        spec, spread_spec = fitness_specs(lab)
        lines.append(
            f"Fitness {number_text(e['fitness'], spec)}"
            + (
                f" ± {number_text(spread, spread_spec)} (sd over seeds)"
                if spread is not None
                else ""
            )
            + f" ({_MEANING.get(kind, kind + '; lower is better')})"
        )
    if e is not None and found.run is not None:
        note = e.get("note")
        lines.append(
            f"Origin: run {found.run}, proposal {e.get('index')} ({e.get('origin')}"
            + (f": {note}" if note else "")
            + ")"
        )
        if e["parent"]:
            lines.append(f"Parent: {e['parent']}")
    lines.append(f"Code hash: {found.code_hash}")
    lines += [
        "",
        "Checked by minact: at export, the source passed static validation (allow-listed",
        "elementwise torch/math code computing in floating point: no integer division,",
        "rounding modes, integer tensors or big Python integers), and no crash of it is",
        "recorded.",
        *textwrap.wrap(_evaluation(found, verdicts), 88),
    ]
    return "\n".join(lines)
