"""minact.search.llm against servers that stall or send without end, over real HTTP on
127.0.0.1: a stall right after the 200 headers or in the middle of an event is reported
after the read timeout whether or not the client knows yet if the model's replies start
inside a thinking block (until it does, it reads a reply past its code); comments without
end, or one line without end, are cut by the bytes they bring, not read until the deadline."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from minact.errors import LLMError
from minact.search.llm import LLMClient, LLMConfig, Message
from tests.fakes import Sleeps, run
from tests.llm_server import GOOD_REPLY, Endless, LLMServer, Stall

MESSAGES: list[Message] = [{"role": "user", "content": "Write one."}]
KNOWN = [None, False]  # a fresh client (it reads its first replies whole), and a later one
FIRST_EVENT = 227  # bytes of the stream's first event (the role) as the server sends it


def _fails(server: LLMServer, thinks_first: bool | None, **overrides: Any) -> str:
    """Returns the message of the LLMError that one request without retries ends in; its
    deadline is long, so that only the read timeout or a limit can end it in time."""

    async def main() -> None:
        config = LLMConfig(server.url, "test-model", retries=0, deadline=60.0, **overrides)
        async with httpx.AsyncClient(trust_env=False) as http:
            client = LLMClient(
                http, config, sleep=Sleeps(), rng=random.Random(0), thinks_first=thinks_first
            )
            await client.complete(MESSAGES)

    with pytest.raises(LLMError) as info:
        run(main())
    return str(info.value)


@pytest.mark.parametrize("thinks_first", KNOWN)
def test_a_stall_after_the_headers_is_reported_at_the_read_timeout(
    server: LLMServer, thinks_first: bool | None
) -> None:
    server.push(Stall(after=0))
    message = _fails(server, thinks_first, read_timeout=0.3)
    assert message.endswith(
        "last: read timeout: no data for 0.3 s, before any byte of the event stream"
    )


@pytest.mark.parametrize("thinks_first", KNOWN)
@pytest.mark.parametrize(
    ("after", "said"),
    [
        (
            FIRST_EVENT + 100,
            "stream cut before the reply finished: read timeout: no data for 0.3 s",
        ),
        (60, "read timeout: no data for 0.3 s; 60 bytes of a line that never ended"),
    ],
)
def test_a_stall_in_the_middle_of_an_event_is_reported_at_the_read_timeout(
    server: LLMServer, thinks_first: bool | None, after: int, said: str
) -> None:
    # The stream stops within an event, its JSON half sent, before any code: in the second
    # (the first told the role) or in the first, which no line has ended yet.
    server.push(Stall(GOOD_REPLY, after=after))
    assert _fails(server, thinks_first, read_timeout=0.3).endswith(f"last: {said}")


@pytest.mark.parametrize("thinks_first", KNOWN)
def test_comments_without_end_are_cut_by_their_bytes(
    server: LLMServer, thinks_first: bool | None
) -> None:
    # Each ping restarts the read timeout: only the deadline (up to a day) ended the stream.
    server.push(
        Endless(start=b"", piece=b": keepalive\n\n" * 1000, content_type="text/event-stream")
    )
    limit = 200_000 + 4096 * 16
    message = _fails(server, thinks_first, max_stream_bytes=200_000, max_tokens=16)
    assert f"last: more than {limit} bytes without the reply's end; only blank lines" in message
    assert "comments (keep-alive pings)" in message


@pytest.mark.parametrize("start", [b"data: ", b": "])
def test_one_line_without_end_is_cut_at_the_event_limit(server: LLMServer, start: bytes) -> None:
    server.push(Endless(start=start, piece=b"x" * 1000, content_type="text/event-stream"))
    message = _fails(server, None, max_reply_chars=1000)
    assert message.endswith(f"last: an SSE event longer than {4 * 1000 + 65536} bytes")
