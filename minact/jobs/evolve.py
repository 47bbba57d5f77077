"""`minact evolve` as a job: options in, a finished (or stopped) run directory out.

The CLI parses flags into the settings the user gave; `resolve` merges them with the
defaults, or on `--resume` with the settings the run was started with (run.json keeps
them), and refuses a change that would make the resumed run decide differently from the
run it continues. `run` sets up the cache, the evaluator, the proposer and the run
directory, runs the search, and writes the report. Ctrl-C (SIGINT) stops the search
cleanly: the report is still written and the summary says "interrupted".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import minact
from minact.cache import FitnessCache
from minact.errors import ConfigError
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.jobs import checks, preflight, proposing
from minact.jobs.interrupt import until_interrupted
from minact.jobs.report import evaluator_curves
from minact.lab.cascade import stage_tasks
from minact.lab.checks import INT_RULES
from minact.lab.loader import default_tasks_path, load_lab
from minact.lab.task import Lab
from minact.report import build as report_build
from minact.report import files as report_files
from minact.runs.catalog import run_ranking, skipped_warning
from minact.runs.history import History
from minact.runs.ranking import RankingDocument, lab_summary
from minact.runs.rundir import RunExistsError, RunLog, new_run_id
from minact.runs.schema import BadValue
from minact.search.cascade import Screen
from minact.search.loop import Loop, SearchConfig, Summary
from minact.search.proposers import RecordingProposer

__all__ = [
    "CHOICES",
    "FREE_ON_RESUME",
    "LIMITS",
    "EvolveOptions",
    "EvolveResult",
    "Hooks",
    "check_options",
    "resolve",
    "run",
]

# Settings a resume may change: they do not change what the search decides, only how far
# it goes, where the model is served, and where candidates train.
FREE_ON_RESUME = frozenset(
    {
        "budget",
        "max_calls",
        "llm_url",
        "llm_retries",
        "llm_timeout",
        "record",
        "device",
        "compile",
        "batch_size",
        "backend",
        "ray_address",
        "workers",
        "threads",
        "confirm",  # checks after the search: they decide nothing in it
        "confirm_seeds",
        "tasks",  # checked apart: the lab must be the same, wherever its file now is
    }
)

# Settings that steer only what a model is asked (and which model): free when no model answers.
_PROMPT_SETTINGS = {
    "llm_url",
    "model",
    "model_weights",
    "temperature",
    "max_tokens",
    "prompt_chars",
    "context_tokens",
}


@dataclass(frozen=True, slots=True)
class EvolveOptions:
    """Every setting of a search (`minact evolve --help` says what each does).

    Stored in run.json as "options", so that `--resume` restores all of them. Paths are
    kept as the text the user gave. The API key is never part of it.
    """

    budget: int = 100
    tasks: str | None = None
    concurrency: int = 4
    seed: int = 0
    islands: int = 4
    max_calls: int = 0  # 0: 4 x budget + concurrency
    prompt_chars: int = 8000
    offline: bool = False
    llm_url: str | None = None  # one URL, or one per model (comma-separated)
    model: str | None = None  # one model, or an ensemble (comma-separated)
    model_weights: str | None = None  # how often each model is drawn (comma-separated)
    follow_ups: int = 2
    repair: bool = True  # rewrite known slips in LLM replies (minact.validate.repair)
    context_tokens: int = 0  # 0: ask the server
    temperature: float = 0.8
    max_tokens: int = 1024
    llm_retries: int = 4
    llm_timeout: float = 300.0
    replay: str | None = None
    record: bool = False
    device: str = "auto"
    compile: str = "auto"
    batch_size: int = 0
    backend: str = "local"
    ray_address: str | None = None
    workers: int = 0  # 0: auto (minact.sandbox.pool)
    threads: int = 0  # torch threads per worker (0: the cores split between the workers)
    validate: str | None = None  # a built-in suite or tasks file, never shown to the search
    validate_top: int = 5
    confirm: int = 0  # the top K new candidates scored again with confirm_seeds seeds
    confirm_seeds: int = 5

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvolveOptions:
        """Builds options from `to_dict` output (unknown keys ignored, missing ones default)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_run(cls, run: Mapping[str, Any]) -> EvolveOptions:
        """Returns the options a run was started with (from a run.json of any version)."""
        if isinstance(run.get("options"), dict):
            # Runs from before repairs existed judged replies as the model wrote them.
            return cls.from_dict({"repair": False, **run["options"]})
        # run.json before options were stored: what it kept at top level.
        kept = {k: run[k] for k in ("budget", "concurrency", "seed", "islands") if k in run}
        llm = run.get("llm") or {}
        return cls(
            **kept,
            tasks=run.get("tasks"),
            offline=run.get("proposer") == "offline",
            llm_url=llm.get("url"),
            model=llm.get("model"),
            replay=run.get("replay"),
        )


# The range of each number setting, (lo, hi or None), as the CLI's flags allow it
# (minact.cli.evolve; a test compares them), except where 0 stands for "auto"
# (max_calls, workers). A resume reads the settings back from run.json, which users edit.
LIMITS: dict[str, tuple[float, float | None]] = {
    "budget": (1, None),
    "concurrency": (1, None),
    "seed": (0, 2**63 - 1),  # what every generator minact seeds accepts
    "islands": (1, None),
    "max_calls": (0, None),  # 0: 4 x budget + concurrency
    "prompt_chars": (500, None),
    "follow_ups": (0, None),
    "context_tokens": (0, None),
    "temperature": (0.0, None),
    "max_tokens": (16, None),
    "llm_retries": (0, None),
    "llm_timeout": (1.0, None),
    "batch_size": (0, None),
    "workers": (0, None),  # 0: auto
    "threads": (0, None),
    "validate_top": (1, None),
    "confirm": (0, None),
    "confirm_seeds": (1, INT_RULES["seeds"][1]),  # as many networks per task as a lab's
}
# The settings that take one of a few words (the CLI's choices).
CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("auto", "cpu", "cuda"),
    "compile": ("auto", "on", "off"),
    "backend": ("local", "ray"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_option(key: str, name: str, value: Any, default: Any) -> None:
    """Raises BadValue for `key` unless `value` fits the setting `name`, whose default is
    `default`, as its flag would."""
    flag = f"as for {_flag(name)}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise BadValue(key, value, f"true or false, {flag}")
    elif name in CHOICES:
        if value not in CHOICES[name]:
            raise BadValue(key, value, f"one of {', '.join(CHOICES[name])}, {flag}")
    elif default is None or isinstance(default, str):
        if not (value is None or isinstance(value, str)):
            raise BadValue(key, value, f"a string or null, {flag}")
    else:
        lo, hi = LIMITS[name]
        integer = isinstance(default, int)
        what = "an integer" if integer else "a number"
        what += f" in {lo}..{hi}" if hi is not None else f" >= {lo}"
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise BadValue(key, value, f"{what}, {flag}")
        if not (lo <= value and (hi is None or value <= hi)):  # NaN fails too
            raise BadValue(key, value, f"{what}, {flag}")


def check_options(
    options: EvolveOptions, skip: Collection[str] = (), key: Callable[[str], str] = str
) -> None:
    """Raises BadValue, for `key(name)`, at the first setting (not in `skip`) whose type
    or value its flag would refuse."""
    for f in fields(EvolveOptions):
        if f.name not in skip:
            _check_option(key(f.name), f.name, getattr(options, f.name), f.default)


# Where run.json keeps a setting, for a run from before "options" were stored.
_OLD_KEYS = {"llm_url": "llm.url", "model": "llm.model"}


def _started(run: Mapping[str, Any], given: Mapping[str, Any], where: Path) -> EvolveOptions:
    """Returns the settings run.json says a run was started with; raises ConfigError naming
    the key when one has a value its flag would refuse (the user's flags, which replace
    them, are not checked here)."""
    started = EvolveOptions.from_run(run)

    def key(name: str) -> str:
        return f"options.{name}" if "options" in run else _OLD_KEYS.get(name, name)

    try:
        check_options(started, skip=given.keys(), key=key)
    except BadValue as e:
        raise ConfigError(f"{where}: {e}") from None
    return started


def _check_budget(
    options: EvolveOptions, given: Mapping[str, Any], history: History, where: Path
) -> None:
    """Refuses a resume whose budget is below the candidates the run already evaluated (the
    budget counts them: it would stop at once, with run.json saying less than the log)."""
    done = len(history.evaluated())
    if options.budget >= done:
        return
    if "budget" in given:
        raise ConfigError(
            f"--budget {options.budget}: the run already evaluated {done} candidates, and "
            f"the budget counts them; give --budget {done} or more to continue it"
        )
    raise ConfigError(
        f"{where}: key 'options.budget' has a bad value ({options.budget}: the run already "
        f"evaluated {done} candidates); give --budget {done} or more to continue it"
    )


def resolve(given: Mapping[str, Any], started: EvolveOptions | None = None) -> EvolveOptions:
    """Returns the options of a run: `given` over the defaults, or over `started` on a resume.

    On a resume, a given setting that differs from the started one and would change what
    the search decides raises ConfigError naming the flag: the same replies must give the
    same run.
    """
    if started is None:
        return EvolveOptions(**given)
    # Without a model, the prompt and sampling settings steer nothing; a replay's replies
    # are fixed, but its models are drawn and its follow-ups fitted to the context as before.
    free = set(FREE_ON_RESUME)
    if started.offline:
        free |= _PROMPT_SETTINGS
    elif started.replay:
        free |= {"llm_url", "temperature"}
    if started.offline or not (started.llm_url or started.replay):
        free |= {"follow_ups", "repair"}  # the offline mutator is never answered or repaired
    for key, value in given.items():
        old = getattr(started, key)
        if value != old and key not in free:
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):  # a switch: name it as the user typed it
                given_as = flag if value else f"--no-{key.replace('_', '-')}"
                was = "without it" if value else f"with {flag}"
            else:
                given_as, was = f"{flag} {value!r}", f"with {old!r}"
            raise ConfigError(
                f"{given_as}: the run was started {was}, and a resumed run keeps the "
                "settings that steer the search (so that the same replies give the same run); "
                f"leave {given_as.split()[0]} out to continue it, or start a new run"
            )
    return replace(started, **given)


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
    hooks = hooks or Hooks()
    log: RunLog | None = RunLog.open(resume) if resume is not None else None
    previous = log.read_run() if log is not None else {}
    started = _started(previous, given, log.run_json) if log is not None else None
    options = resolve(given, started)
    history = History.from_events(log.events()) if log is not None else History()
    if log is not None:
        _check_budget(options, given, history, log.run_json)
    lab = _lab(options, previous)
    if options.validate is not None:
        checks.validation_lab(options.validate)  # a bad --validate fails before the search
    # Keep where the lab was found, so that a resume from another folder finds it again.
    options = replace(options, tasks=str(lab.path))
    if log is not None and history.skipped:  # said once: the report is built quietly
        hooks.say(skipped_warning(log.events_path, history.skipped))
    config = SearchConfig(
        budget=options.budget,
        concurrency=options.concurrency,
        seed=options.seed,
        islands=options.islands,
        max_calls=options.max_calls,
        prompt_chars=options.prompt_chars,
        follow_ups=options.follow_ups,
        repair=options.repair,
    )
    # Before any work: folders that cannot be written and a server that cannot serve the
    # run end it in seconds, and leave no run directory behind.
    wanted = [(cache_dir, "--cache-dir")] + ([(runs_dir, "--runs-dir")] if log is None else [])
    with preflight.folders(*wanted):  # a start that fails leaves no empty folder behind
        async with proposing.proposer(options, api_key) as (proposer, described):
            with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
                if log is None:
                    log = _create_log(runs_dir, run_id, options.seed)
                if options.record:
                    proposer = RecordingProposer(proposer, log.directory / "llm.jsonl")
                meta = _meta(log, previous, options, config, lab)
                log.write_run(meta)
                try:
                    with Evaluator(lab, cache, _evaluator_config(options)) as evaluator:
                        config = proposing.fitted(config, options, described)
                        meta.update(described)
                        hooks.say(proposing.describe(described))
                        event = "resume" if resume else "start"
                        log.append({"event": event, "time": time.time(), **described})
                        screen = Screen.of_lab(evaluator, lab, evaluator.on_tasks)
                        loop = Loop(
                            config,
                            lab,
                            proposer,
                            evaluator,
                            log.append,
                            hooks.progress,
                            history,
                            screen,
                        )
                        with hooks.live:
                            # Ctrl-C cancels the search; what was evaluated is kept and reported.
                            summary = await until_interrupted(
                                loop.run(),
                                lambda: loop.summary(
                                    ("interrupted", "interrupted; evaluated candidates are kept")
                                ),
                            )
                        meta.update(
                            status=summary.status,
                            message=summary.message,
                            counters=summary.counters.to_dict(),
                            seconds=previous.get("seconds", 0.0) + summary.seconds,
                            device=evaluator.info.get("device") or previous.get("device"),
                            worker=evaluator.info or previous.get("worker"),
                        )
                        if summary.status != "interrupted":
                            _check(log, options, lab, evaluator, hooks.say)
                        log.append({"event": "end", "time": time.time(), "status": summary.status})
                        log.close()
                        log.write_run(meta)
                        # The report's curves come from the workers that are already warm.
                        curves = evaluator_curves(evaluator)
                        data = report_build.build(log.directory, curves, warn=None)
                except BaseException as e:
                    if meta["status"] == "running":  # never leave it looking alive
                        log.close()
                        log.write_run({**meta, "status": "failed", "message": str(e)[:500]})
                    raise
    report_files.write(log.directory, data)
    return EvolveResult(summary, data.ranking, log.directory, data.warnings)


def _meta(
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
        "tasks": str(lab.path),
        "lab_digest": lab.digest(),
        "task_digests": [t.digest() for t in lab.tasks],
        "lab_summary": lab_summary(lab),
        "cascade": _cascade(lab),
    }


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


def _check(
    log: RunLog,
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
        log.append(dict(checks.validation(ranking, options.validate, top, evaluator, say)))
    if options.confirm:
        event = checks.confirmation(
            ranking, lab, options.confirm, options.confirm_seeds, evaluator, say
        )
        log.append(dict(event))


def _lab(options: EvolveOptions, previous: Mapping[str, Any]) -> Lab:
    """Returns the run's lab; on a resume it must be the lab the run started with."""
    path = Path(options.tasks) if options.tasks else default_tasks_path()
    lab = load_lab(path)
    if previous and lab.digest() != previous.get("lab_digest"):
        raise ConfigError(f"{lab.path}: the lab differs from the one the run started with")
    if previous and [t.digest() for t in lab.tasks] != previous.get("task_digests"):
        raise ConfigError(f"{lab.path}: the tasks differ from the ones the run started with")
    if previous and "cascade" not in previous:
        return replace(lab, cascade=None)  # a run from before cascades goes on without one
    if previous and _cascade(lab) != previous["cascade"]:
        raise ConfigError(
            f"{lab.path}: [lab.cascade] {_cascade(lab)} differs from the run's "
            f"{previous['cascade']}; the cascade decides which candidates are screened, "
            "so a resumed run keeps it"
        )
    return lab


def _cascade(lab: Lab) -> dict[str, Any] | None:
    """Returns the run.json record of the lab's cascade: its settings and stage-1 tasks."""
    c = lab.cascade
    if c is None:
        return None
    return {**c.to_dict(), "stage_tasks": [t.name for t in stage_tasks(lab.tasks, c.tasks, c.seed)]}


def _create_log(runs_dir: Path, run_id: str | None, seed: int) -> RunLog:
    if run_id is not None:
        return RunLog.create(runs_dir, run_id)
    base = new_run_id(time.time(), seed)
    for n in range(1, 100):
        try:
            return RunLog.create(runs_dir, base if n == 1 else f"{base}-{n}")
        except RunExistsError:
            continue  # a run started in the same second: take the next suffix
    raise ConfigError(f"cannot create a run directory under {runs_dir}: 99 names are taken")
