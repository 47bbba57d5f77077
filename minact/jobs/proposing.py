"""Where a run's candidates come from: the offline mutator, a replay, or LLMs (an ensemble).

`proposer` builds the proposer from the options (asking each server whether it serves
its model, or which it serves, and its context length where it is not given), `fitted`
sets the search's models and a prompt budget that fits the smallest context, and
`describe` writes the run's start line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from minact.errors import ConfigError
from minact.outcome import Reply
from minact.search.loop import SearchConfig
from minact.search.loopback import is_loopback
from minact.search.prompt import conversation_room, fit_to_context
from minact.search.proposers import (
    OfflineProposer,
    ProposalRequest,
    Proposer,
    ReplayProposer,
    load_recording,
)

if TYPE_CHECKING:
    from minact.jobs.options import EvolveOptions

__all__ = ["complete_line", "describe", "fitted", "proposer", "search_complete"]

# run.json's account of where a run's candidates come from (see `proposer`).
_DESCRIBED = ("proposer", "llm", "models", "replay", "prompt")


@asynccontextmanager
async def proposer(
    options: EvolveOptions,
    api_key: str | None,
    say: Callable[[str], None] = lambda _: None,
    complete: Mapping[str, Any] | None = None,
) -> AsyncIterator[tuple[Proposer, dict[str, Any]]]:
    """Yields the proposer and its description for run.json; closes its HTTP client after.

    Each server is asked first, with a short timeout, whether it serves its model; the
    LLMError of one that does not (or the ConfigError of a URL that answers with a web page)
    ends the run before any training. `say` tells the user, during the run, that a replay
    no longer repeats its recording. `complete`: the run.json of a resumed run whose search
    has nothing left to propose; no server is asked, and the description is the run's.
    """
    if complete is not None:
        # Its log answers every proposal, so a server that is down (or costs money per
        # request) must not stand between the user and the run's report.
        kept = {k: complete[k] for k in _DESCRIBED if k in complete}
        yield _Complete(str(complete["proposer"])), kept
        return
    if options.replay is not None:
        replies, asked = load_recording(Path(options.replay))
        name = f"--replay {options.replay}"
        yield ReplayProposer(replies, asked, say, name), _replayed(options)
        return
    if options.offline or not options.llm_url:
        yield OfflineProposer(), {"proposer": "offline"}
        return
    from minact.search import llm  # httpx: only for runs that use a server
    from minact.search.ensemble import MUTATOR, Ensemble, PlanError, plan
    from minact.search.proposers import LLMProposer

    try:
        specs = plan(options.model, options.model_weights, options.llm_url)
    except PlanError as e:
        raise ConfigError(str(e)) from None
    urls = [s.url for s in specs if s.name != MUTATOR]
    local = all(is_loopback(urlsplit(url).hostname or "") for url in urls)
    if api_key is not None and not (api_key.isascii() and api_key.isprintable()):
        # httpx cannot send it (a traceback), or quotes it unmasked in its error (a line
        # break in it is shown escaped): said here, without the key.
        raise ConfigError(
            "the API key (MINACT_API_KEY or OPENAI_API_KEY) holds a character that an HTTP"
            " header cannot carry (a non-ASCII letter, a line break or another control"
            " character); was it copied whole and alone?"
        )
    async with llm.http_client(use_proxy_env=not local, servers=urls) as http:
        members: dict[str, Proposer] = {}
        models: list[dict[str, Any]] = []
        for spec in specs:
            if spec.name == MUTATOR:  # no server to ask
                members[MUTATOR] = OfflineProposer()
                models.append({"name": MUTATOR, "url": "", "weight": spec.weight})
                continue
            if spec.weight == 0:
                # Never drawn, so never asked: a user may weigh a model out whose server is off.
                url, never = spec.url.rstrip("/"), "weight 0: never asked, its server not checked"
                models.append({"name": spec.name, "url": url, "weight": 0.0, "unchecked": never})
                continue
            config = llm.LLMConfig(
                url=spec.url.rstrip("/"),
                model=spec.name,
                api_key=api_key,
                temperature=options.temperature,
                max_tokens=options.max_tokens,
                retries=options.llm_retries,
                deadline=options.llm_timeout,
            )
            # Before any training: a dead server, a rejected key or a wrong name ends the run.
            # Each check waits as long as a request may (deadline: --llm-timeout), within
            # llm.check_seconds's bounds: a slow server is given the time the user gives it.
            answers: llm.Answers = {}  # the start-up checks ask GET /models once
            unknown: list[str] = []  # what the checks could not learn of a model named
            model = await llm.server_model(http, config, answers=answers, unknown=unknown)
            config = replace(config, model=model)
            if config.model in members:
                raise ConfigError(f"--llm-url: two servers both serve {config.model!r}; name them")
            members[config.model] = LLMProposer(llm.LLMClient(http, config))
            described = {"name": config.model, "url": config.url, "weight": spec.weight}
            if unknown:
                described["unchecked"] = "; ".join(unknown)
            if options.context_tokens:
                described["context"] = [options.context_tokens, "--context-tokens"]
            elif (found := await llm.context_length(http, config, answers=answers)) is not None:
                described["context"] = list(found)
            models.append(described)
        inner: Proposer = Ensemble(members)
        first = next(m for m in models if m["url"] and m["weight"] > 0)
        yield (
            inner,
            {
                "proposer": "llm",
                "llm": {"url": first["url"], "model": first["name"]},
                "models": models,
            },
        )


class _Complete:
    """The proposer of a resumed run whose log answers every proposal; never asked."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # the run's: it decides follow-ups and origins as they were

    async def propose(self, request: ProposalRequest) -> Reply:
        """Raises: the search was complete, so a request means minact itself is wrong."""
        raise RuntimeError(f"proposal {request.index} asked of a run whose search was complete")


def search_complete(
    previous: Mapping[str, Any], ended: str | None, evaluated: int, budget: int
) -> bool:
    """Returns whether a resumed run's search has nothing left to propose: its log ends
    with the search finished, the budget is not raised, and its run.json says where its
    candidates came from (an older one may not)."""
    kind = previous.get("proposer")
    return ended == "finished" and evaluated >= budget and kind in ("offline", "llm", "replay")


def complete_line(evaluated: int, budget: int) -> str:
    """Returns the start line of a resumed run whose search is complete."""
    return (
        f"the search is complete (evaluated {evaluated} of --budget {budget}): no LLM is "
        "asked; a larger --budget continues it"
    )


def _replayed(options: EvolveOptions) -> dict[str, Any]:
    """Returns the description of a replay; with the recorded run's --model list and
    weights (an ensemble), the proposals draw their models as that run's did, so that
    those drawn for the offline mutator are built as they were (search.opening)."""
    from minact.search.ensemble import PlanError, split, weigh

    described: dict[str, Any] = {"proposer": "replay", "replay": options.replay}
    names = split(options.model)
    if len(names) < 2:
        return described
    try:
        weights = weigh(names, options.model_weights, f"--model {','.join(names)}")
    except PlanError as e:
        raise ConfigError(str(e)) from None
    described["models"] = [
        {"name": n, "url": "", "weight": w} for n, w in zip(names, weights, strict=True)
    ]
    return described


def fitted(config: SearchConfig, options: EvolveOptions, described: dict[str, Any]) -> SearchConfig:
    """Returns the search settings for the proposer: its models, and a prompt that fits them.

    Records in `described` (run.json) the prompt budget and why it is what it is.
    """
    models = described.get("models") or []
    if models:
        names = tuple(m["name"] for m in models)
        # A resumed run's, from its run.json, may not say a weight (None): drawn equally.
        known = all(m.get("weight") is not None for m in models)
        weights = tuple(float(m["weight"]) for m in models) if known else ()
        config = replace(config, models=names, model_weights=weights)
    if described["proposer"] == "replay":
        # No server to ask: the recorded run's --context-tokens, given again, cuts the
        # prompt and the follow-ups as they were cut, so the same replies are asked for.
        if not options.context_tokens:
            return config
        contexts = [(options.context_tokens, "the recorded model", "--context-tokens")]
    elif not models:
        return config
    else:
        contexts = [
            (m["context"][0], m["name"], m["context"][1]) for m in models if m.get("context")
        ]
    if not contexts:
        note = f"{config.prompt_chars} characters (the server does not say the model's context;"
        note += " --context-tokens tells it)"
        described["prompt"] = {"chars": config.prompt_chars, "note": note}
        return config
    tokens, name, where = min(contexts)
    chars, note = fit_to_context(config.prompt_chars, tokens, options.max_tokens, config.follow_ups)
    described["prompt"] = {"chars": chars, "context": tokens, "note": f"{note} ({name}, {where})"}
    # At least 1: context_chars 0 means "unknown, no limit", and a context too small for
    # the reply (a server that says 16 tokens) holds no follow-up rather than any number.
    room = max(1, conversation_room(tokens, options.max_tokens))
    return replace(config, prompt_chars=chars, context_chars=room)


def describe(described: Mapping[str, Any], chosen: bool = False, model: str | None = None) -> str:
    """Returns the one line that says where a run's candidates come from (`chosen`: the
    offline mutator was asked for, by --offline, over any LLM the environment names;
    `model`: the --model given, unasked when no server is named)."""
    kind = described["proposer"]
    if kind == "offline" and chosen:
        return "proposer: the offline mutator (--offline: no LLM is asked)"
    if kind == "offline" and model and model.strip() != "offline":
        # A user who named a model and forgot its server learns why it is not asked.
        return (
            f"proposer: the offline mutator (the model {model} is not asked: no server"
            " is named; set --llm-url or MINACT_LLM_URL)"
        )
    if kind == "offline":
        return (
            "proposer: the offline mutator (no LLM configured; set --llm-url or "
            "MINACT_LLM_URL to use one)"
        )
    if kind == "replay":
        line = f"proposer: replies replayed from {described['replay']}"
    else:
        line = _members(
            described.get("models")
            or [{"name": described["llm"]["model"], "url": described["llm"]["url"], "weight": 1.0}]
        )
    prompt = described.get("prompt")
    return line + (f"; prompt: {prompt['note']}" if prompt else "")


def _members(models: list[dict[str, Any]]) -> str:
    """Returns the start line's account of a run's model (or ensemble's members)."""
    # A model used without the server's check says so: a typo shows at its first request.
    unchecked = {m["name"]: f" (unchecked: {m['unchecked']})" for m in models if "unchecked" in m}
    if len(models) == 1:
        name = models[0]["name"]
        return f"proposer: LLM {name} at {models[0]['url']}{unchecked.get(name, '')}"
    total = sum(m["weight"] for m in models)
    each = ", ".join(
        (f"{m['name']} at {m['url']}" if m["url"] else "the offline mutator")
        + f" ({m['weight'] / total:.0%}){unchecked.get(m['name'], '')}"
        for m in models
    )
    return f"proposer: an ensemble of {len(models)} models: {each}"
