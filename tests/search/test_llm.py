"""Tests for minact.llm against a real local streaming server (tests/llm_server.py)."""

from __future__ import annotations

import asyncio
import email.utils
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minact.errors import LLMError, MinactError
from minact.search import llm, sse, status
from minact.search.llm import Completion, LLMClient, LLMConfig, Message
from tests.fakes import Sleeps
from tests.llm_server import (
    GOOD_CODE,
    GOOD_REPLY,
    PROMPT_TOKENS,
    DoneWithoutFinish,
    Empty,
    EmptyBody,
    ErrorEvent,
    Hang,
    Huge,
    InvalidJsonChunk,
    LLMServer,
    PlainJson,
    Redirect,
    Reply,
    Status,
    Trickle,
    Truncate,
    WrongContentType,
)

MESSAGES: list[Message] = [
    {"role": "system", "content": "You write activation functions."},
    {"role": "user", "content": "Write one."},
]
KEY = "sk-test-s3cret-key-0123456789"
NO_CODE = "I would rather talk about the weather today, which is lovely."


async def _complete(url: str, sleep: Sleeps | None, **overrides: Any) -> Completion:
    config = LLMConfig(url=url, model="test-model", **overrides)
    # trust_env=False: a proxy set in the environment must not intercept 127.0.0.1.
    async with httpx.AsyncClient(trust_env=False) as http:
        # As after a first reply that opened no thinking block: a fresh client reads its
        # first replies whole (test_hostile_models), and these test the early stop.
        client = LLMClient(
            http, config, sleep=sleep or Sleeps(), rng=random.Random(0), thinks_first=False
        )
        return await client.complete(MESSAGES)


def complete(server: LLMServer, sleep: Sleeps | None = None, **overrides: Any) -> Completion:
    """Runs one complete() against `server`; retries do not really sleep."""
    return asyncio.run(_complete(server.url, sleep, **overrides))


def fails(server: LLMServer, sleep: Sleeps | None = None, **overrides: Any) -> LLMError:
    """Returns the LLMError that complete() raises."""
    with pytest.raises(LLMError) as info:
        complete(server, sleep, **overrides)
    return info.value


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Polls `condition` until it holds or `timeout` seconds pass (long: a loaded machine may
    take seconds to run the server's thread, and a condition that holds returns at once)."""
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
    return condition()


# --- well-formed streams -------------------------------------------------------------------


def test_streamed_reply_is_joined_and_usage_read(server: LLMServer) -> None:
    server.push(Reply(GOOD_REPLY, chunk_chars=7))
    c = complete(server, stop_at_code_end=False, max_tokens=77, temperature=0.3)
    assert c.text == GOOD_REPLY
    assert c.finish_reason == "stop"
    assert (c.prompt_tokens, c.completion_tokens) == (PROMPT_TOKENS, -(-len(GOOD_REPLY) // 7))
    assert c.usage_reported and c.attempts == 1 and c.retry_reasons == ()
    assert c.first_token is not None and 0 <= c.first_token <= c.latency
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.json == {
        "model": "test-model",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 77,
        "temperature": 0.3,
    }
    assert "authorization" not in request.headers


def test_api_key_is_sent_as_bearer(server: LLMServer) -> None:
    complete(server, api_key=KEY)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_trailing_slash_in_url(server: LLMServer) -> None:
    asyncio.run(_complete(server.url + "/", None))
    assert server.requests[0].path == "/v1/chat/completions"


def test_without_usage_tokens_are_estimated(server: LLMServer) -> None:
    server.push(Reply(GOOD_REPLY, usage=False))
    c = complete(server, stop_at_code_end=False)
    chars = sum(len(m["content"]) for m in MESSAGES)
    assert not c.usage_reported
    assert (c.prompt_tokens, c.completion_tokens) == (-(-chars // 4), -(-len(GOOD_REPLY) // 4))


def test_crlf_pings_and_multiline_data(server: LLMServer) -> None:
    server.push(Reply(GOOD_REPLY, chunk_chars=3, crlf=True, ping_every=1, multiline=True))
    c = complete(server, stop_at_code_end=False)
    assert (c.text, c.finish_reason, c.usage_reported) == (GOOD_REPLY, "stop", True)


def test_length_finish_reason_is_passed_on(server: LLMServer) -> None:
    server.push(Reply(NO_CODE, finish_reason="length"))
    assert complete(server).finish_reason == "length"


def test_empty_reply_is_a_completion_not_an_error(server: LLMServer) -> None:
    server.push(Empty())
    c = complete(server)
    assert (c.text, c.finish_reason, c.attempts, c.first_token) == ("", "stop", 1, None)


def test_plain_json_reply_is_accepted(server: LLMServer) -> None:
    server.push(PlainJson(GOOD_REPLY))
    c = complete(server)
    assert (c.text, c.finish_reason, c.prompt_tokens, c.attempts) == (
        GOOD_REPLY,
        "stop",
        PROMPT_TOKENS,
        1,
    )


def test_models_endpoint_answers(server: LLMServer) -> None:
    with httpx.Client(trust_env=False) as http:
        response = http.get(server.url + "/models")
    assert response.status_code == 200
    assert response.json()["data"][0]["id"] == "test-model"


# --- early stops ---------------------------------------------------------------------------


def test_code_complete_stops_reading_and_server_stays_usable(server: LLMServer) -> None:
    chatter = "\n\nNow let me explain at length why this works. " * 200
    server.push(Reply(GOOD_REPLY + chatter, chunk_chars=10, chunk_delay=0.002))
    c = complete(server)
    assert c.finish_reason == "code_complete"
    assert c.text.endswith("```") and GOOD_CODE in c.text
    assert c.text == GOOD_REPLY[: GOOD_REPLY.index("```\n\n") + 3]
    # The server saw us hang up before it had sent the chatter: we stopped reading early.
    assert wait_until(lambda: server.disconnects == 1)
    assert complete(server).finish_reason == "code_complete"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("text", "complete_block"),
    [
        ("```python\ndef activation(x):\n    return x\n```", True),
        ("Sure:\n```py\ndef activation(x):\n    return x\n```\nmore", True),
        ("```\ndef activation(x):\n    return x\n```", True),
        ("```Python \r\ndef activation(x):\r\n    return x\r\n```", True),
        ("```python\nimport torch\n```\n\n```python\ndef activation(x):\n  return x\n```", True),
        ("```python\ndef activation(x):\n    return x\n", False),  # not closed yet
        ("```python\nimport torch\n```\ndef activation(x): ...", False),  # def outside the fence
        ("```python\ndef relu(x):\n    return x\n```", False),
        ("def activation(x):\n    return x\n```", False),  # no opening fence
    ],
)
def test_code_block_detection(text: str, complete_block: bool) -> None:
    assert bool(sse._CODE_BLOCK.search(text)) is complete_block


def test_huge_reply_is_capped_quickly(server: LLMServer) -> None:
    server.push(Huge(megabytes=10))
    c = complete(server)
    assert (c.finish_reason, len(c.text), c.attempts) == ("cap", 100_000, 1)
    assert wait_until(lambda: server.disconnects == 1)  # we hung up, not read 10 MB


def test_cap_is_configurable(server: LLMServer) -> None:
    server.push(Reply(NO_CODE * 10))
    c = complete(server, max_reply_chars=100)
    assert (c.finish_reason, c.text) == ("cap", (NO_CODE * 10)[:100])


# --- retries -------------------------------------------------------------------------------


def test_429_retry_after_is_honoured(server: LLMServer) -> None:
    server.push(Status(429, {"error": {"message": "slow down"}}, {"Retry-After": "3"}))
    sleeps = Sleeps()
    c = complete(server, sleeps)
    assert sleeps.delays == [3.0]
    assert c.attempts == 2 and c.retry_reasons[0].startswith("429 Too Many Requests: slow down")
    assert c.latency < 3  # the injected sleep did not really wait


def test_retry_after_ms_and_http_date(server: LLMServer) -> None:
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.push(
        Status(503, headers={"retry-after-ms": "250"}), Status(429, headers={"Retry-After": soon})
    )
    sleeps = Sleeps()
    assert complete(server, sleeps).attempts == 3
    assert sleeps.delays[0] == 0.25
    assert 28 <= sleeps.delays[1] <= 30


def test_retry_after_too_long_gives_up(server: LLMServer) -> None:
    server.push(Status(429, headers={"Retry-After": "120"}))
    sleeps = Sleeps()
    err = fails(server, sleeps)
    assert "asked to wait 120 s" in str(err)
    assert sleeps.delays == [] and len(server.requests) == 1


@pytest.mark.parametrize("code", [408, 409, 500, 502, 503])
def test_retryable_status_then_success(server: LLMServer, code: int) -> None:
    server.push(Status(code), Status(code))
    c = complete(server)
    assert c.attempts == 3 and c.finish_reason == "code_complete"
    assert all(reason.startswith(str(code)) for reason in c.retry_reasons)


def test_plain_text_500_is_retried_with_its_message(server: LLMServer) -> None:
    server.push(Status(500, "Internal Server Error"))  # llama-cpp-python on malformed JSON
    c = complete(server)
    assert c.retry_reasons == ("500 Internal Server Error: Internal Server Error",)


def test_backoff_grows_is_capped_and_jittered(server: LLMServer) -> None:
    server.push(*[Status(503)] * 7)
    sleeps = Sleeps()
    err = fails(server, sleeps, retries=6, backoff_initial=0.5, backoff_max=4.0)
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(sleeps.delays) == 6
    for delay, base in zip(sleeps.delays, bases, strict=True):
        assert 0.75 * base <= delay <= 1.25 * base
    assert len(set(sleeps.delays[3:])) == 3  # jitter: capped waits still differ
    assert "failed 7 attempts" in str(err) and "503 Service Unavailable" in str(err)
    assert len(server.requests) == 7


def test_retries_exhausted_lists_the_reasons(server: LLMServer) -> None:
    server.push(Status(502), ErrorEvent(), Truncate(NO_CODE, 20))
    err = fails(server, retries=2)
    message = str(err)
    assert "failed 3 attempts" in message
    assert "502 Bad Gateway" in message
    assert "model crashed (code 500)" in message
    assert "stream cut before the reply finished" in message


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (  # llama-cpp-python
            400,
            {"error": {"message": "This model's maximum context length is 2048 tokens",
                       "type": "invalid_request_error", "code": "context_length_exceeded"}},
            "400 Bad Request: This model's maximum context length is 2048 tokens"
            " (code context_length_exceeded)",
        ),
        (  # llama-server: code is an int
            400,
            {"error": {"code": 400, "message": "request (5031 tokens) exceeds the available"
                       " context size (2048 tokens)", "type": "exceed_context_size_error"}},
            "exceeds the available context size (2048 tokens) (code 400)",
        ),
        (401, {"error": {"message": "Invalid API key"}}, "401 Unauthorized: Invalid API key"),
        (404, {"error": {"message": "model 'x' not found", "type": "not_found_error"}},
         "404 Not Found: model 'x' not found (check the URL"),
        (404, {"detail": "Not Found"}, "404 Not Found: Not Found"),
        (400, {"object": "error", "message": "old vLLM says no", "code": 400}, "old vLLM says no"),
        (422, "unprocessable, in plain text", "422 Unprocessable Entity: unprocessable, in plain"),
    ],
)  # fmt: skip
def test_client_errors_fail_at_once(
    server: LLMServer, status: int, body: dict[str, Any] | str, expected: str
) -> None:
    server.push(Status(status, body))
    sleeps = Sleeps()
    err = fails(server, sleeps)
    assert expected in str(err)
    assert isinstance(err, MinactError)
    assert len(server.requests) == 1 and sleeps.delays == []


def test_a_404_names_the_model_asked_for(server: LLMServer) -> None:
    # Ollama and vLLM answer 404 for a model they do not serve: the name is as likely wrong
    # as the URL, and the message named neither.
    server.push(Status(404, {"detail": "Not Found"}))
    said = "(check the URL (the base, ending in /v1) and the model name 'test-model')"
    assert str(fails(server)).endswith(said) and len(server.requests) == 1


def test_long_error_message_is_clipped(server: LLMServer) -> None:
    server.push(Status(400, {"error": {"message": "x" * 5000}}))
    assert len(str(fails(server))) < 500


def test_x_should_retry_false_disables_retry(server: LLMServer) -> None:
    server.push(Status(503, headers={"x-should-retry": "false"}))
    fails(server)
    assert len(server.requests) == 1


def test_error_event_after_200_is_retried(server: LLMServer) -> None:
    server.push(ErrorEvent("partial", {"message": "out of memory", "code": "oom"}))
    c = complete(server)
    assert c.attempts == 2
    assert c.retry_reasons == ("error event in the stream: out of memory (code oom)",)


def test_truncated_stream_without_code_is_retried(server: LLMServer) -> None:
    server.push(Truncate(NO_CODE, 25), DoneWithoutFinish(NO_CODE))
    c = complete(server)
    assert c.attempts == 3 and c.finish_reason == "code_complete"
    assert all("stream cut before the reply finished" in r for r in c.retry_reasons)


def test_empty_200_stream_is_retried_with_a_hint(server: LLMServer) -> None:
    server.push(EmptyBody())
    c = complete(server)
    assert c.attempts == 2 and "(no events: prompt too long?)" in c.retry_reasons[0]


@pytest.mark.parametrize(
    "behaviour",
    [Truncate(GOOD_REPLY + NO_CODE, len(GOOD_REPLY) + 5), DoneWithoutFinish(GOOD_REPLY)],
)
def test_truncated_stream_with_code_is_usable(
    server: LLMServer, behaviour: Truncate | DoneWithoutFinish
) -> None:
    server.push(behaviour)
    c = complete(server, stop_at_code_end=False)
    assert (c.finish_reason, c.attempts) == ("truncated", 1)
    assert GOOD_CODE in c.text


def test_invalid_json_chunk_is_skipped(server: LLMServer) -> None:
    server.push(InvalidJsonChunk(GOOD_REPLY))
    c = complete(server, stop_at_code_end=False)
    assert (c.text, c.finish_reason, c.attempts) == (GOOD_REPLY, "stop", 1)


def test_stream_of_only_invalid_json_is_retried(server: LLMServer) -> None:
    server.push(InvalidJsonChunk(""))
    c = complete(server)
    assert c.retry_reasons == ("invalid JSON in stream: '{nope'",)  # quoting what came


def test_a_web_page_with_status_200_fails_at_once() -> None:
    # The same page would come back: it was retried with backoff until the retries ran out.
    with LLMServer(responder=lambda body: WrongContentType()) as server:
        sleeps = Sleeps()
        err = fails(server, sleeps, retries=2)
        assert "unexpected content type text/html: an HTML page: 'Welcome to nginx!'" in str(err)
        assert len(server.requests) == 1 and sleeps.delays == []


def test_hang_hits_the_read_timeout_and_is_retried(server: LLMServer) -> None:
    server.push(Hang(30))
    # The retry's reply must not stall as long as the read timeout: 1 s, not a fraction, so
    # that a loaded machine, slow to run the server's thread, cannot time it out too.
    c = complete(server, read_timeout=1.0, deadline=20.0)
    assert c.attempts == 2 and c.retry_reasons == ("read timeout: no data for 1 s",)


def test_trickle_hits_the_deadline_which_leaves_no_time_to_retry(server: LLMServer) -> None:
    server.push(Trickle(GOOD_REPLY, bytes_per_second=20))  # ~40 s for the whole reply
    # A byte every 50 ms never leaves the stream silent for the read timeout, even on a
    # loaded machine; only the deadline can end it.
    err = fails(server, read_timeout=1.0, deadline=2.0)
    # The deadline is the request's, retries included: the trickle used it all.
    assert "failed 1 attempt," in str(err) and "within the 2 s deadline" in str(err)
    assert "covers the whole request" in str(err) and len(server.requests) == 1


def test_redirect_is_refused_and_names_the_location(server: LLMServer) -> None:
    server.push(Redirect("http://elsewhere.invalid:8000/v1/chat/completions"))
    err = fails(server)
    assert "set --llm-url to http://elsewhere.invalid:8000/v1" in str(err)
    assert "307" in str(err) and len(server.requests) == 1


def test_relative_redirect_is_resolved(server: LLMServer) -> None:
    server.push(Redirect("/api/v1/chat/completions", code=301))
    err = fails(server)
    assert f"set --llm-url to {server.url.removesuffix('/v1')}/api/v1" in str(err)


def test_connection_refused_is_retried_then_fails() -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(LLMError, match="cannot connect") as info:
        asyncio.run(_complete(f"http://127.0.0.1:{port}/v1", sleeps, retries=2))
    assert "failed 3 attempts" in str(info.value) and len(sleeps.delays) == 2


def test_bad_url_fails_at_once() -> None:
    with pytest.raises(LLMError, match="invalid URL"):
        asyncio.run(_complete("localhost:8000/v1", None))


# --- cancellation and secrets --------------------------------------------------------------


def test_cancellation_propagates_promptly_and_closes_the_stream(server: LLMServer) -> None:
    server.push(Reply(NO_CODE * 20, chunk_chars=5, chunk_delay=0.01))

    async def main() -> None:
        task = asyncio.create_task(_complete(server.url, None))
        # Until the server has the request and streams its reply (seconds long): cancelled
        # before it connected, a client on a loaded machine would close no stream at all.
        for _ in range(6000):
            if server.requests:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the stream is flowing
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    # The reply takes seconds to stream: a disconnect means the cancellation closed it.
    assert wait_until(lambda: server.disconnects == 1)


def test_cancellation_during_backoff_propagates(server: LLMServer) -> None:
    server.push(Status(503, headers={"Retry-After": "30"}))

    async def main() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = LLMClient(http, LLMConfig(server.url, "m"))  # the real asyncio.sleep
            task = asyncio.create_task(client.complete(MESSAGES))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())  # with the 30 s backoff not cancelled, pytest.raises above fails


def test_api_key_never_leaks(server: LLMServer) -> None:
    config = LLMConfig(server.url, "m", api_key=KEY)
    assert KEY not in repr(config) and KEY not in str(config)
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    server.push(Status(500, echo))
    c = complete(server, api_key=KEY)
    assert KEY not in repr(c) and "Incorrect API key provided: ***" in c.retry_reasons[0]
    server.push(Status(401, echo))
    err = fails(server, api_key=KEY)
    assert KEY not in str(err) and KEY not in repr(err) and "***" in str(err)


# --- pure parts ----------------------------------------------------------------------------


def test_event_reader_handles_line_ends_comments_and_fields() -> None:
    reader = sse.EventReader()
    stream = (
        b": ping - 2025-01-01\r\n\r\n"
        b"data: one\r\n\r\n"
        b"event: message\nid: 7\ndata:two\ndata:  three\n\n"
        b":\n\n"
        b"data: [DONE]"
    )
    assert reader.feed(stream) == ["one", "two\n three"]
    assert reader.close() == ["[DONE]"]


@settings(deadline=None)  # a loaded machine may take longer than 200 ms for one example
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_event_reader_does_not_depend_on_chunking(cuts: list[int]) -> None:
    stream = b'data: {"a": 1}\r\n\r\n: ping\n\ndata: x\ndata: y\n\ndata: z\r\rdata: [DONE]\n\n' * 2
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    reader = sse.EventReader()
    events = [e for piece in pieces for e in reader.feed(piece)] + reader.close()
    assert events == ['{"a": 1}', "x\ny", "z", "[DONE]"] * 2


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5", "retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert status.retry_after(httpx.Headers(headers)) == expected


def test_usage_chunk_with_null_or_missing_choices() -> None:
    for chunk in ('{"choices": null, "usage": {"prompt_tokens": 3, "completion_tokens": 4}}',
                  '{"usage": {"prompt_tokens": 3, "completion_tokens": 4}}'):  # fmt: skip
        stream = sse.Stream(cap=100, stop_at_code=True)
        assert stream.take(chunk) is None and stream.usage == (3, 4)


# --- helpers for the CLI -------------------------------------------------------------------


def test_server_model_names_the_first_listed_model(server: LLMServer) -> None:
    async def main() -> str:
        async with llm.http_client() as http:
            return await llm.server_model(http, LLMConfig(server.url, "", api_key=KEY))

    assert asyncio.run(main()) == "test-model"
    assert server.requests[0].path == "/v1/models"
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("reachable", [True, False])
def test_server_model_failure_is_an_llm_error(server: LLMServer, reachable: bool) -> None:
    url = server.url + "/wrong" if reachable else "http://127.0.0.1:1/v1"  # 404, or refused

    async def main() -> str:
        async with llm.http_client() as http:
            return await llm.server_model(http, LLMConfig(url, "", connect_timeout=1))

    with pytest.raises(LLMError, match="models"):
        asyncio.run(main())


def test_a_stream_cut_after_its_finish_reason_is_complete() -> None:
    stream = sse.Stream(cap=100, stop_at_code=True)
    assert stream.take('{"choices": [{"delta": {"content": "hi"}, "finish_reason": null}]}') is None
    assert stream.take('{"choices": [{"delta": {}, "finish_reason": "stop"}]}') is None
    reply = stream.end("stream cut before the reply finished: connection reset")
    assert reply == sse.Reply("hi", "stop", None, stream.first_token)


# --- the sampling seed -----------------------------------------------------------------------


async def _seeded(url: str, seeds: list[int | None]) -> list[Completion]:
    """Asks for one completion per entry of `seeds` on one client, in order."""
    async with httpx.AsyncClient(trust_env=False) as http:
        client = LLMClient(http, LLMConfig(url=url, model="test-model"), sleep=Sleeps())
        return [await client.complete(MESSAGES, seed=s) for s in seeds]


def _sent_seeds(server: LLMServer) -> list[Any]:
    return [r.json.get("seed", "absent") for r in server.requests]


def test_the_sampling_seed_is_sent_when_given(server: LLMServer) -> None:
    completions = asyncio.run(_seeded(server.url, [7, None, 2**31 - 1]))
    assert _sent_seeds(server) == [7, "absent", 2**31 - 1]
    assert all(c.retry_reasons == () for c in completions)


@pytest.mark.parametrize(
    "refusal",
    [  # OpenAI-style, and a server that validates its fields (422, pydantic)
        Status(400, {"error": {"message": "Unrecognized request argument supplied: seed"}}),
        Status(422, {"detail": [{"loc": ["body", "seed"], "msg": "extra fields not permitted"}]}),
    ],
)
def test_a_server_that_refuses_the_seed_is_asked_without_it_from_then_on(
    server: LLMServer, refusal: Status
) -> None:
    server.push(refusal)
    first, second = asyncio.run(_seeded(server.url, [5, 6]))
    assert _sent_seeds(server) == [5, "absent", "absent"]
    assert GOOD_CODE in first.text and GOOD_CODE in second.text
    assert len(first.retry_reasons) == 1
    assert "refused the sampling seed" in first.retry_reasons[0]
    assert "not reproducible" in first.retry_reasons[0]
    assert second.retry_reasons == ()


def test_a_refusal_that_is_not_about_the_seed_still_fails(server: LLMServer) -> None:
    # The request without the seed is refused too: the error is the server's, and the
    # client goes on sending seeds (the seed was not the reason).
    too_long = Status(400, {"error": {"message": "context length exceeded"}})
    server.push(too_long, too_long)

    async def main() -> tuple[str, bool]:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = LLMClient(http, LLMConfig(url=server.url, model="test-model"), sleep=Sleeps())
            with pytest.raises(LLMError) as info:
                await client.complete(MESSAGES, seed=3)
            return str(info.value), client.seeded

    message, seeded = asyncio.run(main())
    assert "context length exceeded" in message and seeded
    assert _sent_seeds(server) == [3, "absent"]
