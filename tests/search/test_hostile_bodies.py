"""minact.search against bodies a hostile or broken server sends: compression bombs and
encodings, half characters, a byte order mark, model lists and numbers of the wrong kind.
Over real HTTP on 127.0.0.1 where a server is involved."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import zlib
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest

from minact.errors import LLMError
from minact.search import llm
from minact.search.events import not_json
from minact.search.inflate import PIECE, DecodeError, decoded
from minact.search.llm import Completion, LLMClient, LLMConfig, Message
from minact.untrusted import clip, writable
from tests.fakes import Sleeps, run
from tests.llm_server import (
    GOOD_REPLY,
    ErrorEvent,
    LLMServer,
    PlainJson,
    Raw,
    Reply,
    Status,
    finished_without_code,
)

MESSAGES: list[Message] = [{"role": "user", "content": "Write one."}]
ANSWER = GOOD_REPLY[: GOOD_REPLY.rindex("```") + 3]  # a stream is read up to its code's end


def ask(server: LLMServer, sleep: Sleeps | None = None, **overrides: Any) -> Completion:
    async def main() -> Completion:
        config = LLMConfig(url=server.url, model="test-model", **overrides)
        async with httpx.AsyncClient(trust_env=False) as http:
            # As after a first reply that opened no thinking block: a fresh client reads its
            # first replies whole (test_hostile_models), and these test the early stop.
            client = LLMClient(
                http, config, sleep=sleep or Sleeps(), rng=random.Random(0), thinks_first=False
            )
            return await client.complete(MESSAGES)

    return run(main())


def _head(*extra: str, ctype: str = "text/event-stream", status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {ctype}", *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _stream(text: str = GOOD_REPLY) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()


async def _chunks(*data: bytes) -> AsyncGenerator[bytes, None]:
    for chunk in data:
        yield chunk


async def _inflate(encoding: str, *data: bytes) -> list[bytes]:
    return [piece async for piece in decoded(_chunks(*data), encoding)]


# --- compressed bodies ----------------------------------------------------------------------


def test_a_compression_bomb_is_inflated_a_bounded_piece_at_a_time() -> None:
    plain = b"\n" * (16 * PIECE + 123)
    pieces = run(_inflate("gzip", gzip.compress(plain)))  # one small chunk, 1000 times larger
    assert b"".join(pieces) == plain
    assert max(len(p) for p in pieces) <= PIECE and len(pieces) > 16


def test_the_event_loop_runs_between_the_pieces_of_a_bomb() -> None:
    async def main() -> tuple[int, int]:
        ticks, done = 0, False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        pieces = await _inflate("gzip", gzip.compress(b"\n" * (32 * PIECE)))
        done = True
        await task
        return ticks, len(pieces)

    ticks, pieces = run(main())
    assert ticks >= pieces  # a deadline (or another request) gets in after each piece


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # with its zlib header, as the HTTP spec says
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw, as some servers send it
        ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),  # applied in this order
        ("identity", lambda b: b),
        ("", lambda b: b),
    ],
)
def test_each_coding_httpx_decodes_is_still_decoded(encoding: str, pack: Any) -> None:
    plain = _stream() * 50
    packed = pack(plain)
    cuts = [packed[i : i + 7] for i in range(0, len(packed), 7)]  # cut anywhere
    assert b"".join(run(_inflate(encoding, *cuts))) == plain


@pytest.mark.parametrize(("encoding", "data"), [("gzip", b"plain text"), ("br", b"\x8b\x00")])
def test_a_body_that_does_not_decode_raises(encoding: str, data: bytes) -> None:
    with pytest.raises(DecodeError):
        run(_inflate(encoding, data))


def test_a_gzipped_event_stream_is_read(server: LLMServer) -> None:
    server.push(Raw(_head("Content-Encoding: gzip") + gzip.compress(_stream())))
    c = ask(server)
    assert (c.text, c.attempts) == (ANSWER, 1)


def test_an_unsupported_coding_is_named(server: LLMServer) -> None:
    server.push(Raw(_head("Content-Encoding: br") + b"\x1b\x00\x00"), Reply())
    c = ask(server)
    assert "Content-Encoding 'br' is not supported" in c.retry_reasons[0]


def test_requests_offer_only_the_codings_minact_decodes(server: LLMServer) -> None:
    # httpx offers br and zstd where their packages are installed; inflate decodes neither.
    async def main() -> Completion:
        config = LLMConfig(url=server.url, model="test-model")
        async with llm.http_client() as http:
            client = LLMClient(http, config, sleep=Sleeps(), thinks_first=False)
            return await client.complete(MESSAGES)

    assert run(main()).text == ANSWER
    assert server.requests[-1].headers["accept-encoding"] == "gzip, deflate"


def test_a_gzip_bomb_instead_of_a_stream_fails_the_attempt(server: LLMServer) -> None:
    bomb = gzip.compress(b"\n" * (64 * PIECE))
    server.push(Raw(_head("Content-Encoding: gzip") + bomb), Reply())
    c = ask(server)
    pings = f"only blank lines and comments (keep-alive pings) in {64 * PIECE} bytes"
    assert c.retry_reasons[0].endswith(pings)


def test_a_gzipped_model_list_is_read() -> None:
    body = gzip.compress(json.dumps({"data": [{"id": "m"}]}).encode())
    answer = Raw(_head("Content-Encoding: gzip", ctype="application/json") + body)
    with LLMServer(gets={"/v1/models": answer}) as s:
        assert _model(s.url) == "m"


# --- text that is not text ------------------------------------------------------------------


def test_half_a_character_in_a_reply_becomes_a_replacement_character(server: LLMServer) -> None:
    # json.dumps writes the lone surrogate as the escape \ud800, as a hostile server may.
    server.push(Reply("A gate \ud800:" + GOOD_REPLY), PlainJson("Plain \udfff:" + GOOD_REPLY))
    for prefix in ("A gate \ufffd:", "Plain \ufffd:"):
        c = ask(server)
        assert c.text.startswith(prefix)
        c.text.encode("utf-8")  # what a follow-up request and the report need


def test_half_a_character_in_an_error_is_escaped(server: LLMServer) -> None:
    server.push(ErrorEvent(error={"message": "bad \udcff"}), Reply())
    c = ask(server)
    assert "bad \\udcff" in c.retry_reasons[0]
    assert writable("a\ud800b\udfff") == "a\ufffdb\ufffd" and clip("\ud800") == "\\ud800"


def test_a_byte_order_mark_before_the_first_event_is_dropped(server: LLMServer) -> None:
    server.push(Raw(_head() + b"\xef\xbb\xbf" + _stream()))
    c = ask(server)
    assert (c.text, c.attempts) == (ANSWER, 1)


def test_a_stream_held_open_after_its_finish_reason_ends_after_a_grace(
    server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reply without a code block is read to its end; a server that sends the finish chunk
    # and then neither [DONE] nor a close held it until the read timeout, then failed it.
    monkeypatch.setattr(llm, "FINISH_GRACE", 0.2)
    events = finished_without_code()
    server.push(Raw(_head() + events, hang=60.0))
    c = ask(server, read_timeout=20.0, deadline=30.0, retries=0)
    assert (c.text, c.finish_reason, c.attempts) == ("No code, sorry.", "stop", 1)


# --- numbers and lists of the wrong kind ----------------------------------------------------


def _model(url: str, model: str = "") -> str:
    async def main() -> str:
        async with llm.http_client() as http:
            return await llm.server_model(http, LLMConfig(url, model))

    return run(main())


@pytest.mark.parametrize("data", [5, True, 1.5, "m"])
def test_a_model_list_that_is_not_a_list_lists_nothing(data: Any) -> None:
    with LLMServer(models={"data": data}) as s:
        assert _model(s.url, "m") == "m"  # as from a server without the route
        with pytest.raises(LLMError, match="named no model"):
            _model(s.url)


def test_a_context_length_past_any_model_is_no_length() -> None:
    models = {"data": [{"id": "m", "max_model_len": 10**400}]}
    with LLMServer(models=models, props={"n_ctx": 10**30}) as s:

        async def main() -> tuple[int, str] | None:
            async with llm.http_client() as http:
                return await llm.context_length(http, LLMConfig(s.url, "m"))

        assert run(main()) is None


def test_a_retry_after_date_past_any_calendar_backs_off(server: LLMServer) -> None:
    when = "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"
    server.push(Status(429, headers={"Retry-After": when}))
    sleeps = Sleeps()
    c = ask(server, sleeps)
    assert c.attempts == 2 and len(sleeps.delays) == 1
    assert sleeps.delays[0] <= 1.0  # the first backoff (0.5 s, jittered), not the date


def test_a_whole_completion_with_bytes_that_are_no_utf8_is_read(server: LLMServer) -> None:
    # One invalid byte in a non-streamed reply failed it ("unexpected content type
    # application/json"), where the same byte in a stream becomes U+FFFD.
    message = {"role": "assistant", "content": "A gate\udcff:\n" + GOOD_REPLY}
    body = json.dumps({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
    server.push(Raw(_head(ctype="application/json") + body.encode().replace(b"\\udcff", b"\xff")))
    c = ask(server, retries=0)
    assert c.text == "A gate\ufffd:\n" + GOOD_REPLY and c.finish_reason == "stop"


@pytest.mark.parametrize(
    ("before", "said"),
    [
        (b"\x00" * 30 + b'data: {"choices": []}\n\n', "the first line: '" + "\\x00" * 20 + "…'"),
        (b'{"choices": [{"delta": {"content": "hi"}}]}\n\n', """the first line: '{"choices"""),
    ],
)
def test_done_after_lines_that_are_no_events_says_what_came(
    server: LLMServer, before: bytes, said: str
) -> None:
    # It said "the event stream ended empty (no events: prompt too long?)": [DONE] came.
    server.push(Raw(_head() + before + b"data: [DONE]\n\n"))
    with pytest.raises(LLMError) as info:
        ask(server, retries=0)
    message = str(info.value)
    cut = f"stream cut before the reply finished: no complete event in {len(before) + 14} bytes"
    assert cut in message and said in message and "prompt too long" not in message


# --- control characters, broken JSON, and events of another protocol ------------------------


def _fails(server: LLMServer, **overrides: Any) -> str:
    with pytest.raises(LLMError) as info:
        ask(server, **overrides)
    return str(info.value)


def test_a_whole_reply_with_raw_control_characters_in_its_strings_is_read(
    server: LLMServer,
) -> None:
    # JSON wants a line break or \x01 in a string escaped; llama.cpp's server sometimes sends
    # them raw. The reply was taken for cut JSON and retried until the retries ran out.
    message = {"role": "assistant", "content": "A\x01gate:\n" + GOOD_REPLY}
    body = json.dumps({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
    raw = body.replace("\\u0001", "\x01").replace("\\n", "\n").encode()
    assert b"\n" in raw and b"\x01" in raw
    server.push(Raw(_head(ctype="application/json") + raw))
    c = ask(server, retries=0)
    assert (c.text, c.finish_reason, c.attempts) == ("A\x01gate:\n" + GOOD_REPLY, "stop", 1)


@pytest.mark.parametrize(
    ("status", "body", "said", "requests"),
    [
        ("400 Bad Request", b'{"error": {"message": "bad\n\x01thing"}}',
         "400 Bad Request: bad\\n\\x01thing", 1),
        ("200 OK", b'{"error": {"message": "no such\nmodel", "code": 400}}',
         "error from the server: no such\\nmodel (code 400)", 1),
        ("200 OK", b'{"error": {"message": "Loading\nmodel", "code": 503}}',
         "error from the server: Loading\\nmodel (code 503)", 3),
    ],
)  # fmt: skip
def test_an_error_body_with_raw_control_characters_gives_its_message(
    status: str, body: bytes, said: str, requests: int
) -> None:
    # Its message was not read: the whole body was quoted, and an error with status 200
    # was retried as cut JSON whatever its code said.
    with LLMServer(lambda request: Raw(_head(ctype="application/json", status=status) + body)) as s:
        message = _fails(s, retries=2)
        assert len(s.requests) == requests
    assert message.endswith(said)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"choices": [oops]}', "Expecting value at character 13"),
        (b'{"a": 1}\n{"a": 2}\n', "Extra data at character 9"),  # JSON lines, not one answer
        (b'{"choices": []} <!-- cached -->', "Extra data at character 16"),
        (b'{"a": "\\q"}', "Invalid \\escape at character 7"),
    ],
)
def test_broken_json_with_status_200_fails_at_once_saying_what_came(body: bytes, why: str) -> None:
    # Retried with backoff as if the connection had dropped, though every attempt got it.
    with LLMServer(lambda request: Raw(_head(ctype="application/json") + body)) as s:
        message = _fails(s, retries=3)
        assert len(s.requests) == 1
    start = clip(body.decode().strip(), 80)
    assert message == f"LLM server {s.url}: the server answered broken JSON ({why}): '{start}'"


COMPLETION = (
    '{"id": "c-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": '
    '"a\\u00e9\\ud83d\\ude00 \\"q\\" \\\\ b\\n"}, "finish_reason": "stop", "logprobs": null}], '
    '"usage": {"prompt_tokens": 12, "completion_tokens": -3.5e+2}, "ok": true, "no": false, '
    '"x": [1.25E-3, -0, NaN, -Infinity, Infinity], "t": "\\ud800"}'
)


def test_json_cut_anywhere_is_the_start_of_json_and_not_broken() -> None:
    # A body cut short (a dropped connection) may come whole when asked again.
    json.loads(COMPLETION)
    for n in range(len(COMPLETION) + 1):
        assert not_json(COMPLETION[:n].encode()) is None, COMPLETION[:n]
    assert not_json(b"data: {nope") is None  # no JSON start: an event stream, mislabelled
    assert not_json(COMPLETION.replace("true", "tru").encode()) is not None


def _events(*data: str, done: bool = True) -> bytes:
    return "".join(f"data: {d}\n\n" for d in (*data, *(["[DONE]"] if done else []))).encode()


@pytest.mark.parametrize(
    ("events", "n", "first", "keys"),
    [
        (_events('{"foo": 1}', '{"foo": 2}', '{"foo": 3}'), 3, '{"foo": 1}', "foo"),
        (b'event: message_start\ndata: {"type": "message_start", "message": {}}\n\n'
         b'data: {"type": "content_block_delta", "delta": {"text": "hi"}}\n\n',
         2, '{"type": "message_start", "message": {}}', "type, message"),
    ],
)  # fmt: skip
def test_a_stream_of_objects_that_are_no_chunks_fails_at_once_saying_what_came(
    events: bytes, n: int, first: str, keys: str
) -> None:
    # Valid JSON, but no chat-completion chunk: retried as a cut stream, though a server of
    # another protocol sends the same events again.
    with LLMServer(lambda request: Raw(_head() + events)) as s:
        message = _fails(s, retries=3)
        assert len(s.requests) == 1
    assert message == (
        f"LLM server {s.url}: the server streamed {n} events but no chat-completion chunk: the"
        f" first is a JSON object with no choices (its keys: {keys}): '{first}' (is --llm-url"
        " the API's base URL? It usually ends in /v1)"
    )


def test_objects_that_are_no_chunks_then_a_timeout_are_asked_again(server: LLMServer) -> None:
    # A proxy's keep-alive or progress objects before a reply that came too late: the
    # timeout may not recur. Without the timeout (above), the same objects fail at once.
    server.push(Raw(_head() + _events('{"progress": 0.5}', done=False), hang=60.0), Reply())
    c = ask(server, read_timeout=1.0, retries=1)  # the second reply must not stall that long
    assert (c.text, c.attempts) == (ANSWER, 2)
    reason = c.retry_reasons[0]
    assert reason.startswith("read timeout: no data for 1 s; the server streamed 1 event")


@pytest.mark.parametrize(
    ("event", "said", "retried"),
    [
        ('{"error": {"message": "bad request", "code": 400}}', "bad request (code 400)", False),
        ('{"object": "error", "message": "too long", "code": 400}', "too long (code 400)", False),
        ('{"error": {"message": "no such model"}}', "no such model", False),
        ('{"error": {"message": "Loading model", "code": 503}}', "Loading model (code 503)", True),
        ('{"error": {"message": "busy", "code": "429"}}', "busy (code 429)", True),
    ],
)
def test_an_error_event_in_place_of_the_reply_is_retried_only_for_a_transient_code(
    server: LLMServer, event: str, said: str, retried: bool
) -> None:
    # As an error answered with status 200 is; an error after the reply began is retried
    # whatever its code (test_llm). A flat one (old vLLM) was taken for a cut stream.
    server.push(Raw(_head() + _events(event, done=False)), Reply())
    if retried:
        c = ask(server, retries=1)
        assert c.attempts == 2 and c.retry_reasons == (f"error event in the stream: {said}",)
    else:
        message = _fails(server, retries=1)
        assert message == f"LLM server {server.url}: error event in the stream: {said}"
        assert len(server.requests) == 1


def test_an_error_event_after_a_role_chunk_alone_is_still_in_place_of_the_reply(
    server: LLMServer,
) -> None:
    # vLLM, among others, opens each stream with a chunk of the role alone (and llama.cpp
    # with an empty content); an error after it was taken for a reply that broke off, and
    # a request the server refuses (400) was asked again.
    too_long = {"message": "prompt too long", "code": 400}
    server.push(ErrorEvent(text_before="", error=too_long), Reply())
    message = _fails(server, retries=1)
    said = "error event in the stream: prompt too long (code 400)"
    assert message == f"LLM server {server.url}: {said}"
    assert len(server.requests) == 1


def test_a_stream_whose_content_is_a_number_fails_at_once_saying_so(server: LLMServer) -> None:
    # It was read as an empty reply, which the search answers with a follow-up for code.
    chunk = '{"choices": [{"index": 0, "delta": {"content": 7}, "finish_reason": "stop"}]}'
    server.push(Raw(_head() + _events(chunk)), Reply())
    message = _fails(server, retries=1)
    said = "no text in the stream's chunks: `delta.content` is int 7, not a str"
    assert message == f"LLM server {server.url}: {said}"
    assert len(server.requests) == 1
