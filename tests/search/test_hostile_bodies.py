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
from minact.search.inflate import PIECE, DecodeError, decoded
from minact.search.llm import Completion, LLMClient, LLMConfig, Message
from minact.untrusted import clip, writable
from tests.fakes import Sleeps, run
from tests.llm_server import GOOD_REPLY, ErrorEvent, LLMServer, PlainJson, Raw, Reply, Status

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


def _head(*extra: str, ctype: str = "text/event-stream") -> bytes:
    lines = ["HTTP/1.1 200 OK", f"Content-Type: {ctype}", *extra, "Connection: close"]
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
    chunk = {"choices": [{"index": 0, "delta": {"content": "No code, sorry."}}]}
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    events = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(finish)}\n\n".encode()
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
