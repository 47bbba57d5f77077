"""Streaming chat client for OpenAI-compatible servers: retries, deadlines, early stop.

The only module that imports httpx; minact.sse turns the bytes it reads into replies. It
never reads the environment, and the API key never appears in reprs, reasons or errors.
Each rule says, where it is applied, which servers it is for.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, cast

import httpx

from minact.errors import LLMError
from minact.search import sse

__all__ = [
    "Completion",
    "LLMClient",
    "LLMConfig",
    "Message",
    "context_length",
    "http_client",
    "server_model",
]

Message = dict[str, str]  # {"role": ..., "content": ...}

CHECK_SECONDS = 5.0  # the start-up check of a server: it answers GET /models at once

_HINTS = {401: "check the API key", 403: "check the API key",
          404: "check the URL (the base, ending in /v1) and the model name"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LLMConfig:
    """How to reach the server, and how patiently."""

    url: str  # base URL, e.g. "http://127.0.0.1:8000/v1"; we POST {url}/chat/completions
    model: str
    api_key: str | None = field(default=None, repr=False)
    temperature: float = 0.8
    max_tokens: int = 1024
    connect_timeout: float = 10.0
    read_timeout: float = 120.0  # first byte (covers server-side queueing) and between chunks
    deadline: float = 300.0  # wall-clock limit of one attempt: a trickle must not hang us
    retries: int = 4  # extra attempts after the first
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0  # longest Retry-After honoured; a longer one gives up
    max_reply_chars: int = 100_000  # stop reading beyond this many characters
    stop_at_code_end: bool = True  # stop once a whole code block with the activation arrived


@dataclass(frozen=True, slots=True)
class Completion:
    """One reply, where it stopped, its token counts and what it took to get it."""

    text: str
    finish_reason: str  # the server's, or ours: "code_complete", "cap" or "truncated"
    prompt_tokens: int
    completion_tokens: int
    usage_reported: bool  # False: the counts are estimates (characters / 4)
    attempts: int  # 1 + retries used
    latency: float  # seconds for the whole call, retries and waits included
    first_token: float | None  # seconds from the successful attempt's start to its first text
    retry_reasons: tuple[str, ...]  # why each failed attempt failed


def _retry_after(headers: httpx.Headers) -> float | None:
    """Returns how many seconds the server asked us to wait, if it said."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name, "").strip()
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    try:  # an HTTP date
        when = parsedate_to_datetime(headers.get("retry-after", ""))
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _http_failure(status: int, headers: httpx.Headers, body: bytes) -> sse.Failure:
    """Returns why an HTTP error status failed the attempt, and whether to retry."""
    reason = f"{status} {httpx.codes.get_reason_phrase(status)}: {sse.error_message(body)}"
    reason += f" ({_HINTS[status]})" if status in _HINTS else ""
    retryable = status in (408, 409, 429) or status >= 500  # as openai-python does
    flag = headers.get("x-should-retry", "").strip().lower()
    retryable = flag == "true" if flag in ("true", "false") else retryable
    return sse.Failure(reason, retryable, _retry_after(headers) if retryable else None, status)


def _refused_seed(failure: sse.Failure, body: dict[str, Any]) -> bool:
    """Returns whether a request with a seed was refused as invalid (400, or 422 from a
    server that validates its fields), so that asking without the seed may help."""
    return "seed" in body and failure.status in (400, 422)


def _scrub(key: str | None, text: str) -> str:
    """Returns `text` without the API key (a server may echo it in an error)."""
    return text.replace(key, "***") if key else text


def _chunks(response: httpx.Response) -> aclosing[AsyncGenerator[bytes, None]]:
    # aclosing: leaving the loop early must close the generator now, not at garbage collection.
    return aclosing(cast(AsyncGenerator[bytes, None], response.aiter_bytes()))


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    """Returns at most `limit` bytes of the body, reading no further."""
    body = bytearray()
    async with _chunks(response) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) >= limit:
                break
    return bytes(body[:limit])


class LLMClient:
    """Asks an OpenAI-compatible server for streamed chat completions, with retries."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: LLMConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http, self._config, self._sleep = http, config, sleep
        self._rng = rng if rng is not None else random.Random()
        self._endpoint = config.url.rstrip("/") + "/chat/completions"
        self.seeded = True  # False once the server refused a request for its `seed` field
        self._headers = {"Accept": "text/event-stream, application/json"}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        # The deadline bounds the wait for a pooled connection; a long prompt uploads slowly.
        self._timeout = httpx.Timeout(
            connect=config.connect_timeout, read=config.read_timeout,
            write=config.read_timeout, pool=config.deadline,
        )  # fmt: skip

    async def complete(self, messages: Sequence[Message], *, seed: int | None = None) -> Completion:
        """Returns the model's reply to `messages`; raises LLMError when none could be had.

        `seed` is sent as the request's sampling seed (llama.cpp, vLLM, Ollama and OpenAI
        take one), so that a run repeated with the same seed asks for the same samples.
        """
        cfg, start = self._config, time.monotonic()
        reasons: list[str] = []
        body = {"model": cfg.model, "messages": list(messages), "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": cfg.max_tokens, "temperature": cfg.temperature}  # fmt: skip
        if seed is not None and self.seeded:
            body["seed"] = seed
        for attempt in range(cfg.retries + 1):
            outcome = await self._attempt(body)
            if isinstance(outcome, sse.Failure) and _refused_seed(outcome, body):
                # A strict server may refuse the field it does not know: ask once without
                # it; when that is answered, the seed was the reason, and none is sent again.
                body = {k: v for k, v in body.items() if k != "seed"}
                retried = await self._attempt(body)
                if isinstance(retried, sse.Reply):
                    self.seeded = False
                    why = _scrub(cfg.api_key, outcome.reason)
                    reasons.append(
                        f"the server refused the sampling seed ({why}); minact sends none to "
                        "it from now on, so its replies are not reproducible"
                    )
                outcome = retried
            if isinstance(outcome, sse.Reply):
                return self._completion(outcome, messages, start, reasons)
            reasons.append(_scrub(cfg.api_key, outcome.reason))
            if not outcome.retryable:
                raise LLMError(f"LLM server {cfg.url}: {reasons[-1]}")
            if attempt < cfg.retries:
                await self._sleep(self._delay(outcome, attempt))
        last = "; ".join(reasons[-3:])
        raise LLMError(f"LLM server {cfg.url} failed {len(reasons)} attempts; last: {last}")

    async def _attempt(self, body: dict[str, Any]) -> sse.Reply | sse.Failure:
        """Makes one request within the deadline; returns the reply or why it failed."""
        cfg = self._config
        stream = sse.Stream(cfg.max_reply_chars, cfg.stop_at_code_end)
        # CancelledError is not caught: it closes the response on its way out to the caller.
        try:
            return await asyncio.wait_for(self._request(body, stream), cfg.deadline)
        except asyncio.TimeoutError:
            why = f"no complete reply within the {cfg.deadline:g} s deadline"
        except httpx.ConnectTimeout:
            why = f"connect timeout after {cfg.connect_timeout:g} s"
        except httpx.ReadTimeout:
            why = f"read timeout: no data for {cfg.read_timeout:g} s"
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
            return sse.Failure(f"invalid URL {self._endpoint!r}: {e}", retryable=False)
        except httpx.ConnectError as e:
            why = f"cannot connect: {e}"
        except (httpx.TransportError, httpx.DecodingError) as e:
            why = f"connection error ({type(e).__name__}): {e}"
        if stream.streaming:
            return stream.end(f"stream cut before the reply finished: {why}")
        return sse.Failure(why)

    async def _request(self, body: dict[str, Any], stream: sse.Stream) -> sse.Reply | sse.Failure:
        """Sends the request and reads the response according to its status and type."""
        async with self._http.stream(
            "POST", self._endpoint, json=body, headers=self._headers,
            timeout=self._timeout, follow_redirects=False,
        ) as response:  # fmt: skip
            status, content_type = response.status_code, response.headers.get("content-type", "")
            if 300 <= status < 400:
                return self._redirect(response)
            if not 200 <= status < 300:
                return _http_failure(status, response.headers, await _read_some(response, 65536))
            if "text/event-stream" not in content_type.lower():
                # Some servers ignore stream=true and send the whole completion.
                whole = await _read_some(response, 4 * stream.cap + 65536)
                return stream.plain(whole, content_type)
            stream.streaming = True
            return await self._read_events(response, stream)

    async def _read_events(
        self, response: httpx.Response, stream: sse.Stream
    ) -> sse.Reply | sse.Failure:
        """Reads SSE events until [DONE], EOF, a whole code block or the cap."""
        reader = sse.EventReader()
        limit = 4 * self._config.max_reply_chars + 65536  # JSON escapes can quadruple text
        async with _chunks(response) as chunks:
            async for chunk in chunks:
                for data in reader.feed(chunk):
                    if (outcome := stream.take(data)) is not None:
                        return outcome
                if reader.pending > limit:
                    return sse.Failure(f"an SSE event longer than {limit} bytes")
        for data in reader.close():
            if (outcome := stream.take(data)) is not None:
                return outcome
        return stream.end()

    def _redirect(self, response: httpx.Response) -> sse.Failure:
        """Refuses a redirect: following one could send the prompt and key to another host."""
        target = str(response.request.url.join(response.headers.get("location", "")))
        base = target.removesuffix("/chat/completions")
        code = response.status_code
        return sse.Failure(
            f"{code} redirect to {target}, not followed: set --llm-url to {base}", False
        )

    def _delay(self, failure: sse.Failure, attempt: int) -> float:
        """Returns how long to wait before the next attempt."""
        cfg = self._config
        if failure.retry_after is None:
            base = min(cfg.backoff_initial * 2.0 ** min(attempt, 60), cfg.backoff_max)
            return base * self._rng.uniform(0.75, 1.25)  # jitter spreads concurrent retries
        if failure.retry_after > cfg.max_retry_after:
            reason = _scrub(cfg.api_key, failure.reason)
            raise LLMError(
                f"LLM server {cfg.url} asked to wait {failure.retry_after:g} s before retrying,"
                f" more than the {cfg.max_retry_after:g} s allowed ({reason})"
            )
        return failure.retry_after

    def _completion(
        self, reply: sse.Reply, messages: Sequence[Message], start: float, reasons: list[str]
    ) -> Completion:
        """Returns the Completion for `reply`, estimating token counts the server left out."""
        if reply.usage is not None:
            prompt, completion = reply.usage
        else:  # ~4 characters a token; llama-cpp-python never sends usage
            chars = sum(len(m.get("content") or "") for m in messages)
            prompt, completion = (chars + 3) // 4, (len(reply.text) + 3) // 4
        return Completion(
            reply.text, reply.finish_reason, prompt, completion, reply.usage is not None,
            len(reasons) + 1, time.monotonic() - start, reply.first_token, tuple(reasons),
        )  # fmt: skip


def http_client(*, use_proxy_env: bool = False) -> httpx.AsyncClient:
    """Returns the HTTP client for LLMClient (use it as `async with`)."""
    # The caller decides whether proxy variables apply (a remote API behind a corporate
    # proxy needs them; a local server must not be captured by a stray HTTP_PROXY).
    # The pool (100 connections) exceeds any sensible concurrency.
    return httpx.AsyncClient(trust_env=use_proxy_env)


async def server_model(http: httpx.AsyncClient, config: LLMConfig) -> str:
    """Returns the model a run will ask: config.model once the server has shown it serves
    it, else the first model it lists. Raises LLMError, in one line, within seconds, when
    the server cannot be reached, rejects the key, or does not serve the model.

    The check is GET {url}/models with a short timeout, made before any training, so that
    a dead server or a typo ends the run at once (a server without that route is let be).
    """
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    timeout = httpx.Timeout(CHECK_SECONDS, connect=min(CHECK_SECONDS, config.connect_timeout))
    url = config.url.rstrip("/") + "/models"
    try:
        response = await http.get(url, headers=headers, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        why = f"cannot reach the LLM server: GET {url} failed ({type(e).__name__}: {e}); "
        why += "is the server running, and is --llm-url (or MINACT_LLM_URL) right?"
        raise LLMError(_scrub(config.api_key, why)) from None
    status = response.status_code
    if status in (401, 403):
        why = f"the LLM server at {config.url} rejected the API key ({status}: "
        why += f"{sse.error_message(response.content)}); check MINACT_API_KEY or OPENAI_API_KEY"
        raise LLMError(_scrub(config.api_key, why))
    data = (sse.json_object(response.content) or {}).get("data") if status == 200 else None
    listed = [str(m["id"]) for m in data or [] if isinstance(m, dict) and "id" in m]
    if config.model:
        if status == 404 or (status == 200 and not isinstance(data, list)):
            return config.model  # it lists no models: the first request will tell
        if status != 200:
            why = f"GET {url} answered {status}: {sse.error_message(response.content)}"
            raise LLMError(_scrub(config.api_key, why))
        if config.model not in listed:
            served = ", ".join(listed[:10]) or "none"
            why = f"--model {config.model!r}: the server at {config.url} does not serve it "
            why += f"(it serves: {served})"
            raise LLMError(_scrub(config.api_key, why))
        return config.model
    if status != 200 or not listed:
        why = f"GET {url} named no model ({status}: "
        why += f"{sse.error_message(response.content)}); pass the model name"
        raise LLMError(_scrub(config.api_key, why))
    return listed[0]


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


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


async def context_length(http: httpx.AsyncClient, config: LLMConfig) -> tuple[int, str] | None:
    """Returns the model's context length in tokens and where the server said it, if it does.

    llama.cpp's server answers GET /props with the context of one slot (what a request
    may use); vLLM lists `max_model_len` in GET /v1/models, llama-server its training
    context in `meta`. Servers that say nothing (llama-cpp-python, Ollama's /v1) give None.
    """
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    timeout = httpx.Timeout(10.0, connect=config.connect_timeout)
    base = config.url.rstrip("/")
    root = base.removesuffix("/v1")
    for url in (root + "/props", base + "/models"):
        try:
            response = await http.get(url, headers=headers, timeout=timeout)
        except (httpx.HTTPError, httpx.InvalidURL):
            continue
        if response.status_code != 200:
            continue
        body = sse.json_object(response.content)
        if url.endswith("/props"):
            settings = (body or {}).get("default_generation_settings")
            n = _positive((settings or {}).get("n_ctx") if isinstance(settings, dict) else None)
            n = n or _positive((body or {}).get("n_ctx"))
        else:
            n = _from_models(body, config.model)
        if n is not None:
            return n, "GET " + url.removeprefix(root)
    return None
