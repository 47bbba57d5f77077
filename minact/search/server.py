"""The start-up checks of an LLM server: which model it serves, and its context length.

Each check is one GET with an overall deadline and a cap on the bytes it reads, so that a
server that drips, hangs or answers without end cannot hold a run before it starts (an
httpx read timeout alone restarts at every byte). What the server says reaches a message
only through untrusted.clip: the API key masked, control characters escaped. llm.py re-exports
both checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast

import httpx

from minact.errors import ConfigError, LLMError
from minact.search import inflate, redirects, sse, webpage
from minact.search.config import MAX_CONTEXT_TOKENS
from minact.untrusted import clip, printable, scrub

if TYPE_CHECKING:
    from minact.search.llm import LLMConfig

__all__ = [
    "CHECK_BYTES",
    "CHECK_MOST",
    "CHECK_SECONDS",
    "MAX_CONTEXT",
    "Answers",
    "check_seconds",
    "context_length",
    "server_model",
]

CHECK_SECONDS = 5.0  # the least one check's GET is given: a free server answers at once
CHECK_MOST = 60.0  # the most it is given, whatever --llm-timeout says (check_seconds)
CHECK_BYTES = 8 * 2**20  # the longest answer read (a hosted API may list hundreds of models)
_MAX_ID = 512  # characters of a model id (llama-cpp-python's default id is the model's path)


class _Unanswered(Exception):
    """Why a check's GET got no whole answer; `reached` when the server did answer, and
    `unusable` when its answer came but cannot be read (too long, or not decoded)."""

    def __init__(self, why: str, reached: bool, unusable: bool = False) -> None:
        super().__init__(why)
        self.reached, self.unusable = reached, unusable


# GET answers by URL, shared by one server's checks; a GET that got none keeps why.
Answers = dict[str, "tuple[int, bytes] | _Unanswered"]


async def _get(
    http: httpx.AsyncClient,
    url: str,
    config: LLMConfig,
    seconds: float,
    cap: int,
    answers: Answers | None = None,
) -> tuple[int, bytes]:
    """Returns the status and body of GET `url`, read within `seconds` and `cap` bytes;
    raises _Unanswered saying why not. With `answers`, a URL already asked is not asked
    again (a hosted API's model list may be megabytes), and a new answer (or why none
    came) is kept there."""
    if answers is not None and url in answers:
        if isinstance(known := answers[url], _Unanswered):  # not asked again either
            raise known
        return known
    try:
        answer = await _ask(http, url, config, seconds, cap)
    except _Unanswered as e:
        if answers is not None:
            answers[url] = e
        raise
    if answers is not None:
        answers[url] = answer
    return answer


async def _ask(
    http: httpx.AsyncClient, url: str, config: LLMConfig, seconds: float, cap: int
) -> tuple[int, bytes]:
    """Returns the status and body of GET `url`, as _get says."""
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    timeout = httpx.Timeout(seconds, connect=min(seconds, config.connect_timeout))
    body = bytearray()
    redirects.watch(http)  # a Location that is no URL is said, not taken for no connection

    async def read() -> int:
        async with http.stream("GET", url, headers=headers, timeout=timeout) as response:
            if response.is_redirect:  # never followed: the key would go where it points
                target = redirects.target(response)
                why = f"{response.status_code} redirect to {target}, not followed"
                raise _Unanswered(why, True)
            raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())
            # inflate, not httpx, decodes: a compressed answer is inflated a piece at a time.
            chunks = inflate.decoded(raw, response.headers.get("content-encoding", ""))
            async with aclosing(chunks):
                async for chunk in chunks:
                    body.extend(chunk)
                    if len(body) > cap:
                        raise _Unanswered(f"its answer is longer than {cap} bytes", True, True)
            return response.status_code

    try:
        return await asyncio.wait_for(read(), seconds), bytes(body)
    except asyncio.TimeoutError:
        got = f"{len(body)} bytes of the body arrived" if body else "nothing arrived"
        why = f"no whole answer within {seconds:g} s ({got})"
        if seconds < CHECK_MOST:  # check_seconds: the user's timeout gives it longer
            why += f"; --llm-timeout gives a slow server up to {CHECK_MOST:g} s"
        raise _Unanswered(why, True) from None
    except redirects.NoURL as e:
        raise _Unanswered(e.reason(config.api_key), True) from None
    except (httpx.DecodingError, inflate.DecodeError) as e:
        raise _Unanswered(f"its body does not decode ({e})", True, True) from None
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        raise _Unanswered(f"{type(e).__name__}: {e}", False) from None


def check_seconds(deadline: float) -> float:
    """Returns how long one check's GET may take where a request may take `deadline`
    seconds (--llm-timeout): as long, but no less than CHECK_SECONDS nor more than
    CHECK_MOST."""
    # A busy server answers GET /models only as late as a request: llama-cpp-python between
    # two completions (the model's lock covers the route), a hosted API's list of megabytes
    # over a slow link; a user who waits longer for a slow server says so with --llm-timeout.
    # A minute at most: a server that never answers is still said before any training, not
    # after the whole deadline (300 s by default); 5 s at least, what a free server needs.
    return max(CHECK_SECONDS, min(deadline, CHECK_MOST))


def _usable_id(name: str) -> bool:
    """Returns whether a model id the server listed can be sent, shown and recorded."""
    return 0 < len(name) <= _MAX_ID and name.strip() == name and printable(name) == name


async def server_model(
    http: httpx.AsyncClient,
    config: LLMConfig,
    *,
    seconds: float | None = None,
    cap: int = CHECK_BYTES,
    answers: Answers | None = None,
    unknown: list[str] | None = None,
) -> str:
    """Returns the model a run will ask: config.model once the server has shown it serves
    it, else the first model it lists. Raises LLMError, in one line, within `seconds`
    (None: check_seconds of config.deadline, --llm-timeout), when the server cannot be
    reached, does not answer in time (or, where no model is named, in `cap` bytes),
    rejects the key, does not serve the model, or names none that can be used;
    ConfigError when it answers with a web page or other text that is no API's
    (--llm-url names no API).

    The check is GET {url}/models, made before any training, so that a dead server or a
    typo ends the run at once (a server without that route is let be). `answers`: shared
    with context_length, which then reads the same list without asking again. A model
    named whose list answers unusably (over `cap` bytes, not decoded, no list) is used
    unchecked, and `unknown` gets a line saying what that leaves unknown.
    """
    key, url = config.api_key, config.url.rstrip("/") + "/models"
    seconds = check_seconds(config.deadline) if seconds is None else seconds
    try:
        status, content = await _get(http, url, config, seconds, cap, answers)
    except _Unanswered as e:
        why = clip(str(e), 300, key)
        if config.model and e.unusable:
            # The server is up and answered: a named model needs no list, and the first
            # request tells whether it is served (a hosted API may list thousands).
            return _unchecked(config, url, why, unknown)
        if e.reached:
            why = f"the LLM server did not answer GET {url} usefully: {why}; is --llm-url right?"
        else:
            why = f"cannot reach the LLM server: GET {url} failed ({why}); "
            why += "is the server running, and is --llm-url (or MINACT_LLM_URL) right?"
        raise LLMError(scrub(key, why)) from None
    if status == 200 and (other := webpage.not_an_answer(content, "", key)) is not None:
        # A web UI, a portal or a static site where the API was meant: no model name and
        # no retry can help; every request would get the same page.
        why = f"--llm-url {config.url}: GET {url} answered with {other}, not the API's list"
        why += " of models; give the API's base URL (it usually ends in /v1)"
        raise ConfigError(scrub(key, why))
    if status in (401, 403):
        why = f"the LLM server at {config.url} rejected the API key ({status}: "
        why += f"{sse.error_message(content, key)}); check MINACT_API_KEY or OPENAI_API_KEY"
        raise LLMError(scrub(key, why))
    data = (sse.json_object(content) or {}).get("data") if status == 200 else None
    entries = data if isinstance(data, list) else []  # `"data": 5` lists nothing either
    listed = [str(m["id"]) for m in entries if isinstance(m, dict) and "id" in m]
    if config.model:
        if status == 404:
            return config.model  # it lists no models: the first request will tell
        if status == 200 and not isinstance(data, list):
            return _unchecked(config, url, "it holds no list of models", unknown)
        if status != 200:
            why = f"GET {url} answered {status}: {sse.error_message(content, key)}"
            raise LLMError(scrub(key, why))
        if config.model not in listed:
            served = ", ".join(clip(m, 80, key) for m in listed[:10]) or "none"
            why = f"--model {config.model!r}: the server at {config.url} does not serve it "
            why += f"(it serves: {served})"
            raise LLMError(scrub(key, why))
        return config.model
    if status != 200 or not listed:
        why = f"GET {url} named no model ({status}: "
        why += f"{sse.error_message(content, key)}); pass the model name"
        raise LLMError(scrub(key, why))
    if not _usable_id(listed[0]):
        why = f"GET {url} names the model '{clip(listed[0], 80, key)}', which has control "
        why += f"characters or spaces at its ends or is over {_MAX_ID} characters long: not used;"
        why += " pass the model name with --model"
        raise LLMError(scrub(key, why))
    return listed[0]


def _unchecked(config: LLMConfig, url: str, why: str, unknown: list[str] | None) -> str:
    """Returns config.model, used without the check of GET `url` (whose answer `why`
    tells), after noting in `unknown` what the check would have said."""
    if unknown is not None:
        said = f"GET {url} gave no usable list of models ({why}): whether the server serves"
        said += f" {config.model}, and the context length its list may give, are unknown"
        unknown.append(scrub(config.api_key, said))
    return config.model


MAX_CONTEXT = MAX_CONTEXT_TOKENS  # a larger "length" is no length


def _positive(value: Any) -> int | None:
    """Returns `value` when it is a context length (an int from 1 to MAX_CONTEXT), else None."""
    # A number past a float's range would end the run where the prompt is fitted to it.
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_CONTEXT
    return value if ok else None


def _from_models(body: Any, model: str) -> int | None:
    """Returns the context length a GET /models body gives for `model` (or its only one)."""
    data = body.get("data") if isinstance(body, dict) else None
    entries = [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
    named = [e for e in entries if e.get("id") == model] or entries[:1]
    for e in named:
        meta = e.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        # vLLM: max_model_len; OpenRouter and others: context_length; llama-server: meta.
        for value in (e.get("max_model_len"), e.get("context_length"), e.get("context_window"),
                      meta.get("n_ctx"), meta.get("n_ctx_train")):  # fmt: skip
            if (n := _positive(value)) is not None:
                return n
    return None


async def context_length(
    http: httpx.AsyncClient,
    config: LLMConfig,
    *,
    seconds: float | None = None,
    cap: int = CHECK_BYTES,
    answers: Answers | None = None,
) -> tuple[int, str] | None:
    """Returns the model's context length in tokens and where the server said it, if it does.

    llama.cpp's server answers GET /props with the context of one slot (what a request
    may use); vLLM lists `max_model_len` in GET /v1/models, llama-server its training
    context in `meta`. Servers that say nothing (llama-cpp-python, Ollama's /v1) give None,
    and so does one that answers neither within `seconds` (None: CHECK_SECONDS) and `cap`
    bytes each. A URL in `answers` (server_model's GET /models) is read from there.
    """
    # Not check_seconds: the length is optional, and the servers that say it at /props
    # (llama.cpp's) answer it at once even while busy; a route that hangs (a proxy's) held
    # the start a minute per server where --llm-timeout gave GET /models that long.
    seconds = CHECK_SECONDS if seconds is None else seconds
    base = config.url.rstrip("/")
    root = base.removesuffix("/v1")
    for url in (root + "/props", base + "/models"):
        try:
            status, content = await _get(http, url, config, seconds, cap, answers)
        except _Unanswered:
            continue
        if status != 200:
            continue
        body = sse.json_object(content)
        if url.endswith("/props"):
            settings = (body or {}).get("default_generation_settings")
            n = _positive((settings or {}).get("n_ctx") if isinstance(settings, dict) else None)
            n = n or _positive((body or {}).get("n_ctx"))
        else:
            n = _from_models(body, config.model)
        if n is not None:
            return n, "GET " + url.removeprefix(root)
    return None
