"""Streaming chat client for OpenAI-compatible servers: retries, deadlines, early stop.

With minact.search.server (the start-up checks, re-exported here), .status (what an error
status says) and .redirects, the only module that imports httpx; minact.sse turns the bytes
it reads into replies. It never reads the environment, the API key never appears in
reprs, reasons, errors or replies (a key of MIN_MASKED characters or more), and text the
server chose reaches them only with its control characters escaped. Each rule says, where
it is applied, which servers it is for.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, cast

import httpx

from minact.errors import LLMError
from minact.search import inflate, loopback, redirects, sse, thinking
from minact.search.server import (
    CHECK_SECONDS,
    Answers,
    check_seconds,
    context_length,
    server_model,
)
from minact.search.status import failure as status_failure
from minact.untrusted import clip, printable, scrub

__all__ = [
    "CHECK_SECONDS",
    "Answers",
    "Completion",
    "LLMClient",
    "LLMConfig",
    "Message",
    "check_seconds",
    "context_length",
    "http_client",
    "server_model",
]

Message = dict[str, str]  # {"role": ..., "content": ...}


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
    deadline: float = 300.0  # wall-clock limit of one request, retries and waits included
    retries: int = 4  # extra attempts after the first
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0  # longest Retry-After honoured; a longer one gives up
    max_reply_chars: int = 100_000  # stop reading beyond this many characters
    # The bytes a stream may bring, pings and empty chunks included, before 4 KiB a token of
    # max_tokens: a server that sends comments without end is cut, not read for the deadline.
    max_stream_bytes: int = 64 * 2**20
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
    reasoning_chars: int = 0  # characters the model spent on reasoning_content (not in text)


def _refused_seed(failure: sse.Failure, body: dict[str, Any]) -> bool:
    """Returns whether a request with a seed was refused as invalid (400, or 422 from a
    server that validates its fields), so that asking without the seed may help."""
    return "seed" in body and failure.status in (400, 422)


def _chunks(response: httpx.Response) -> aclosing[AsyncGenerator[bytes, None]]:
    # aclosing: leaving the loop early must close the generator now, not at garbage collection.
    # inflate, not httpx, decodes: it inflates a compressed body a bounded piece at a time.
    raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())
    return aclosing(inflate.decoded(raw, response.headers.get("content-encoding", "")))


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    """Returns at most `limit` bytes of the body, reading no further."""
    body = bytearray()
    async with _chunks(response) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) >= limit:
                break
    return bytes(body[:limit])


FINISH_GRACE = 5.0  # seconds a stream may stay open after its finish_reason
MIN_MASKED = 8  # characters of the shortest API key masked in reply text


class LLMClient:
    """Asks an OpenAI-compatible server for streamed chat completions, with retries."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: LLMConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        thinks_first: bool | None = None,
    ) -> None:
        self._http, self._config, self._sleep = http, config, sleep
        redirects.watch(http)  # a Location that is no URL is refused, not retried
        self._rng = rng if rng is not None else random.Random()
        self._endpoint = config.url.rstrip("/") + "/chat/completions"
        self.seeded = True  # False once the server refused a request for its `seed` field
        # Whether the chat template opens a thinking block (replies start inside one). Until
        # a reply shows it (None), streams are read whole: a </think> may follow their code.
        # A later reply may unlearn it (thinking.revised).
        self.thinks_first = thinks_first
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
        The deadline (--llm-timeout) bounds the whole call: each attempt gets what is left,
        and no retry starts when too little is.
        """
        cfg, start = self._config, time.monotonic()
        end = start + cfg.deadline
        shown = sse.shown_code(messages)  # code the prompt shows: quoting it is no answer
        reasons: list[str] = []
        body = {"model": cfg.model, "messages": list(messages), "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": cfg.max_tokens, "temperature": cfg.temperature}  # fmt: skip
        if seed is not None and self.seeded:
            body["seed"] = seed
        for attempt in range(cfg.retries + 1):
            outcome = await self._attempt(body, shown, end)
            time_left = end - time.monotonic() >= self._least
            if isinstance(outcome, sse.Failure) and _refused_seed(outcome, body) and time_left:
                # A strict server may refuse the field it does not know: ask once without
                # it; when that is answered, the seed was the reason, and none is sent again.
                body = {k: v for k, v in body.items() if k != "seed"}
                retried = await self._attempt(body, shown, end)
                if isinstance(retried, sse.Reply):
                    self.seeded = False
                    reasons.append(
                        f"the server refused the sampling seed ({self._clean(outcome.reason)});"
                        " minact sends none to it from now on, so its replies are not reproducible"
                    )
                outcome = retried
            if isinstance(outcome, sse.Reply):
                inside, self.thinks_first = thinking.revised(
                    self.thinks_first, outcome.text, outcome.finish_reason
                )
                outcome = replace(outcome, text=thinking.made_explicit(outcome.text, inside))
                return self._completion(outcome, messages, start, reasons)
            reasons.append(self._clean(outcome.reason))
            if not outcome.retryable:
                raise LLMError(f"LLM server {cfg.url}: {reasons[-1]}")
            if attempt < cfg.retries:
                delay = self._delay(outcome, attempt)
                if end - time.monotonic() - delay < self._least:
                    raise LLMError(self._failed(reasons, out_of_time=True))
                await self._sleep(delay)
        raise LLMError(self._failed(reasons))

    @property
    def _least(self) -> float:
        """Returns the least time worth a retry: a shorter one could hardly finish."""
        return min(10.0, self._config.deadline / 4)

    def _clean(self, text: str) -> str:
        """Returns `text` without the API key and with control characters escaped."""
        return printable(scrub(self._config.api_key, text))

    def _masked(self, text: str) -> str:
        """Returns reply `text` with the API key masked: a server that echoes it in a reply
        had it written to llm.jsonl, events.jsonl, the reports and the cache."""
        # A key shorter than MIN_MASKED is left: masking it would rewrite ordinary code.
        key = self._config.api_key
        return scrub(key, text) if key and len(key) >= MIN_MASKED else text

    def _failed(self, reasons: list[str], *, out_of_time: bool = False) -> str:
        """Returns the message of a request that failed after `reasons`."""
        cfg, n = self._config, len(reasons)
        why = f"LLM server {cfg.url} failed {n} attempt{'s' if n > 1 else ''}"
        if out_of_time:
            why += (
                f", and too little of the {cfg.deadline:g} s request deadline is left for"
                " another (--llm-timeout covers the whole request, retries and waits included)"
            )
        return f"{why}; last: {'; '.join(reasons[-3:])}"

    async def _attempt(
        self, body: dict[str, Any], shown: frozenset[str], end: float
    ) -> sse.Reply | sse.Failure:
        """Makes one request within what is left of the deadline; returns the reply or why
        it failed."""
        cfg = self._config
        left = max(0.0, end - time.monotonic())
        stream = sse.Stream(
            cfg.max_reply_chars,
            cfg.stop_at_code_end,
            shown,
            cfg.api_key,
            thinking=self.thinks_first,
        )
        reader = sse.EventReader(keep=self._limit)
        # CancelledError is not caught: it closes the response on its way out to the caller.
        try:
            return await asyncio.wait_for(self._request(body, stream, reader), left)
        except asyncio.TimeoutError:
            why = f"no complete reply within the {cfg.deadline:g} s deadline"
            if left < cfg.deadline - 0.001:  # a retry: say why it had less
                why += f" ({left:.3g} s were left: it covers the whole request, retries included)"
        except httpx.ConnectTimeout:
            why = f"connect timeout after {cfg.connect_timeout:g} s"
        except httpx.ReadTimeout:
            why = f"read timeout: no data for {cfg.read_timeout:g} s"
        except redirects.NoURL as e:
            why = e.reason(cfg.api_key) + "; is a proxy or a login page in front of it?"
            return sse.Failure(why, retryable=False)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
            return sse.Failure(f"invalid URL {self._endpoint!r}: {e}", retryable=False)
        except httpx.ConnectError as e:
            why = f"cannot connect: {e}"
        except (httpx.DecodingError, inflate.DecodeError) as e:  # e.g. gzip on a plain body
            why = f"the body does not decode as its Content-Encoding header says ({e})"
        except httpx.TransportError as e:
            why = f"connection error ({type(e).__name__}): {e}"
        why = clip(why, 400, cfg.api_key)  # httpx may quote what the server sent
        if stream.streaming:
            return stream.end(why, reader)
        return sse.Failure(why)

    @property
    def _limit(self) -> int:
        """Returns the most bytes one event (or a whole plain reply) may take."""
        return 4 * self._config.max_reply_chars + 65536  # JSON escapes can quadruple text

    @property
    def _stream_limit(self) -> int:
        """Returns the most bytes one stream may bring: a token's chunk takes a few hundred."""
        return self._config.max_stream_bytes + 4096 * self._config.max_tokens

    async def _request(
        self, body: dict[str, Any], stream: sse.Stream, reader: sse.EventReader
    ) -> sse.Reply | sse.Failure:
        """Sends the request and reads the response according to its status and type."""
        async with self._http.stream(
            "POST", self._endpoint, json=body, headers=self._headers,
            timeout=self._timeout, follow_redirects=False,
        ) as response:  # fmt: skip
            status, content_type = response.status_code, response.headers.get("content-type", "")
            if 300 <= status < 400:  # refused (a NoURL raised here, _attempt says)
                return sse.Failure(redirects.refusal(response, self._config.api_key), False)
            if not 200 <= status < 300:
                body_start = await _read_some(response, 65536)
                cfg = self._config
                return status_failure(status, response.headers, body_start, cfg.api_key, cfg.model)
            if "text/event-stream" not in content_type.lower():
                # Some servers ignore stream=true and send the whole completion.
                whole = await _read_some(response, self._limit + 1)  # one more: was it cut?
                return stream.plain(whole[: self._limit], content_type, len(whole) > self._limit)
            stream.streaming = True
            return await self._read_events(response, stream, reader)

    async def _read_events(
        self, response: httpx.Response, stream: sse.Stream, reader: sse.EventReader
    ) -> sse.Reply | sse.Failure:
        """Reads SSE events until [DONE], EOF, a whole code block, the cap or the stream's
        byte limit, or for at most FINISH_GRACE seconds after the choice's finish_reason
        (what may still come is usage and [DONE]: a server that keeps the stream open after
        it held a reply without code until the read timeout)."""
        async with _chunks(response) as chunks:
            pieces = aiter(chunks)
            grace_end: float | None = None  # when the grace after the finish_reason ends
            while True:
                try:
                    # The grace runs from the finish_reason, not from the last chunk: pings
                    # every few seconds after it held the stream to the deadline.
                    if stream.finish_reason is not None and grace_end is None:
                        grace_end = time.monotonic() + FINISH_GRACE
                    wait = None if grace_end is None else max(0.0, grace_end - time.monotonic())
                    chunk = await asyncio.wait_for(anext(pieces), wait)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    return stream.end(None, reader)
                for data in reader.feed(chunk):
                    if (outcome := stream.take(data, reader)) is not None:
                        return outcome
                if reader.pending > self._limit:
                    return sse.Failure(f"an SSE event longer than {self._limit} bytes")
                if reader.received > (most := self._stream_limit):
                    why = f"more than {most} bytes without the reply's end"
                    return stream.end(why, reader, transient=False)
        for data in reader.close():
            if (outcome := stream.take(data, reader)) is not None:
                return outcome
        return stream.end(None, reader)

    def _delay(self, failure: sse.Failure, attempt: int) -> float:
        """Returns how long to wait before the next attempt."""
        cfg = self._config
        if failure.retry_after is None:
            base = min(cfg.backoff_initial * 2.0 ** min(attempt, 60), cfg.backoff_max)
            return base * self._rng.uniform(0.75, 1.25)  # jitter spreads concurrent retries
        if failure.retry_after > cfg.max_retry_after:
            raise LLMError(
                f"LLM server {cfg.url} asked to wait {failure.retry_after:g} s before retrying,"
                f" more than the {cfg.max_retry_after:g} s allowed ({self._clean(failure.reason)})"
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
            self._masked(reply.text), reply.finish_reason, prompt, completion,
            reply.usage is not None, len(reasons) + 1, time.monotonic() - start,
            reply.first_token, tuple(reasons), reply.reasoning,
        )  # fmt: skip


def http_client(*, use_proxy_env: bool = False, servers: Iterable[str] = ()) -> httpx.AsyncClient:
    """Returns the HTTP client for LLMClient (use it as `async with`); the loopback hosts
    among `servers` (base URLs) are always reached directly, as are localhost's names."""
    # The caller decides whether proxy variables apply (a remote API behind a corporate
    # proxy needs them; a local server must not be captured by a stray HTTP_PROXY).
    # Loopback is never proxied: with a remote API in the ensemble the variables apply, and
    # a local server's requests, its key included, went to the proxy (which cannot reach it).
    # A mount names a host, never a range: the servers' loopback hosts are named one by one.
    # The pool (100 connections) exceeds any sensible concurrency. Only the codings that
    # minact.search.inflate decodes are offered: httpx would offer br and zstd too where
    # their packages happen to be installed, and a server might then send them.
    hosts = set(loopback.NAMES)
    for url in servers:
        try:
            host = httpx.URL(url).host
        except httpx.InvalidURL:  # its requests fail, and say why, before any proxy
            continue
        if loopback.is_loopback(host):
            hosts.add(host)
    direct: dict[str, httpx.AsyncBaseTransport | None] = {
        f"all://[{host}]" if ":" in host else f"all://{host}": None for host in sorted(hosts)
    }
    return httpx.AsyncClient(
        trust_env=use_proxy_env, mounts=direct if use_proxy_env else None,
        headers={"Accept-Encoding": ", ".join(inflate.CODINGS)},
    )  # fmt: skip
