"""Model ensembles: several models (on one server or several), each proposal drawing one.

`plan` turns the user's lists (`--model a,b`, `--model-weights 0.8,0.2`, `--llm-url`
with one URL or one per model) into ModelSpecs, or raises PlanError naming the flag at
fault. `Ensemble` sends each request to the proposer of the model the loop drew for it
(search.conversation draws it with the proposal's own generator, so a run stays
reproducible) and labels the reply with that model, for the per-model counters.

The name MUTATOR ("offline") stands for minact's own offline mutator as a member: it
needs no server and costs nothing per call, so a slow or weak model can share a search
with cheap local edits of the best candidates (`--model qwen,offline`). It takes no URL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from minact.outcome import Reply
from minact.search.proposers import ProposalRequest, Proposer

__all__ = [
    "MUTATOR",
    "Ensemble",
    "ModelSpec",
    "PlanError",
    "check_list",
    "check_urls",
    "has_credentials",
    "parse_weights",
    "plan",
    "split",
    "weigh",
]

MUTATOR = "offline"  # the model name of the offline mutator in an ensemble


class PlanError(ValueError):
    """A model list that cannot be used; `flag` names the option at fault."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"{flag}: {message}")
        self.flag = flag
        self.message = message


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model of the ensemble: its name ("" for the server's first), URL and weight.

    The offline mutator (name MUTATOR) has no URL ("").
    """

    name: str
    url: str
    weight: float


def split(text: str | None) -> list[str]:
    """Returns the items of a comma-separated list, stripped, without empty ones."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def check_list(text: str | None, flag: str) -> None:
    """Raises PlanError for `flag` when a comma-separated list has an empty item (`a,,b`,
    `a,`): dropping it would shift every later item against the other lists' order."""
    items = (text or "").split(",")
    if len(items) > 1 and not all(item.strip() for item in items):
        raise PlanError(flag, f"{text!r} has an empty item between commas; give each one")


def _shown(url: str) -> str:
    """Returns `url` with any password in it masked, for messages (by text, not by parsing:
    a URL too broken to parse may hold one as well)."""
    return re.sub(r"(//[^/@]*?:)[^/]*@", r"\1***@", url)  # to the last @ of the host part


def has_credentials(text: str) -> bool:
    """Returns whether a URL in `text` (one, or a comma-separated list) holds a user or a
    password: what check_urls refuses in a flag, and a run.json from before it may hold."""
    for url in split(text):
        if _shown(url) != url:
            return True
        try:
            parts = urlsplit(url)
        except ValueError:  # too broken to parse: the text check above is all there is
            continue
        if parts.username is not None or parts.password is not None:
            return True
    return False


def check_urls(text: str, *, form: bool = True) -> None:
    """Raises PlanError for --llm-url unless each URL in `text` is an http(s) URL with a host
    (`form`: only where a server will be asked) and no credentials in it (always).

    A URL the client cannot use would otherwise surface as "cannot reach the server"; and
    a user or password in it would be written to run.json (an offline run keeps the URL
    too) and printed in errors, where the key from the environment never is (README,
    Secrets).
    """
    for url in split(text):
        shown = _shown(url)
        if shown != url:
            raise PlanError(
                "--llm-url",
                f"{shown!r} holds a password, which would be written to run.json; remove "
                "it and give the key in MINACT_API_KEY (or OPENAI_API_KEY)",
            )
        if not form:
            continue
        if any(c.isspace() for c in url):
            raise PlanError("--llm-url", f"{shown!r} holds a space; give the URL alone")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - parsing the port raises on a bad one
        except ValueError as e:
            raise PlanError("--llm-url", f"{shown!r} is no URL ({e})") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise PlanError(
                "--llm-url",
                f"{shown!r}: give an http:// or https:// URL with a host, "
                "e.g. http://127.0.0.1:8000/v1",
            )
        if parts.username is not None or parts.password is not None:
            raise PlanError(
                "--llm-url",
                f"{shown!r} holds credentials, which would be written to run.json; remove "
                "them and give the key in MINACT_API_KEY (or OPENAI_API_KEY)",
            )


def parse_weights(text: str) -> list[float]:
    """Returns the weights in `text`; raises PlanError unless they are numbers >= 0, not all 0."""
    values: list[float] = []
    for item in split(text):
        try:
            w = float(item)
        except ValueError:
            raise PlanError("--model-weights", f"{item!r} is not a number") from None
        if not math.isfinite(w) or w < 0:
            raise PlanError("--model-weights", f"{item!r}: weights must be finite and >= 0")
        values.append(w)
    if sum(values) <= 0:
        raise PlanError("--model-weights", f"{text!r}: the weights are all zero")
    if not math.isfinite(sum(values)):  # 1e308,1e308: each finite, their total not
        raise PlanError("--model-weights", f"{text!r}: the weights' sum is not finite")
    return values


def plan(models: str | None, weights: str | None, urls: str | None) -> list[ModelSpec]:
    """Returns the ensemble the flags describe; raises PlanError naming the flag at fault.

    `urls` holds one URL for every model, or one per model in the order of `models`
    (the offline mutator, MUTATOR, takes none). Without `models`, each URL serves its
    first model (named later, by asking it).
    """
    names, addresses = split(models), split(urls)
    if not addresses:
        raise PlanError("--llm-url", "no URL given")
    if not names:
        names = [""] * len(addresses)
        models_flag = f"one per --llm-url, {len(addresses)}"
    else:
        models_flag = f"--model {','.join(names)}"
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise PlanError("--model", f"{repeated[0]!r} is listed twice")
    served = [n for n in names if n != MUTATOR]
    if not served:
        raise PlanError(
            "--model",
            f"{MUTATOR!r} (the offline mutator) needs a model beside it; "
            "run it alone with --offline",
        )
    if len(addresses) == 1:
        addresses *= len(served)
    elif len(addresses) != len(served):
        models_flag += f", {MUTATOR!r} taking none" if len(served) < len(names) else ""
        raise PlanError(
            "--llm-url",
            f"{len(addresses)} URLs for {len(served)} models ({models_flag}); give one URL "
            "for all models or one per model, in the same order",
        )
    by_model = iter(addresses)
    addresses = ["" if n == MUTATOR else next(by_model) for n in names]
    values = weigh(names, weights, models_flag)
    return [ModelSpec(n, u, w) for n, u, w in zip(names, addresses, values, strict=True)]


def weigh(names: list[str], weights: str | None, models_flag: str) -> list[float]:
    """Returns one weight per model in `names` (all 1 without `weights`); raises PlanError
    unless `weights` gives exactly one each. `models_flag` says where the names came from."""
    values = parse_weights(weights) if weights else [1.0] * len(names)
    if len(values) != len(names):
        raise PlanError(
            "--model-weights",
            f"{weights!r} gives {len(values)} weights for {len(names)} model(s) "
            f"({models_flag}); give one weight per model, in the same order",
        )
    return values


class Ensemble:
    """Sends each request to the proposer of its model and labels the reply with it."""

    kind = "llm"

    def __init__(self, members: Mapping[str, Proposer]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one model")
        self.members = dict(members)
        self.first = next(iter(self.members))

    async def propose(self, request: ProposalRequest) -> Reply:
        """Returns the reply of the request's model (the first one when none was drawn)."""
        name = request.model if request.model in self.members else self.first
        reply = await self.members[name].propose(request)
        return replace(reply, model=name)
