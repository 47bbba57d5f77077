"""`minact evolve` as a job: options in, a finished (or stopped) run directory out.

The CLI parses flags into the settings the user gave; `minact.jobs.options.resolve` merges
them with the defaults, or on `--resume` with the settings the run was started with
(run.json keeps them), and refuses a change that would make the resumed run decide
differently from the run it continues. `run` sets up the cache, the evaluator, the
proposer and the run directory, runs the search, and writes the report. Ctrl-C (SIGINT)
stops the search cleanly: the report is still written and the summary says "interrupted".
The report is written before run.json says how the run ended; a stop that comes once the
search has ended waits for both (a second one leaves out the curves not yet drawn, or, once
they are, the report: run.json then says so).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack, nullcontext, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from minact.cache import FitnessCache
from minact.errors import ConfigError, MinactError
from minact.evaluate import EVALUATOR_VERSION, NOTHING_TRAINED, Evaluator, EvaluatorConfig
from minact.jobs import checks, opening, preflight, proposing, recorded
from minact.jobs.interrupt import (
    DeferredStop,
    deferring_stop_signals,
    raising_on_stop_signals,
    until_interrupted,
)
from minact.jobs.notes import cache_notes
from minact.jobs.options import EvolveOptions, check_budget, resolve, started_with
from minact.jobs.report import finish
from minact.lab.task import Lab
from minact.runs.catalog import run_ranking, skipped_warning
from minact.runs.history import History
from minact.runs.ranking import RankingDocument
from minact.runs.rundir import RunLog
from minact.search.cascade import Screen
from minact.search.config import FollowUpRuleName
from minact.search.loop import Loop, SearchConfig, Summary
from minact.search.proposers import RecordingProposer, ReplayProposer

__all__ = ["EvolveResult", "Hooks", "RunStopped", "run"]


@dataclass(slots=True)
class Hooks:
    """How the job talks to the user; the CLI supplies them (this module never prints)."""

    progress: Callable[[Loop], None] = lambda _: None
    say: Callable[[str], None] = lambda _: None
    live: AbstractContextManager[Any] = field(default_factory=nullcontext)


@dataclass(frozen=True, slots=True)
class EvolveResult:
    """A run that ended: how, its ranking, where it is, and what its report could not show."""

    summary: Summary
    ranking: RankingDocument
    directory: Path
    warnings: list[str]
    stopped: bool = False  # a stop came once the search had ended, and waited for the report


async def run(
    given: Mapping[str, Any],
    *,
    cache_dir: Path,
    runs_dir: Path,
    run_id: str | None = None,
    resume: Path | None = None,
    api_key: str | None = None,
    hooks: Hooks | None = None,
) -> EvolveResult:
    """Runs (or resumes) a search with the settings `given`, and writes its report."""
    stop = DeferredStop()
    with ExitStack() as holding:  # the run directory, for this process alone
        log = RunLog.open(resume) if resume is not None else None
        if log is not None:
            holding.enter_context(log.held())
        done = await _run(given, log, holding, stop, cache_dir, runs_dir, run_id, api_key, hooks)
    return replace(done, stopped=stop.deferred)


_FILES = ("validate", "replay")  # settings that may name a file (tasks: see run_lab)


def _absolute(value: str | None) -> str | None:
    """Returns `value` as an absolute path where it names something here, else as it is
    (a built-in suite's name, or a file that is not here: its error names it as given)."""
    return os.path.abspath(value) if value is not None and os.path.lexists(value) else value


async def _run(
    given: Mapping[str, Any],
    log: RunLog | None,
    holding: ExitStack,
    stop: DeferredStop,
    cache_dir: Path,
    runs_dir: Path,
    run_id: str | None,
    api_key: str | None,
    hooks: Hooks | None,
) -> EvolveResult:
    """`run`, with the resumed run's directory held (a new one is held in `holding`, and
    so is the deferral of a stop that comes once the search has ended: see `stop`)."""
    hooks = hooks or Hooks()
    resume = log is not None
    setup = _setup(given, log, hooks.say)
    given, previous = setup.given, setup.previous
    options, history, lab, config = setup.options, setup.history, setup.lab, setup.config
    # Before any work: folders that cannot be written and a server that cannot serve the
    # run end it in seconds, and leave no run directory behind.
    wanted = [(cache_dir, "--cache-dir")] + ([(runs_dir, "--runs-dir")] if log is None else [])
    with preflight.folders(*wanted):  # a start that fails leaves no empty folder behind
        # A resume of a search that reached its budget asks no proposal: no server either.
        done = len(history.evaluated())
        complete = proposing.search_complete(previous, history.ended, done, options.budget)
        whose = previous if complete else None
        async with proposing.proposer(options, api_key, hooks.say, whose) as (proposer, described):
            replaying = proposer if isinstance(proposer, ReplayProposer) else None
            with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
                created = log is None
                if log is None:
                    log = opening.create_log(runs_dir, run_id, options.seed, holding, hooks.say)
                meta = opening.run_meta(log, previous, options, config, lab)
                try:
                    log.write_run(meta)
                except ConfigError:
                    if created:  # a full disk: no folder that recorded nothing stays behind
                        preflight.remove_empty([log.directory])
                    raise
                finished = False  # run.json says how the run ended
                ended: Summary | None = None  # the search's outcome, once known
                try:
                    if options.record:  # after run.json: a refusal is said there too
                        proposer = RecordingProposer(proposer, log.directory / "llm.jsonl")
                    with Evaluator(lab, cache, _evaluator_config(options)) as evaluator:
                        config = proposing.fitted(config, options, described)
                        meta.update(described)
                        chosen = given.get("offline") is True
                        hooks.say(
                            proposing.complete_line(done, options.budget)
                            if complete
                            else proposing.describe(described, chosen, options.model)
                        )
                        event = "resume" if resume else "start"
                        first_line = {"event": event, "time": time.time(), **described}
                        events = _Events(log, first_line, wait=history.ended is not None)
                        screen = Screen.of_lab(evaluator, lab, evaluator.on_tasks)
                        loop = Loop(
                            config,
                            lab,
                            proposer,
                            evaluator,
                            events.append,
                            hooks.progress,
                            history,
                            screen,
                        )
                        with hooks.live:
                            # Ctrl-C cancels the search; what was evaluated is kept and reported.
                            summary = await until_interrupted(
                                loop.run(),
                                lambda: loop.summary(("interrupted", _SEARCH_STOPPED)),
                            )
                        with raising_on_stop_signals():
                            summary = _end_search(summary, setup, log, events, evaluator, meta,
                                                  hooks.say)  # fmt: skip
                        # The outcome is known: a stop now waits for the report and run.json
                        # (and, once they are written, for the workers to end); a second one
                        # stops sooner (jobs.report.finish), run.json saying what is missing.
                        ended = summary
                        stop.requested = summary.status == "interrupted"
                        holding.enter_context(
                            deferring_stop_signals(stop, lambda: hooks.say(_FINISHING))
                        )
                        data = finish(log, meta, evaluator, cache)
                        finished = True
                except BaseException as e:
                    if not finished:  # never leave it looking alive
                        stopped = isinstance(e, (KeyboardInterrupt, asyncio.CancelledError))
                        status = "interrupted" if stopped else "failed"
                        message = str(e)[:500] or f"{status} ({type(e).__name__})"
                        if ended is not None:  # the report is missing, or stale
                            message = _unreported(log, ended, None if stopped else message)
                        # A run folder that is gone or full fails these too; the error that
                        # stopped the run says more than theirs, so it is the one raised.
                        with suppress(ConfigError):
                            log.close()
                        with suppress(ConfigError):
                            log.write_end({**meta, "status": status, "message": message})
                        if stopped and ended is not None:
                            raise RunStopped(message) from None
                    raise
    warnings = data.warnings + cache_notes(cache.warnings)
    if replaying is not None and replaying.diverged is not None:  # said again at the end
        warnings.append(replaying.diverged)
    return EvolveResult(summary, data.ranking, log.directory, warnings)


# How run.json and the last line say a stop: the status says "interrupted" already.
_SEARCH_STOPPED = "stopped during the search; evaluated candidates are kept"
_CHECKS_STOPPED = "stopped during the checks after the search; its candidates are kept"
_CHECKS_FAILED = "the checks after the search failed ({}); --resume runs them again"


@dataclass(frozen=True, slots=True)
class _Setup:
    """What a session of a run starts from: the settings given (files made absolute), the
    run's record and log on a resume, and the options, lab and search settings they make."""

    given: Mapping[str, Any]
    previous: dict[str, Any]  # run.json of the run resumed ({} for a new run)
    started: EvolveOptions | None  # the options it was started with
    options: EvolveOptions
    history: History
    lab: Lab
    config: SearchConfig


def _setup(given: Mapping[str, Any], log: RunLog | None, say: Callable[[str], None]) -> _Setup:
    """Resolves a session's settings before any work; raises ConfigError naming a setting
    that is wrong, or one that a resume may not change."""
    previous = log.read_run() if log is not None else {}
    started = started_with(previous, given, log.run_json) if log is not None else None
    # Files the run reads again on a resume, kept absolute so that a resume from another
    # folder finds them, and so that one file given as two paths is one setting.
    given = {k: _absolute(v) if k in _FILES else v for k, v in given.items()}
    if started is not None:
        started = replace(
            started, validate=_absolute(started.validate), replay=_absolute(started.replay)
        )
    if log is None and "replay" in given:
        renamed = recorded.check_models(given)  # before the recorded list fills the gaps
        given, taken = recorded.replayed(given)
        if renamed:
            say(f"note: {renamed}")
        if taken:
            say(taken)
    options = resolve(given, started)
    history = History.from_events(log.events()) if log is not None else History()
    if log is not None:
        check_budget(options, given, history, log.run_json)
    lab = opening.run_lab(options, previous, "tasks" in given)
    if options.validate is not None:
        checks.validation_lab(options.validate)  # a bad --validate fails before the search
    # Keep where the lab was found, as an absolute path: ./tasks.toml (the default) or a
    # relative --tasks names another file, or none, once a resume runs from another folder.
    options = replace(options, tasks=os.path.abspath(lab.path))
    if log is not None and history.skipped:  # said once: the report is built quietly
        say(skipped_warning(log.events_path, history.skipped))
    if log is not None and (damage := log.damage()) is not None:
        say(damage)
    config = SearchConfig(
        budget=options.budget,
        concurrency=options.concurrency,
        seed=options.seed,
        islands=options.islands,
        max_calls=options.max_calls,
        prompt_chars=options.prompt_chars,
        follow_ups=options.follow_ups,
        follow_up_rule=cast(FollowUpRuleName, options.follow_up_rule),  # checked: CHOICES
        repair=options.repair,
    )
    return _Setup(given, previous, started, options, history, lab, config)


def _end_search(
    summary: Summary,
    setup: _Setup,
    log: RunLog,
    events: _Events,
    evaluator: Evaluator,
    meta: dict[str, Any],
    say: Callable[[str], None],
) -> Summary:
    """Runs the checks after a search that was not stopped, records in `meta` how the
    session ended and closes the log with its end line; returns the summary, interrupted
    where a stop came during the checks."""
    options, previous = setup.options, setup.previous
    # A resume that added nothing to a log that ends as this session does (killed before its
    # report) only writes what is missing.
    again = (
        not events.added
        and setup.history.ended == summary.status
        and _checks(options) == _checks(setup.started)
    )
    if summary.status != "interrupted" and not again:
        try:
            _check(log, events, options, setup.lab, evaluator, say)
        except KeyboardInterrupt:
            evaluator.interrupt()  # a batch may be in flight
            summary = replace(summary, status="interrupted", message=_CHECKS_STOPPED)
        except MinactError as e:  # a check's lab gone, its worker broken: the report stands
            summary = replace(summary, status="failed", message=_CHECKS_FAILED.format(e))
    meta.update(
        status=summary.status,
        message=summary.message,
        counters=summary.counters.to_dict(),
        seconds=previous.get("seconds", 0.0) + summary.seconds,
        device=evaluator.info.get("device") or previous.get("device") or NOTHING_TRAINED,
        worker=evaluator.info or previous.get("worker"),
    )
    if not again:
        events.append({"event": "end", "time": time.time(), "status": summary.status})
    log.close()
    return summary


class RunStopped(KeyboardInterrupt):
    """A second stop while the report of a run whose search had ended was written: what
    run.json now says (the CLI prints it)."""


_FINISHING = "stopping once the run's report is written; Ctrl-C again stops sooner"


def _unreported(log: RunLog, ended: Summary, error: str | None) -> str:
    """Returns run.json's message for a run whose report was stopped (`error` None) or
    failed once its search had ended."""
    if ended.status == "interrupted":  # its message would say the stop a second time
        how, search = "stopped again while its report was written", "the search was stopped"
    else:
        how = "stopped while its report was written"
        search = f"the search ended ({ended.status}: {ended.message})"
    how = how if error is None else error
    # The errors of a lock held too long and of run.json unwritten give advice: said once.
    advice = f": `minact report {log.directory}` writes the report"
    advice = "" if "`minact report " in how or "`minact evolve " in how else advice
    return f"{how}, after {search}; its candidates are kept{advice}"


def _evaluator_config(options: EvolveOptions) -> EvaluatorConfig:
    return EvaluatorConfig(
        device=options.device,
        compile=options.compile,
        batch_size=options.batch_size,
        threads=options.threads,
        workers=options.workers,
        backend=options.backend,
        ray_address=options.ray_address,
    )


class _Events:
    """Appends a session's events to the run's log, its opening line ("start", "resume")
    first. On a resume of a log that ended, the opening line waits for the session's first
    event: a session that adds nothing (the search and checks were done) adds no line."""

    def __init__(self, log: RunLog, opening: dict[str, Any], *, wait: bool) -> None:
        self._log, self._opening = log, opening
        self.added = False  # whether this session appended a line
        if not wait:
            self.append(opening)

    def append(self, event: dict[str, Any]) -> None:
        """Appends `event` (after the waiting opening line, if any); raises ConfigError."""
        if not self.added and event is not self._opening:
            self._log.append(self._opening)
        self._log.append(event)
        self.added = True


def _checks(options: EvolveOptions | None) -> tuple[Any, ...]:
    """Returns the checks after the search that `options` ask for (a resume may add some)."""
    if options is None:
        return ()
    confirm = (options.confirm, options.confirm_seeds) if options.confirm else None
    return (options.validate, options.validate_top if options.validate else None, confirm)


def _check(
    log: RunLog,
    events: _Events,
    options: EvolveOptions,
    lab: Lab,
    evaluator: Evaluator,
    say: Callable[[str], None],
) -> None:
    """Runs the checks the options ask for on the finished search's ranking, and logs them."""
    if options.validate is None and not options.confirm:
        return
    ranking, _ = run_ranking(log.directory, warn=None)  # a resume said what it skipped
    if options.validate is not None:
        top = options.validate_top
        events.append(dict(checks.validation(ranking, options.validate, top, evaluator, say)))
    if options.confirm:
        event = checks.confirmation(
            ranking, lab, options.confirm, options.confirm_seeds, evaluator, say
        )
        events.append(dict(event))
