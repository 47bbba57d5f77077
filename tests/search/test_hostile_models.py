"""minact.search.llm against reasoning models and unusual servers, over real HTTP on
127.0.0.1: code sketched in a <think> block, thinking cut at --max-tokens, reasoning fields,
lines ended by a lone CR, a redirect to another host, and proxy variables."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from minact.candidate import Hash
from minact.errors import LLMError
from minact.score import Score, TaskScore
from minact.search import llm
from minact.search.llm import Completion, LLMClient, LLMConfig, Message
from minact.search.population import Member
from minact.search.proposers import LLMProposer, ProposalRequest
from minact.search.reply import ParseFailure, parse_reply
from tests.fakes import Sleeps, run
from tests.llm_server import GOOD_CODE, GOOD_REPLY, LLMServer, Raw, Redirect, Reply

MESSAGES: list[Message] = [{"role": "user", "content": "Write one."}]
SKETCH = "def activation(x):\n    return x  # a first idea\n"
THOUGHT = f"Let me sketch one:\n```python\n{SKETCH}```\nNo, a gate extrapolates better.\n"


def _asks(url: str, n: int = 1, **overrides: Any) -> list[Completion]:
    """Returns the completions of `n` requests made by one client, one after the other."""

    async def main() -> list[Completion]:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = LLMClient(http, LLMConfig(url, "test-model", **overrides), sleep=Sleeps())
            return [await client.complete(MESSAGES) for _ in range(n)]

    return run(main())


def _raw(body: bytes, ctype: str = "text/event-stream") -> Raw:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nConnection: close\r\n\r\n"
    return Raw(head.encode() + body)


def _event(delta: dict[str, Any], finish: str | None = None, end: str = "\n") -> bytes:
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}{end}{end}".encode()


def _proposal(server: LLMServer, thinks_first: bool | None = None) -> Any:
    """Returns the proposer's Reply to one request (whose parent is a plain GELU)."""

    async def main() -> Any:
        async with httpx.AsyncClient(trust_env=False) as http:
            config = LLMConfig(server.url, "test-model")
            client = LLMClient(http, config, sleep=Sleeps(), thinks_first=thinks_first)
            tasks = {"sine": TaskScore(1.0, 0.1, 0.0, -0.4)}
            score = Score("p", Hash("p" * 8), "def activation(x):\n    return F.gelu(x)\n",
                          "ok", "", Hash("p" * 9), -0.2, 0.01, 1.5, tasks)  # fmt: skip
            parent = Member(score, 0, 0, "llm")
            request = ProposalRequest(0, parent, None, MESSAGES, random.Random(0))
            return await LLMProposer(client).propose(request)

    return run(main())


# --- thinking in the content (DeepSeek-R1, QwQ, Qwen3 without a reasoning parser) ----------


@pytest.mark.parametrize("chunk_chars", [3, 20, 10_000])
def test_code_sketched_while_thinking_does_not_end_the_stream(
    server: LLMServer, chunk_chars: int
) -> None:
    # The stream stopped at the sketch, and the sketch was the candidate: every reply of
    # such a model gave `return x`.
    server.push(Reply(f"<think>\n{THOUGHT}</think>\n\n{GOOD_REPLY}", chunk_chars=chunk_chars))
    (c,) = _asks(server.url)
    assert c.finish_reason == "code_complete" and c.text.endswith(GOOD_CODE + "```")
    assert parse_reply(c.text, "") == GOOD_CODE


def test_thinking_opened_by_the_chat_template_is_learnt_from_its_close(
    server: LLMServer,
) -> None:
    # The template opened the block, so the reply holds only its </think>. Once a reply
    # shows that, the client's later streams start inside the block.
    server.push(
        Reply(f"I should try a gate.\n</think>\n\n{GOOD_REPLY}"),
        Reply(f"{THOUGHT}</think>\n\n{GOOD_REPLY}"),
    )
    first, second = _asks(server.url, 2)
    assert parse_reply(first.text, "") == GOOD_CODE
    assert parse_reply(second.text, "") == GOOD_CODE


@pytest.mark.parametrize("chunk_chars", [3, 20, 10_000])
def test_a_sketch_in_the_first_reply_opened_by_the_template_is_not_the_answer(
    server: LLMServer, chunk_chars: int
) -> None:
    # The client learnt the template from a reply's </think>, but the first reply's stream
    # stopped at its sketch, before the </think>: the sketch was the candidate, and as the
    # cut text held no tag, nothing was learnt and every later reply gave the sketch too.
    text = f"{THOUGHT}</think>\n\n{GOOD_REPLY}"
    server.push(Reply(text, chunk_chars=chunk_chars), Reply(text, chunk_chars=chunk_chars))
    first, second = _asks(server.url, 2)
    for c in (first, second):
        assert c.text.startswith("<think>" + THOUGHT + "</think>")  # the template's opener
        assert parse_reply(c.text, "") == GOOD_CODE
    assert second.finish_reason == "code_complete"  # learnt: stopped at the answer


def test_a_first_reply_without_thinking_is_read_whole_then_streams_stop_early(
    server: LLMServer,
) -> None:
    chatter = GOOD_REPLY + " More words." * 50
    server.push(Reply(chatter), Reply(chatter))
    first, second = _asks(server.url, 2)
    assert (first.text, first.finish_reason) == (chatter, "stop")  # a </think> might follow
    assert second.finish_reason == "code_complete" and second.text.endswith(GOOD_CODE + "```")
    assert parse_reply(first.text, "") == parse_reply(second.text, "") == GOOD_CODE


def test_a_reply_cut_inside_the_thinking_its_template_opened_is_said_cut(
    server: LLMServer,
) -> None:
    # No tag at all: the sketch was taken, and the cut blamed on the sketch's code.
    server.push(Reply(THOUGHT, finish_reason="length"))
    reply = _proposal(server, thinks_first=True)
    assert reply.error.startswith(
        "the reply was cut at --max-tokens (finish_reason length) before any answer after"
        " its thinking"
    )


def test_a_first_reply_cut_before_any_tag_teaches_nothing(server: LLMServer) -> None:
    server.push(Reply(THOUGHT, finish_reason="length"), Reply(f"{THOUGHT}</think>\n{GOOD_REPLY}"))
    first, second = _asks(server.url, 2)
    assert first.text == THOUGHT and first.finish_reason == "length"
    assert parse_reply(second.text, "") == GOOD_CODE


def test_the_parse_takes_no_code_from_the_thinking() -> None:
    fence = f"```python\n{SKETCH}```"
    assert parse_reply(f"{THOUGHT}</think>\n{GOOD_REPLY}", "") == GOOD_CODE
    cut = parse_reply(f"<think>\n{fence}\nand then", "")
    assert cut == ParseFailure("the reply ends inside its <think> block: no answer after it")
    only = parse_reply(f"<think>{fence}</think>\n", "")
    assert only == ParseFailure("the reply is all thinking: nothing after its </think>")
    assert parse_reply(GOOD_REPLY, "") == GOOD_CODE  # no thinking: as before


def test_thinking_cut_at_max_tokens_is_said_not_blamed_on_code(
    server: LLMServer,
) -> None:
    text = f"<think>\n{THOUGHT}"
    server.push(Reply(text, finish_reason="length"))
    reply = _proposal(server)
    assert reply.error == (
        "the reply was cut at --max-tokens (finish_reason length) before any answer after"
        f" its thinking ({len(text.strip())} characters went to reasoning)"
    )


# --- reasoning fields ------------------------------------------------------------------------


def test_a_whole_completion_of_only_reasoning_says_it_was_cut(
    server: LLMServer,
) -> None:
    # A non-streamed reply whose content is null: it was "an unexpected content type",
    # retried as if the server were broken.
    message = {"role": "assistant", "content": None, "reasoning": "Hmm. " * 10}
    body = {"choices": [{"index": 0, "message": message, "finish_reason": "length"}]}
    server.push(_raw(json.dumps(body).encode(), "application/json"))
    reply = _proposal(server)
    assert reply.error == (
        "the reply was cut at --max-tokens (finish_reason length) before any content"
        " (50 characters went to reasoning)"
    )
    assert len(server.requests) == 1


def test_reasoning_sent_under_both_names_is_counted_once(server: LLMServer) -> None:
    both = _event({"reasoning_content": "abcd", "reasoning": "abcd"})
    end = _event({"content": GOOD_REPLY}, "stop") + b"data: [DONE]\n\n"
    server.push(_raw(both + end))
    (c,) = _asks(server.url)
    assert c.reasoning_chars == 4 and GOOD_CODE in c.text


def test_a_first_reply_that_closes_a_block_it_never_opened_is_not_believed_for_the_run(
    server: LLMServer,
) -> None:
    # A first reply that starts with </think> showed a template that opens a block; every
    # later reply without tags was then read as all thinking, and gave no code at all. A
    # reply that ends of itself without any tag shows otherwise: it is read as it is.
    other = GOOD_REPLY.replace("sigmoid", "tanh")
    server.push(Reply(f"</think>\n\n{GOOD_REPLY}"), Reply(other), Reply(other))

    async def main() -> tuple[list[Completion], list[bool | None]]:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = LLMClient(http, LLMConfig(server.url, "test-model"), sleep=Sleeps())
            replies, known = [], []
            for _ in range(3):
                replies.append(await client.complete(MESSAGES))
                known.append(client.thinks_first)
            return replies, known

    (first, second, third), known = run(main())
    assert parse_reply(first.text, "") == GOOD_CODE and known[0] is True
    assert (second.text, second.finish_reason) == (other, "stop")  # read whole, as it is
    assert parse_reply(second.text, "") == GOOD_CODE.replace("sigmoid", "tanh")
    assert known[1:] == [None, False]  # the next reply, read whole, told again
    assert parse_reply(third.text, "") == GOOD_CODE.replace("sigmoid", "tanh")


# --- line ends, redirects, proxies -----------------------------------------------------------


def test_lines_ended_by_a_lone_cr_are_read(server: LLMServer) -> None:
    # The SSE spec allows CR, LF and CRLF; CR alone read as one long line of invalid JSON.
    body = _event({"content": GOOD_REPLY}, end="\r") + _event({}, "stop", "\r")
    server.push(_raw(body + b"data: [DONE]\r\r"))
    (c,) = _asks(server.url, stop_at_code_end=False)
    assert (c.text, c.finish_reason, c.attempts) == (GOOD_REPLY, "stop", 1)


def test_a_redirect_to_another_host_warns_about_the_key(server: LLMServer) -> None:
    server.push(Redirect("https://other.invalid/v1/chat/completions"))
    with pytest.raises(LLMError) as info:
        _asks(server.url)
    assert "set --llm-url to https://other.invalid/v1 if you trust that host" in str(info.value)


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_a_redirect_to_another_port_sends_the_other_server_nothing(code: int) -> None:
    # The key goes to the configured URL only: neither the chat request nor the start-up
    # checks (GET /models, GET /props) follow a redirect to another server.
    key = "sk-redirected-0123456789abcdef"
    with LLMServer() as other:
        target = other.url + "/chat/completions"
        gets = {"/v1/models": Redirect(other.url + "/models", code),
                "/props": Redirect(other.url.removesuffix("/v1") + "/props", code)}  # fmt: skip
        with LLMServer(lambda body: Redirect(target, code), gets=gets) as server:
            config = LLMConfig(server.url, "test-model", api_key=key, retries=2)

            async def main() -> tuple[str, tuple[int, str] | None]:
                async with llm.http_client() as http:
                    with pytest.raises(LLMError) as info:
                        await llm.server_model(http, config)
                    n_ctx = await llm.context_length(http, config)
                    with pytest.raises(LLMError) as sent:
                        await LLMClient(http, config, sleep=Sleeps()).complete(MESSAGES)
                    return f"{info.value}\n{sent.value}", n_ctx

            said, n_ctx = run(main())
        assert other.requests == [] and n_ctx is None
        assert len(server.requests) == 4  # one each: no retry of a redirect either
    models = other.url + "/models"
    assert f"GET {server.url}/models usefully: {code} redirect to {models}, not followed" in said
    assert f"{code} redirect to {target}, not followed" in said and key not in said


@pytest.mark.parametrize(
    "location",
    [
        "http://[::1",
        "http://{key}:port/v1/chat/completions",
        "http://xn--a.com/v1",  # parsed, but its IDNA host does not decode
        "http://xn--ls8h.la/",
    ],
)
def test_a_redirect_to_a_location_that_is_no_url_fails_at_once(location: str) -> None:
    # httpx cannot join such a Location with the URL asked: the chat request blamed
    # --llm-url ("invalid URL"), and the start-up check said the server could not be reached;
    # a host that does not decode raised idna's error out of both, as a traceback.
    key = "sk-malformed-0123456789abcdef"
    location = location.format(key=key)
    gets = {"/v1/models": Redirect(location), "/props": Redirect(location)}
    with LLMServer(lambda body: Redirect(location, 302), gets=gets) as server:
        config = LLMConfig(server.url, "test-model", api_key=key, retries=2)

        async def main() -> tuple[str, str]:
            async with llm.http_client() as http:
                with pytest.raises(LLMError) as checked:
                    await llm.server_model(http, config)
                with pytest.raises(LLMError) as sent:
                    await LLMClient(http, config, sleep=Sleeps()).complete(MESSAGES)
                return str(checked.value), str(sent.value)

        checked, sent = run(main())
        assert len(server.requests) == 2  # one each: neither is retried
    shown = location.replace(key, "***")
    assert f"307 redirect to '{shown}', which is not a URL: not followed" in checked
    assert "did not answer" in checked and "cannot reach" not in checked
    assert sent.startswith(f"LLM server {server.url}: 302 redirect to '{shown}', which is not")
    assert "invalid URL" not in sent and key not in checked + sent


def test_proxy_variables_never_capture_a_loopback_server(
    server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a remote API in the ensemble, minact reads the proxy variables; requests to a
    # local server (and the key) went to the proxy too.
    with LLMServer() as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/v1"))

        async def main(url: str) -> None:
            async with llm.http_client(use_proxy_env=True) as http:
                config = LLMConfig(url, "test-model", api_key="sk-local-0123456789", retries=0)
                await LLMClient(http, config, sleep=Sleeps()).complete(MESSAGES)

        run(main(server.url))
        assert [r.path for r in server.requests] == ["/v1/chat/completions"]
        assert proxy.requests == []
        with pytest.raises(LLMError):  # the proxy answers 404 to what it is asked to pass on
            run(main("http://llm.invalid/v1"))
        assert [r.path for r in proxy.requests] == ["http://llm.invalid/v1/chat/completions"]
