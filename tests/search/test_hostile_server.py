"""minact.search.llm against servers that misbehave: drips, endless bodies, quotes, hangs,
escape sequences, echoed keys and malformed streams, all over real HTTP on 127.0.0.1."""

from __future__ import annotations

import importlib
import json
import random
import re
import sys
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minact.candidate import Hash
from minact.errors import LLMError
from minact.lab.task import Lab
from minact.outcome import Counters
from minact.score import Score, TaskScore
from minact.search import llm, proposers, reply, sse
from minact.search import server as checks
from minact.search.conversation import Conversation
from minact.search.llm import Completion, LLMClient, LLMConfig, Message
from minact.search.novelty import Known, Verdict, feedback
from minact.search.population import Member
from minact.search.prompt import build_messages
from minact.search.proposers import LLMProposer, ProposalRequest
from minact.search.reply import ParseFailure, parse_reply
from minact.untrusted import clip, printable, scrub
from tests.fakes import Sleeps, run
from tests.llm_server import (
    GOOD_CODE,
    GOOD_REPLY,
    MODELS,
    Drip,
    EmptyBody,
    Endless,
    ErrorEvent,
    Hang,
    LLMServer,
    PlainJson,
    Raw,
    Redirect,
    Reply,
    Status,
)

KEY = "sk-test-s3cret-key-0123456789abcdef"
MESSAGES: list[Message] = [{"role": "user", "content": "Write one."}]


PARENT = "def activation(x):\n    y = F.gelu(x)\n    return y + 0.1 * torch.sin(x)"


def _member(source: str = PARENT, fitness: float = -0.2, name: str = "p") -> Member:
    tasks = {"sine": TaskScore(1.0, 0.1, 0.0, -0.4), "product": TaskScore(2.0, 0.2, 0.0, 0.0)}
    score = Score(name, Hash(name * 8), source, "ok", "", Hash(name * 9), fitness, 0.01, 1.5, tasks)
    return Member(score, 0, 0, "llm")


async def _ask(
    url: str, messages: list[Message] = MESSAGES, sleep: Sleeps | None = None, **overrides: Any
) -> Completion:
    config = LLMConfig(url=url, model="test-model", **overrides)
    async with httpx.AsyncClient(trust_env=False) as http:
        # As after a first reply that opened no thinking block: a fresh client reads its
        # first replies whole (test_hostile_models), and these test the early stop.
        client = LLMClient(
            http, config, sleep=sleep or Sleeps(), rng=random.Random(0), thinks_first=False
        )
        return await client.complete(messages)


def ask(server: LLMServer, messages: list[Message] = MESSAGES, **overrides: Any) -> Completion:
    return run(_ask(server.url, messages, **overrides))


def refused(server: LLMServer, **overrides: Any) -> str:
    """Returns the message of the LLMError that one request ends in."""
    with pytest.raises(LLMError) as info:
        ask(server, **overrides)
    return str(info.value)


def _head(ctype: str = "text/event-stream", *extra: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {ctype}", *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _event(obj: Any, name: str | None = None) -> bytes:
    field = f"event: {name}\n" if name else ""
    return f"{field}data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _check(url: str, model: str = "", key: str | None = None, **limits: Any) -> Any:
    async def main() -> str:
        async with llm.http_client() as http:
            return await llm.server_model(http, LLMConfig(url, model, api_key=key), **limits)

    return run(main())


def _check_fails(url: str, model: str = "", key: str | None = None, **limits: Any) -> str:
    with pytest.raises(LLMError) as info:
        _check(url, model, key, **limits)
    return str(info.value)


def _context(url: str, **limits: Any) -> tuple[int, str] | None:
    async def main() -> tuple[int, str] | None:
        async with llm.http_client() as http:
            return await llm.context_length(http, LLMConfig(url, "m"), **limits)

    return run(main())


# --- 1. the start-up checks: an overall deadline and a cap on the bytes read ----------------


@pytest.mark.parametrize("model", ["", "test-model"])
def test_a_models_route_that_drips_ends_the_check_at_its_deadline(model: str) -> None:
    # 2 s, not a fraction: some of the drip must arrive before the deadline, even when a
    # loaded machine is slow to run the server's thread.
    with LLMServer(gets={"/v1/models": Drip(every=0.1)}) as server:
        message = _check_fails(server.url, model, seconds=2.0)
    assert f"GET {server.url}/models" in message
    assert "no whole answer within 2 s" in message and "bytes of the body arrived" in message


def test_a_models_route_that_never_answers_ends_the_check_at_its_deadline() -> None:
    with LLMServer(gets={"/v1/models": Hang(30)}) as server:
        message = _check_fails(server.url, seconds=0.5)
    assert "no whole answer within 0.5 s (nothing arrived)" in message


def test_an_endless_models_body_is_cut_at_the_cap() -> None:
    # No model is named: the list is what names one, and none can be had.
    with LLMServer(gets={"/v1/models": Endless()}) as server:
        message = _check_fails(server.url)  # the default cap, CHECK_BYTES
    assert f"did not answer GET {server.url}/models usefully" in message
    assert f"its answer is longer than {checks.CHECK_BYTES} bytes" in message


GZIP_GARBAGE = _head("application/json", "Content-Encoding: gzip") + b"not gzip at all"


@pytest.mark.parametrize(
    ("gets", "models", "why"),
    [
        ({"/v1/models": Endless()}, {}, f"its answer is longer than {checks.CHECK_BYTES} bytes"),
        ({"/v1/models": Raw(GZIP_GARBAGE)}, {}, "its body does not decode"),
        ({}, {"data": 5}, "it holds no list of models"),
    ],
)
def test_a_named_model_is_used_unchecked_where_the_list_is_unusable(
    gets: dict[str, Any], models: dict[str, Any], why: str
) -> None:
    # The run ended, though the model was named and the list only checks it: a hosted
    # API that lists thousands of models could not be used at all.
    with LLMServer(models=models or MODELS, gets=gets) as server:
        config = LLMConfig(server.url, "test-model")

        async def main() -> tuple[str, list[str], tuple[int, str] | None]:
            answers: llm.Answers = {}
            unknown: list[str] = []
            async with llm.http_client() as http:
                model = await llm.server_model(http, config, answers=answers, unknown=unknown)
                return model, unknown, await llm.context_length(http, config, answers=answers)

        model, unknown, n_ctx = run(main())
        asked = [r for r in server.requests if r.path == "/v1/models"]
    assert (model, n_ctx, len(asked)) == ("test-model", None, 1)  # the list is not asked again
    (said,) = unknown
    assert said.startswith(f"GET {server.url}/models gave no usable list of models ({why}")
    assert said.endswith("whether the server serves test-model, and the context length its"
                         " list may give, are unknown")  # fmt: skip


@pytest.mark.parametrize("extra", [0, 1])
def test_the_cap_admits_exactly_its_bytes(extra: int) -> None:
    cap = 1000
    body = json.dumps({"data": [{"id": "padded"}]}).encode()
    body += b" " * (cap - len(body) + extra)
    raw = _head("application/json", f"Content-Length: {len(body)}") + body
    with LLMServer(gets={"/v1/models": Raw(raw)}) as server:
        if extra:
            assert f"longer than {cap} bytes" in _check_fails(server.url, cap=cap)
        else:
            assert _check(server.url, cap=cap) == "padded"


def test_the_context_probe_treats_drips_and_endless_bodies_as_silence() -> None:
    gets = {"/props": Drip(every=0.1), "/v1/models": Endless()}
    with LLMServer(gets=gets) as server:
        assert _context(server.url, seconds=0.5, cap=100_000) is None


def test_the_context_probe_goes_on_to_models_after_a_dripping_props() -> None:
    models = {"data": [{"id": "m", "max_model_len": 4096}]}
    with LLMServer(models=models, gets={"/props": Drip(every=0.1)}) as server:
        assert _context(server.url, seconds=0.5) == (4096, "GET /v1/models")


def test_a_props_route_that_hangs_costs_the_probe_its_few_seconds_not_llm_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # --llm-timeout gives a busy server's GET /models up to 60 s; GET /props (optional: a
    # context length) was given as long, so a server that hangs there (a proxy) held the
    # start a minute. Here its answer comes after 3 s, past the probe's bound (made 0.5 s):
    # the probe goes on to the model list that the check of GET /models read.
    monkeypatch.setattr(checks, "CHECK_SECONDS", 0.5)
    late = Raw(_head("application/json") + b'{"n_ctx": 2048}', hang=3.0)
    models = {"data": [{"id": "m", "max_model_len": 4096}]}

    async def main() -> tuple[int, str] | None:
        config, answers = LLMConfig(url, "m", deadline=300.0), dict[str, tuple[int, bytes]]()
        async with llm.http_client() as http:
            await llm.server_model(http, config, answers=answers)
            return await llm.context_length(http, config, answers=answers)

    with LLMServer(models=models, gets={"/props": late}) as server:
        url = server.url
        assert run(main()) == (4096, "GET /v1/models")


# --- 2. a quote of the prompt's code does not end the stream --------------------------------

ANSWER = "def activation(x):\n    return x * torch.tanh(F.softplus(x))\n"


def _quote_then_answer(parent: str, quote: str | None = None) -> str:
    return (
        f"The parent is:\n\n```python\n{quote or parent}\n```\n\nI will gate it instead:\n\n"
        f"```python\n{ANSWER}```\n\nThis is Mish, which is smooth." + " More words." * 200
    )


def test_a_quote_of_the_parent_is_read_past_to_the_answer(server: LLMServer, tiny_lab: Lab) -> None:
    parent = _member()
    messages = build_messages(tiny_lab, parent, [], [], [])
    text = _quote_then_answer(parent.score.source)
    server.push(Reply(text, chunk_chars=9), PlainJson(text))
    streamed, whole = ask(server, messages), ask(server, messages)
    assert streamed.finish_reason == "code_complete"  # still stopped early, at the answer
    assert streamed.text.endswith(f"```python\n{ANSWER}```")
    assert whole.text == text
    expected = ANSWER
    assert parse_reply(streamed.text, parent.score.source) == expected
    assert parse_reply(whole.text, parent.score.source) == expected


def test_a_quote_that_differs_in_whitespace_is_still_a_quote(
    server: LLMServer, tiny_lab: Lab
) -> None:
    parent = _member()
    messages = build_messages(tiny_lab, parent, [_member(GOOD_CODE, -0.5, "t")], [], [])
    respaced = "\n\n".join("  " + line.replace(" ", "  ") for line in GOOD_CODE.splitlines())
    server.push(Reply(_quote_then_answer(parent.score.source, respaced), chunk_chars=5))
    streamed = ask(server, messages)
    assert parse_reply(streamed.text, parent.score.source) == ANSWER


def test_an_answer_first_still_stops_at_once(server: LLMServer, tiny_lab: Lab) -> None:
    parent = _member()
    messages = build_messages(tiny_lab, parent, [], [], [])
    server.push(Reply(f"```python\n{ANSWER}```\nthen chatter" + " words" * 2000, chunk_chars=9))
    c = ask(server, messages)
    assert (c.finish_reason, c.text) == ("code_complete", f"```python\n{ANSWER}```")


def test_shown_code_is_read_from_fences_at_line_starts_only() -> None:
    messages = [
        {"role": "system", "content": "Reply with ONE ```python block holding it."},
        {"role": "user", "content": f"Parent:\n```python\n{GOOD_CODE}```\n"},
    ]
    assert sse.shown_code(messages) == {"".join(GOOD_CODE.split())}


# --- 3. --llm-timeout covers the whole request, retries and waits included ------------------


def test_a_hang_uses_the_deadline_once_not_once_per_retry(server: LLMServer) -> None:
    server.push(*[Hang(30)] * 5)
    message = refused(server, read_timeout=30, deadline=1.0, retries=4)
    assert len(server.requests) == 1  # not 5 attempts of 1 s each
    assert "failed 1 attempt," in message and "no complete reply within the 1 s deadline" in message
    assert "covers the whole request, retries and waits included" in message


def test_no_retry_starts_when_the_wait_leaves_too_little(server: LLMServer) -> None:
    server.push(Status(429, {"error": {"message": "slow down"}}, {"Retry-After": "25"}))
    sleeps = Sleeps()
    with pytest.raises(LLMError, match="too little of the 30 s request deadline") as info:
        run(_ask(server.url, sleep=sleeps, deadline=30.0))
    assert sleeps.delays == [] and len(server.requests) == 1
    assert "429 Too Many Requests: slow down" in str(info.value)


def test_retries_within_the_deadline_still_happen(server: LLMServer) -> None:
    server.push(Status(503), Hang(30))
    # 1 s, not a fraction: the last reply must not stall that long on a loaded machine.
    c = ask(server, read_timeout=1.0, deadline=20.0)
    assert c.attempts == 3 and c.retry_reasons[1] == "read timeout: no data for 1 s"


# --- 4. the code-block scan is linear, and the cap ends the stream --------------------------


def _take_all(stream: sse.Stream, pieces: list[str]) -> sse.Reply | sse.Failure | None:
    for piece in pieces:
        if (outcome := stream.take(json.dumps(_delta({"content": piece})))) is not None:
            return outcome
    return None


@pytest.mark.parametrize("piece", ["`", "```\n", "``", "a`"])
def test_many_backtick_chunks_are_scanned_once_and_capped(piece: str) -> None:
    stream = sse.Stream(cap=40_000, stop_at_code=True)
    outcome = _take_all(stream, [piece] * 50_000)
    assert isinstance(outcome, sse.Reply) and outcome.finish_reason == "cap"
    assert outcome.text == (piece * 50_000)[:40_000]
    assert stream.scanned <= stream.length + 2 * len(stream.parts)  # each character ~once


def test_a_long_block_in_small_chunks_is_found_once_it_closes() -> None:
    text = "Here:\n```python\ndef activation(x):\n" + "    x = x + 1\n" * 3000 + "    return x\n```"
    stream = sse.Stream(cap=100_000, stop_at_code=True)
    outcome = _take_all(stream, [text[i : i + 3] for i in range(0, len(text), 3)] + ["more"])
    assert isinstance(outcome, sse.Reply) and outcome.finish_reason == "code_complete"
    assert outcome.text == text and stream.scanned < 100


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=60), max_size=12),
    st.sampled_from(
        [
            f"```python\n{GOOD_CODE}```\ntail",
            f"say ```` then ```py\n{GOOD_CODE}``` and ```\nx\n```",
            f"```\nnot it\n```\n```Python \r\n{GOOD_CODE}```",
            f"```text\n{GOOD_CODE}```\n```python\n{GOOD_CODE}",
            f"quote:\n```python\n{ANSWER}```\nanswer:\n```python\n{GOOD_CODE}```",
        ]
    ),
)
def test_where_the_stream_stops_does_not_depend_on_chunking(cuts: list[int], text: str) -> None:
    shown = frozenset({"".join(ANSWER.split())})
    whole = sse.Stream(cap=10_000, stop_at_code=True, shown=shown)
    expected = _take_all(whole, [text])
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    split = sse.Stream(cap=10_000, stop_at_code=True, shown=shown)
    outcome = _take_all(split, [p for p in pieces if p])
    assert (outcome.text if outcome else None) == (expected.text if expected else None)


def test_a_stream_of_backticks_over_http_ends_at_the_cap(server: LLMServer) -> None:
    server.push(Reply("`" * 30_000, chunk_chars=1, finish_reason=None))
    c = ask(server, max_reply_chars=20_000)
    assert (c.finish_reason, c.text) == ("cap", "`" * 20_000)
    # parse_reply searches a run of backticks once, not once per backtick (quadratic).
    assert isinstance(parse_reply(c.text, GOOD_CODE), ParseFailure)


def _consumed(pattern: str) -> str:
    """Returns the literal characters a regular expression consumes, in order, those in
    lookarounds left out (what its matching may back-track over)."""
    parser: Any = importlib.import_module(
        "re._parser" if sys.version_info >= (3, 11) else "sre_parse"
    )
    out: list[str] = []

    def walk(items: Any) -> None:
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name in ("SUBPATTERN", "MAX_REPEAT", "MIN_REPEAT"):
                walk(arg[-1])
            elif name == "BRANCH":
                for branch in arg[1]:
                    walk(branch)
            else:  # ASSERT, ASSERT_NOT, IN, ANY, AT: no literal text consumed
                out.append("\0")

    walk(parser.parse(pattern))
    return "".join(out)


def test_a_cut_reply_s_code_block_is_told_by_looking_ahead_for_the_activation() -> None:
    # Were `def activation` consumed, a body of many of them with no closing fence would be
    # read to its end again from each (quadratic: 11 s for a reply at the cap). Looked for
    # ahead, it is found once; the body is then read to its first fence once.
    assert "def activation" not in _consumed(sse._CODE_BLOCK.pattern)
    assert "def activation" in _consumed("x(?:(?!```).)*?def activation")  # the helper sees it
    text = "```python\n" + "def activation" * 200
    assert sse._CODE_BLOCK.search(text) is None
    assert sse._CODE_BLOCK.search(text + "```") is not None


def test_a_fence_s_blanks_and_language_are_read_whole_once() -> None:
    # The rest of the opening line shares their characters: were they given back when the
    # line fails (one that never ends), every split of it would be tried: quadratic, 40 s
    # for ``` and a reply's 100,000 letters. Nothing after them can take back a character.
    assert re.match(reply._INFO + "[ a-z]", "```  py") is None
    assert re.match(reply._INFO + " ", "```  ") is None
    assert re.match(reply._INFO + "[ a-z]", "```  py ") is not None
    text = "``` py3 extra\ncode\n```\n```\nmore\n```\n```" + "a" * 1000
    assert reply._FENCE.findall(text) == [("py3", "code\n"), ("", "more\n")]


def test_an_open_block_keeps_its_piece_whole_until_it_closes() -> None:
    # Each fence of one long piece copied the rest of the piece (quadratic in it; a piece
    # may be a whole event of 465 kB): the block keeps the piece, and is cut once it closes.
    stream = sse.Stream(cap=100_000, stop_at_code=True)
    piece = "```\n" * 999 + "tail"
    assert stream.take(json.dumps(_delta({"content": piece}))) is None
    assert stream._block == [piece]  # not a copy of its end from the last fence
    answer = "```python\ndef activation(x):\n    return x\n```"
    outcome = stream.take(json.dumps(_delta({"content": answer[3:]})))
    assert isinstance(outcome, sse.Reply) and outcome.text == piece + answer[3:]


def test_loose_diff_blocks_read_a_bounded_number_of_lines() -> None:
    # Each SEARCH text that matches only loosely (its spaces differ) reads the whole child,
    # which one block may make tens of thousands of lines long: a thousand such blocks after
    # it took seconds. The lines all of them read are bounded.
    grow = "\n".join(["    y = x"] * 20_000)
    first = f"<<<<<<< SEARCH\n    return x\n=======\n{grow}\n    return x\n>>>>>>> REPLACE\n"
    loose = "<<<<<<< SEARCH\nreturn x  \n=======\nreturn x\n>>>>>>> REPLACE\n"
    parent = "def activation(x):\n    return x\n"
    out = parse_reply(first + loose * 40, parent)
    assert isinstance(out, ParseFailure) and "too many blocks" in out.reason, out
    small = parse_reply(loose * 200, parent)  # an honest child is read as often as it takes
    assert isinstance(small, str) and small.strip() == parent.strip()


# --- 5. escape sequences from the server never reach a message ------------------------------

ANSI = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[32mrun finished OK\x1b[0m\nINFO: forged line\u202e"


def _no_controls(text: str) -> bool:
    return printable(text) == text


def test_an_error_body_with_escape_sequences_is_escaped(server: LLMServer) -> None:
    server.push(Status(500, ANSI), Status(400, {"error": {"message": ANSI}}))
    message = refused(server)
    assert _no_controls(message) and "\\x1b[2J" in message and "\\nINFO: forged" in message
    assert "\\u202e" in message


def test_an_error_event_and_a_finish_reason_with_escapes_are_escaped(server: LLMServer) -> None:
    server.push(ErrorEvent(error={"message": ANSI}))
    finish = _delta({"content": "hello"}, "stop\x1b[2J")
    server.push(Raw(_head() + _event(finish) + _event("[DONE]")))
    c = ask(server)
    assert _no_controls(c.retry_reasons[0]) and "\\x1b]0;pwned\\x07" in c.retry_reasons[0]
    assert c.finish_reason == "stop\\x1b[2J"


def test_a_model_id_with_control_characters_is_refused() -> None:
    models = {"data": [{"id": "m\x1b[2J\n" + "X" * 50}]}
    with LLMServer(models=models) as server:
        message = _check_fails(server.url)
        assert _no_controls(message) and "control characters" in message
        assert "m\\x1b[2J\\nXXX" in message
        elsewhere = _check_fails(server.url, "wanted")  # listed in the error, escaped
        assert _no_controls(elsewhere) and "it serves: m\\x1b[2J" in elsewhere


def test_a_plain_long_model_id_is_refused_and_a_normal_one_taken() -> None:
    with LLMServer(models={"data": [{"id": "m" * 600}]}) as server:
        assert "over 512 characters" in _check_fails(server.url)
    with LLMServer(models={"data": [{"id": "org/Model-7B:q4 (local)"}]}) as server:
        assert _check(server.url) == "org/Model-7B:q4 (local)"


def test_printable_escapes_controls_and_keeps_the_rest() -> None:
    assert printable("a\tb\r\n\x00\x7f\x85é🚀\u2028") == "a\\tb\\r\\n\\x00\\x7f\\x85é🚀\\u2028"


# --- 6. the API key is masked before a message is cut ---------------------------------------


def test_a_key_echoed_across_the_cut_does_not_leak(server: LLMServer) -> None:
    for pad in (270, 280, 290, 295):
        server.push(Status(500, {"error": {"message": "x" * pad + " key " + KEY + " rejected"}}))
    with pytest.raises(LLMError) as info:
        ask(server, api_key=KEY, retries=3)
    message = str(info.value)
    assert KEY[:8] not in message and "***" in message


def test_a_key_echoed_by_the_models_route_does_not_leak() -> None:
    echo = Status(401, {"error": {"message": "y" * 280 + " bad key " + KEY}})
    with LLMServer(gets={"/v1/models": echo}) as server:
        message = _check_fails(server.url, key=KEY)
    assert KEY[:8] not in message and "rejected the API key" in message


@settings(deadline=None)  # a loaded machine may take longer than 200 ms for one example
@given(st.integers(min_value=0, max_value=320), st.integers(min_value=20, max_value=310))
def test_clip_never_leaves_eight_characters_of_the_key(pad: int, limit: int) -> None:
    text = "z" * pad + KEY + " end"
    assert KEY[:8] not in clip(text, limit, KEY)
    assert scrub(KEY, text) == "z" * pad + "*** end"


# --- 7. failures say what arrived -----------------------------------------------------------


def test_lines_without_the_data_prefix_are_named(server: LLMServer) -> None:
    lines = b"".join(json.dumps(_delta({"content": "hi"})).encode() + b"\n\n" for _ in range(3))
    server.push(Raw(_head() + lines), Raw(_head() + lines))
    message = refused(server, retries=1)
    assert "no `data:` line in" in message and 'the first line: \'{"choices"' in message
    assert "prompt too long" not in message


def test_a_whole_completion_labelled_as_an_event_stream_is_accepted(server: LLMServer) -> None:
    body = {"choices": [{"message": {"role": "assistant", "content": GOOD_REPLY},
                         "finish_reason": "stop"}]}  # fmt: skip
    server.push(Raw(_head() + json.dumps(body).encode()))
    c = ask(server)
    assert (c.text, c.finish_reason, c.attempts) == (GOOD_REPLY, "stop", 1)


def test_a_silent_stream_times_out_without_the_prompt_hint(server: LLMServer) -> None:
    server.push(Raw(_head(), hang=30))
    c = ask(server, read_timeout=1.0)  # not a fraction: the retry's reply must beat it
    assert c.retry_reasons == (
        "read timeout: no data for 1 s, before any byte of the event stream",
    )


def test_only_pings_then_the_end_says_so(server: LLMServer) -> None:
    server.push(Raw(_head() + b": ping\n\n:\n\n"))
    c = ask(server)
    assert "only blank lines and comments (keep-alive pings) in 11 bytes" in c.retry_reasons[0]


def test_a_false_gzip_header_is_named(server: LLMServer) -> None:
    body = _event(_delta({"content": GOOD_REPLY}, "stop")) + _event("[DONE]")
    server.push(Raw(_head("text/event-stream", "Content-Encoding: gzip") + body))
    c = ask(server)
    assert "does not decode as its Content-Encoding header says" in c.retry_reasons[0]
    assert "prompt too long" not in c.retry_reasons[0]


def test_broken_chunked_encoding_is_named(server: LLMServer) -> None:
    head = _head("text/event-stream", "Transfer-Encoding: chunked")
    server.push(Raw(head + b"ZZZ\r\nabc\r\n"))
    c = ask(server)
    assert c.retry_reasons[0].startswith("connection error (RemoteProtocolError)")
    assert "prompt too long" not in c.retry_reasons[0]


def test_the_empty_stream_keeps_its_hint(server: LLMServer) -> None:
    server.push(EmptyBody())
    assert "(no events: prompt too long?)" in ask(server).retry_reasons[0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"message": "overloaded"}, "error event in the stream: overloaded"),
        ("model overloaded, try later", "error event in the stream: model overloaded, try later"),
        ({"error": {"message": "busy", "code": 503}}, "error event in the stream: busy (code 503)"),
    ],
)
def test_an_error_event_gives_the_servers_message(
    server: LLMServer, data: Any, expected: str
) -> None:
    server.push(Raw(_head() + _event(_delta({"content": "Let me"})) + _event(data, "error")))
    assert ask(server).retry_reasons == (expected,)


def test_a_data_line_that_is_not_json_is_quoted(server: LLMServer) -> None:
    server.push(Raw(_head() + _event("model overloaded, try later")))
    assert ask(server).retry_reasons == ("invalid JSON in stream: 'model overloaded, try later'",)


def test_a_cut_stream_with_events_says_so(server: LLMServer) -> None:
    server.push(Raw(_head() + _event(_delta({"content": "I think"}))))
    assert ask(server).retry_reasons == ("stream cut before the reply finished",)


# --- 8. a reply cut at --max-tokens, and a redirect to itself -------------------------------


def _proposal(url: str, tiny_lab: Lab) -> Any:
    async def main() -> Any:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = LLMClient(http, LLMConfig(url=url, model="test-model"), sleep=Sleeps())
            parent = _member()
            messages = build_messages(tiny_lab, parent, [], [], [])
            request = ProposalRequest(0, parent, None, messages, random.Random(0))
            return await LLMProposer(client).propose(request)

    return run(main())


def test_a_reply_that_went_all_to_reasoning_says_it_was_cut(
    server: LLMServer, tiny_lab: Lab
) -> None:
    thought = _delta({"reasoning_content": "Let me think. " * 20})
    server.push(Raw(_head() + _event(thought) + _event(_delta({}, "length")) + _event("[DONE]")))
    reply = _proposal(server.url, tiny_lab)
    assert reply.error == (
        "the reply was cut at --max-tokens (finish_reason length) before any content"
        " (280 characters went to reasoning)"
    )


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("I shall now think about activations at length and", "parse_failure", "no"),
        ("```python\ndef activation(x):\n    return x * torch.sigmoid(", "rejected", "syntax"),
    ],
)
def test_code_cut_at_max_tokens_is_judged_and_its_verdict_says_so(
    server: LLMServer, tiny_lab: Lab, text: str, kind: str, expected: str
) -> None:
    server.push(Reply(text, finish_reason="length"))
    reply = _proposal(server.url, tiny_lab)
    assert reply.error is None and reply.text == text and reply.note == "llm finish=length"
    parent = _member()
    request = ProposalRequest(0, parent, None, [], random.Random(0))
    talk = Conversation(0, request, allowance=3, known=0, seed=0)
    verdict = talk.verdict(reply.text, Known(), finish="length")
    assert isinstance(verdict, Verdict) and verdict.kind == kind
    assert expected in verdict.reason
    assert verdict.reason.endswith(
        "cut at --max-tokens, finish_reason length: write a shorter one)"
    )
    # The follow-up tells the model so.
    assert "write a shorter one" in feedback(verdict)


def test_a_whole_reply_with_finish_length_is_still_a_reply(
    server: LLMServer, tiny_lab: Lab
) -> None:
    server.push(Reply(GOOD_REPLY, finish_reason="length"))
    reply = _proposal(server.url, tiny_lab)
    assert reply.error is None and GOOD_CODE in reply.text


def test_a_redirect_to_the_same_url_gives_no_useless_advice(server: LLMServer) -> None:
    server.push(Redirect(server.url + "/chat/completions", code=302))
    message = refused(server)
    assert "302 redirect to" in message and "redirects to the URL asked" in message
    assert "set --llm-url" not in message


def test_a_redirect_to_a_login_page_is_not_an_llm_url(server: LLMServer) -> None:
    server.push(Redirect("https://sso.example/login?next=/v1", code=302))
    message = refused(server)
    assert "not an API endpoint" in message and "set --llm-url" not in message


def test_a_failed_call_counts_the_time_it_took(
    server: LLMServer, tiny_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its attempts and waits cost as much as a reply's (up to --llm-timeout): the run's LLM
    # seconds and each model's seconds count them, not 0.
    class Clock:
        now = 100.0

        def monotonic(self) -> float:
            self.now += 7.0
            return self.now

    server.push(*[Status(400)] * 2)
    monkeypatch.setattr(proposers, "time", Clock())
    reply = _proposal(server.url, tiny_lab)
    assert reply.error is not None and reply.latency == 7.0
    counters = Counters()
    counters.add_reply(reply)
    assert counters.llm_seconds == 7.0


@pytest.mark.parametrize(
    ("finish", "said"), [("tool_calls", "tool call"), ("content_filter", "content filter")]
)
def test_a_reply_without_text_says_why_from_its_finish_reason(
    server: LLMServer, tiny_lab: Lab, finish: str, said: str
) -> None:
    server.push(Reply("", finish_reason=finish))
    reply = _proposal(server.url, tiny_lab)
    assert reply.error is not None and said in reply.error and finish in reply.error
    assert reply.text == ""
