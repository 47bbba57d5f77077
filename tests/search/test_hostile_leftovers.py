"""Hostile servers: one that echoes the API key in its replies, one that pings after its end."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from minact.search import llm
from minact.search.llm import Completion, LLMClient, LLMConfig, Message
from tests.fakes import Sleeps
from tests.llm_server import Drip, LLMServer, PlainJson, Reply, finished_without_code

KEY = "sk-echoed-s3cret-0123456789"
MESSAGES: list[Message] = [{"role": "user", "content": "Write one."}]
ECHO = f"Your key is {KEY}.\n\n```python\ndef activation(x):\n    return x  # {KEY}\n```\n"


def _complete(server: LLMServer, key: str | None, **overrides: Any) -> Completion:
    async def main() -> Completion:
        config = LLMConfig(server.url, "m", api_key=key, **overrides)
        async with httpx.AsyncClient(trust_env=False) as http:
            client = LLMClient(http, config, sleep=Sleeps(), rng=random.Random(0))
            return await client.complete(MESSAGES)

    return asyncio.run(main())


def test_a_key_echoed_in_a_streamed_or_whole_reply_is_masked(server: LLMServer) -> None:
    # The reply goes to llm.jsonl, events.jsonl, the reports and the cache.
    server.push(Reply(ECHO), PlainJson(ECHO))
    for _ in range(2):
        c = _complete(server, KEY)
        assert KEY not in c.text and "return x  # ***" in c.text, c.text


def test_a_short_key_is_not_masked_out_of_the_code(server: LLMServer) -> None:
    server.push(Reply(ECHO))
    assert "return x  #" in _complete(server, "x").text


def test_pings_after_the_finish_reason_do_not_hold_the_stream_past_the_grace(
    server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The grace after the finish chunk restarted at each byte: a server that pings (here
    # a space every 50 ms) and never closes held the call to its deadline.
    monkeypatch.setattr(llm, "FINISH_GRACE", 0.2)
    events = finished_without_code()
    server.push(Drip(events, every=0.05, content_type="text/event-stream"))
    c = _complete(server, None, read_timeout=60.0, deadline=120.0, retries=0)
    assert (c.text, c.finish_reason, c.attempts) == ("No code, sorry.", "stop", 1)
    assert c.latency < 60.0  # the deadline, 120 s, is not waited for
