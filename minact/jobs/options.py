"""The settings of `minact evolve`, and what a resumed run may change of them.

`EvolveOptions` holds every setting of a search; run.json keeps them as "options", so that
`--resume` restores them. `resolve` merges the settings the user gave with the defaults,
or on a resume with the settings the run was started with, and refuses a change that would
make the resumed run decide differently from the run it continues. A resume reads those
settings back from run.json, which users edit: `started_with` checks each against the range
(LIMITS) or the words (CHOICES) its flag allows, and `check_budget` refuses a budget below
what the run already evaluated, or a call cap below the calls it made.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from minact.errors import ConfigError, UsageError
from minact.lab.checks import INT_RULES
from minact.runs.history import History
from minact.runs.schema import BadValue
from minact.search.config import (
    FOLLOW_UP_RULES,
    MAX_BUDGET,
    MAX_CALLS,
    MAX_CONCURRENCY,
    MAX_CONTEXT_TOKENS,
    MAX_FOLLOW_UPS,
    MAX_ISLANDS,
    MAX_LLM_TIMEOUT,
    MAX_PROMPT_CHARS,
    MAX_REPLY_TOKENS,
    MAX_RETRIES,
    MAX_SEED,
    MAX_TEMPERATURE,
    SearchConfig,
)
from minact.search.ensemble import has_credentials

__all__ = [
    "CHOICES",
    "FREE_ON_RESUME",
    "LIMITS",
    "EvolveOptions",
    "check_budget",
    "check_option",
    "check_options",
    "flag_name",
    "resolve",
    "started_with",
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

    Stored in run.json as "options", so that `--resume` restores all of them. Paths of
    files (tasks, validate, replay) are kept absolute, so that a resume from another folder
    finds them (minact.jobs.evolve). The API key is never part of it.
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
    follow_up_rule: str = "paying"  # when follow-ups are sent (minact.search.followups)
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
        # What run.json keeps at top level too (each version has): where "options" lacks
        # one (an edited run.json), the run's own value, never the default (seed 0, ...).
        kept = {k: run[k] for k in _KEPT_AT_TOP if k in run}
        if isinstance(run.get("options"), dict):
            # Runs from before repairs existed judged replies as the model wrote them, and
            # runs from before the follow-up rule answered every bad reply.
            old = {"repair": False, "follow_up_rule": "always"}
            return cls.from_dict({**old, **kept, **run["options"]})
        # run.json before options were stored: what it kept at top level.
        llm = run.get("llm") or {}
        return cls(
            **kept,
            offline=run.get("proposer") == "offline",
            llm_url=llm.get("url"),
            model=llm.get("model"),
            replay=run.get("replay"),
        )


# The settings run.json keeps at top level as well as in "options", as they were given.
_KEPT_AT_TOP = ("budget", "concurrency", "seed", "islands", "tasks")


# The range of each number setting, (lo, hi or None), as the CLI's flags allow it
# (minact.cli.evolve; a test compares them), except where 0 stands for "auto"
# (max_calls, workers). A resume reads the settings back from run.json, which users edit.
LIMITS: dict[str, tuple[float, float | None]] = {
    "budget": (1, MAX_BUDGET),
    "concurrency": (1, MAX_CONCURRENCY),
    "seed": (0, MAX_SEED),
    "islands": (1, MAX_ISLANDS),
    "max_calls": (0, MAX_CALLS),  # 0: 4 x budget + concurrency
    "prompt_chars": (500, MAX_PROMPT_CHARS),
    "follow_ups": (0, MAX_FOLLOW_UPS),
    "context_tokens": (0, MAX_CONTEXT_TOKENS),
    "temperature": (0.0, MAX_TEMPERATURE),
    "max_tokens": (16, MAX_REPLY_TOKENS),
    "llm_retries": (0, MAX_RETRIES),
    "llm_timeout": (1.0, MAX_LLM_TIMEOUT),
    "batch_size": (0, 4096),  # 0: auto; as many as cli._shared.MAX_BATCH
    "workers": (0, 256),  # 0: auto; as many as cli._shared.MAX_WORKERS
    "threads": (0, 256),  # as many as cli._shared.MAX_THREADS
    "validate_top": (1, MAX_BUDGET),  # no more than a run's candidates
    "confirm": (0, MAX_BUDGET),
    "confirm_seeds": (1, INT_RULES["seeds"][1]),  # as many networks per task as a lab's
}
# The settings that take one of a few words (the CLI's choices).
CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("auto", "cpu", "cuda"),
    "compile": ("auto", "on", "off"),
    "backend": ("local", "ray"),
    "follow_up_rule": FOLLOW_UP_RULES,
}


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_option(key: str, name: str, value: Any, default: Any) -> None:
    """Raises BadValue for `key` unless `value` fits the setting `name`, whose default is
    `default`, as its flag would."""
    flag = f"as for {flag_name(name)}"
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
            check_option(key(f.name), f.name, getattr(options, f.name), f.default)


# Where run.json keeps a setting, for a run from before "options" were stored.
_OLD_KEYS = {"llm_url": "llm.url", "model": "llm.model"}


def started_with(run: Mapping[str, Any], given: Mapping[str, Any], where: Path) -> EvolveOptions:
    """Returns the settings run.json says a run was started with; raises ConfigError naming
    the key when one has a value its flag would refuse, or a URL with credentials in it
    (the user's flags, which replace them, are not checked here)."""
    started = EvolveOptions.from_run(run)

    def key(name: str) -> str:
        return f"options.{name}" if "options" in run else _OLD_KEYS.get(name, name)

    try:
        check_options(started, skip=given.keys(), key=key)
    except BadValue as e:
        raise ConfigError(f"{where}: {e}") from None
    if "llm_url" not in given and started.llm_url and has_credentials(started.llm_url):
        # Written by a minact from before --llm-url refused them; never shown, nor used.
        raise ConfigError(
            f"{where}: key '{key('llm_url')}' is a URL with a user or password in it (not "
            "shown here); minact keeps no credentials in run.json: remove them from it and "
            "give the key in MINACT_API_KEY, or give --llm-url URL to resume with another"
        )
    return started


def check_budget(
    options: EvolveOptions, given: Mapping[str, Any], history: History, where: Path
) -> None:
    """Refuses a resume whose budget is below the candidates the run already evaluated, or
    whose call cap is below the calls it made (each counts them: the run would stop at once,
    or part-way through its log, with run.json saying less than the log)."""
    done = len(history.evaluated())
    if options.budget >= done:
        _check_call_cap(options, given, history, where)
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


def _check_call_cap(
    options: EvolveOptions, given: Mapping[str, Any], history: History, where: Path
) -> None:
    """Refuses a call cap (max_calls; 0: the automatic one, 4 x budget + concurrency, which
    a budget lowered on the resume lowers) below the calls the run's log made."""
    made = history.calls()
    cap = SearchConfig(options.budget, options.concurrency, max_calls=options.max_calls).call_cap
    if cap >= made:
        return
    if not options.max_calls:
        budget = f"--budget {options.budget}"
        budget = budget if "budget" in given else f"{where}: key 'options.budget' ({budget[9:]})"
        raise ConfigError(
            f"{budget}: its call cap (4 x budget + concurrency: {cap}) is "
            f"below the {made} calls the run already made, and the cap counts them; give "
            f"--max-calls {made} or more, or a larger --budget, to continue it"
        )
    if "max_calls" in given:
        raise ConfigError(
            f"--max-calls {options.max_calls}: the run already made {made} calls, and the "
            f"cap counts them; give --max-calls {made} or more to continue it"
        )
    raise ConfigError(
        f"{where}: key 'options.max_calls' has a bad value ({options.max_calls}: the run "
        f"already made {made} calls); give --max-calls {made} or more to continue it"
    )


def resolve(given: Mapping[str, Any], started: EvolveOptions | None = None) -> EvolveOptions:
    """Returns the options of a run: `given` over the defaults, or over `started` on a resume.

    On a resume, a given setting that differs from the started one and would change what
    the search decides raises ConfigError naming the flag: the same replies must give the
    same run.
    """
    if started is None:
        return _ray_checked(EvolveOptions(**given), given)
    # Without a model, the prompt and sampling settings steer nothing; a replay's replies
    # are fixed, but its models are drawn and its follow-ups fitted to the context as before.
    free = set(FREE_ON_RESUME)
    if started.offline:
        free |= _PROMPT_SETTINGS
    elif started.replay:
        free |= {"llm_url", "temperature"}
    elif not started.llm_url and given.get("llm_url"):  # the mutator's run: not a model's
        raise ConfigError(
            f"--llm-url {given['llm_url']!r}: the run's candidates came from the offline "
            "mutator (it was started without --llm-url or MINACT_LLM_URL), and a resumed run "
            "keeps where they come from; leave --llm-url out (and MINACT_LLM_URL unset) to "
            "continue it, or start a new run"
        )
    if started.offline or not (started.llm_url or started.replay):
        free |= {"follow_ups", "follow_up_rule", "repair"}  # the mutator is never answered
    for key, value in given.items():
        old = getattr(started, key)
        if value != old and key not in free:
            flag = flag_name(key)
            if isinstance(value, bool):  # a switch: name it as the user typed it
                given_as = flag if value else f"--no-{flag[2:]}"
                was = "without it" if value else f"with {flag}"
            else:
                given_as = f"{flag} {value!r}"
                was = "without it" if old is None else f"with {old!r}"
            raise ConfigError(
                f"{given_as}: the run was started {was}, and a resumed run keeps the "
                "settings that steer the search (so that the same replies give the same run); "
                f"leave {given_as.split()[0]} out to continue it, or start a new run"
            )
    return _ray_checked(replace(started, **given), given)


def _ray_checked(options: EvolveOptions, given: Mapping[str, Any]) -> EvolveOptions:
    """Returns `options`; raises UsageError for a --ray-address given to a run whose workers
    are not Ray's (on a resume, the run's backend unless --backend is given)."""
    if "ray_address" in given and options.backend != "ray":
        raise UsageError("--ray-address", f"needs --backend ray (the run's is {options.backend})")
    return options
