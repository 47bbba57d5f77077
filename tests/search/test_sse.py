"""Tests for minact.search.sse on literal byte streams: what real servers send, cut anywhere."""

from __future__ import annotations

import json

import pytest

from minact.search.sse import EventReader, Failure, Reply, Stream


def _read(chunks: list[bytes], cap: int = 1000, stop_at_code: bool = False) -> Reply | Failure:
    """Returns the outcome of a stream delivered in `chunks`, read as llm.py reads it."""
    reader = EventReader()
    stream = Stream(cap, stop_at_code)
    for chunk in chunks:
        for data in reader.feed(chunk):
            if (outcome := stream.take(data)) is not None:
                return outcome
    for data in reader.close():
        if (outcome := stream.take(data)) is not None:
            return outcome
    return stream.end()


def _reply(outcome: Reply | Failure) -> tuple[str, str, tuple[int, int] | None]:
    assert isinstance(outcome, Reply), outcome
    return outcome.text, outcome.finish_reason, outcome.usage


# vLLM-style: a role chunk, content, a finish chunk, a usage chunk with `choices: []`, [DONE].
VLLM = (
    b'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}]}\n\n'
    b'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}\n\n'
    b'data: {"choices": [{"index": 0, "delta": {"content": "lo \\u00e9"}}], "usage": null}\n\n'
    b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
    b'data: {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}\n\n'
    b"data: [DONE]\n\n"
)


def test_a_whole_stream_in_one_chunk() -> None:
    assert _reply(_read([VLLM])) == ("Hello é", "stop", (12, 3))


@pytest.mark.parametrize("end", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_ends_give_the_same_reply(end: bytes) -> None:
    assert _reply(_read([VLLM.replace(b"\n", end)])) == ("Hello é", "stop", (12, 3))


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_chunks_cut_mid_line_mid_crlf_and_mid_character(size: int) -> None:
    for stream in (VLLM, VLLM.replace(b"\n", b"\r\n"), VLLM.replace(b"\n", b"\r")):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert _reply(_read(chunks)) == ("Hello é", "stop", (12, 3))


def test_comments_pings_and_other_fields_are_ignored() -> None:
    stream = (
        b": ping - 2025-01-01 00:00:00.000000\r\n\r\n"
        b"event: message\nid: 1\nretry: 1000\n"
        b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
        b":\n"
        b": keep-alive\n\n"
        b'data: {"choices": [{"delta": {"content": "b"}, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    assert _reply(_read([stream])) == ("ab", "length", None)


def test_an_event_spread_over_several_data_lines() -> None:
    stream = (
        b'data: {"choices": [\n'
        b'data:   {"delta": {"content": "x"},\n'
        b'data:    "finish_reason": "stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    assert _reply(_read([stream])) == ("x", "stop", None)


@pytest.mark.parametrize(
    "usage_chunk",
    [
        b'{"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}',
        b'{"choices": null, "usage": {"prompt_tokens": 5, "completion_tokens": 2}}',
        b'{"usage": {"prompt_tokens": 5, "completion_tokens": 2}}',
    ],
    ids=["empty-list", "null", "missing"],
)
def test_the_usage_chunk_with_empty_null_or_missing_choices(usage_chunk: bytes) -> None:
    stream = (
        b'data: {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]}\n\n'
        b"data: " + usage_chunk + b"\n\ndata: [DONE]\n\n"
    )
    assert _reply(_read([stream])) == ("hi", "stop", (5, 2))


@pytest.mark.parametrize(
    "counts",
    [
        b'"5", "completion_tokens": true',
        b'-2000, "completion_tokens": 3',
        b"1" + b"0" * 400 + b', "completion_tokens": 3',
    ],
    ids=["not-integers", "negative", "400-digits"],
)
def test_usage_with_counts_that_are_not_token_counts_is_ignored(counts: bytes) -> None:
    stream = (
        b'data: {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": ' + counts + b"}}\n\n"
        b"data: [DONE]\n\n"
    )
    assert _reply(_read([stream])) == ("hi", "stop", None)


def test_an_error_event_fails_the_attempt_with_its_message() -> None:
    stream = (
        b'data: {"choices": [{"delta": {"content": "Let me"}}]}\n\n'
        b'data: {"error": {"message": "model crashed", "type": "server_error", "code": 500}}\n\n'
    )
    outcome = _read([stream])
    assert isinstance(outcome, Failure) and outcome.retryable
    assert outcome.reason == "error event in the stream: model crashed (code 500)"


def test_done_without_a_finish_reason_is_truncated_and_usable_only_with_code() -> None:
    code = "```python\ndef activation(x):\n    return x\n```"
    content = code.replace("\n", "\\n").encode()
    with_code = (
        b'data: {"choices": [{"delta": {"content": "' + content + b'"}}]}\n\ndata: [DONE]\n\n'
    )
    assert _reply(_read([with_code])) == (code, "truncated", None)
    without = b'data: {"choices": [{"delta": {"content": "I think"}}]}\n\ndata: [DONE]\n\n'
    outcome = _read([without])
    assert isinstance(outcome, Failure) and "stream cut" in outcome.reason


def test_no_events_at_all_hints_at_a_prompt_too_long() -> None:
    outcome = _read([b""])
    assert isinstance(outcome, Failure) and "prompt too long?" in outcome.reason


def test_invalid_json_events_are_skipped_but_only_invalid_ones_fail() -> None:
    stream = (
        b"data: {nope\n\n"
        b'data: {"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]}\n\n'
    )
    assert _reply(_read([stream])) == ("ok", "stop", None)
    outcome = _read([b"data: {nope\n\ndata: [1, 2]\n\ndata: [DONE]\n\n"])
    assert isinstance(outcome, Failure) and outcome.reason == "invalid JSON in stream: '{nope'"


def test_the_last_event_without_its_blank_line_still_counts() -> None:
    stream = b'data: {"choices": [{"delta": {"content": "end"}, "finish_reason": "stop"}]}'
    assert _reply(_read([stream])) == ("end", "stop", None)


def test_reading_stops_once_the_code_block_is_complete() -> None:
    parts = ["Here:\\n```python\\ndef activation(x):\\n", "    return x\\n``", "`\\nand more"]
    stream = b"".join(
        b'data: {"choices": [{"delta": {"content": "' + p.encode() + b'"}}]}\n\n' for p in parts
    )
    text, finish, _ = _reply(_read([stream], stop_at_code=True))
    assert finish == "code_complete"
    assert text == "Here:\n```python\ndef activation(x):\n    return x\n```"


def test_the_cap_cuts_a_long_reply() -> None:
    chunk = b'data: {"choices": [{"delta": {"content": "abcdefghij"}}]}\n\n'
    assert _reply(_read([chunk * 5], cap=25)) == ("abcdefghijabcdefghijabcde", "cap", None)


def test_json_that_is_no_object_is_said_so_not_called_invalid() -> None:
    outcome = _read([b"data: [1, 2]\n\ndata: {nope\n\ndata: [DONE]\n\n"])
    assert (
        isinstance(outcome, Failure)
        and outcome.reason == "JSON list, no object, in stream: '[1, 2]'"
    )


@pytest.mark.parametrize(
    ("chunk", "said"),
    [
        ('[{"delta": {"content": 5}}]', "`delta.content` is int 5, not a str"),
        ('[{"delta": {"content": {"a": 1}}}]', "`delta.content` is dict, not a str"),
        ('[{"delta": "hi", "finish_reason": "stop"}]', "`delta` is str 'hi', not a dict"),
        ('"abc"', "`choices` is str 'abc', not a list"),
        ('{"0": {"delta": {"content": "x"}}}', "`choices` is dict, not a list"),
    ],
)  # fmt: skip
def test_chunks_whose_text_is_of_no_text_type_fail_saying_what_came(
    chunk: bytes, said: str
) -> None:
    # Taken for an empty reply, such a stream was answered with a follow-up asking the model
    # for code, though the server sends every reply so; no retry can mend it either.
    outcome = _read([f'data: {{"choices": {chunk}}}\n\ndata: [DONE]\n\n'.encode()])
    assert outcome == Failure(f"no text in the stream's chunks: {said}", retryable=False)


def test_content_as_a_list_of_parts_gives_the_text_of_its_text_parts() -> None:
    # Mistral's API streams `content` as parts; a thinking part is no text of the reply.
    parts = [
        {"type": "thinking", "thinking": "hm"},
        {"type": "text", "text": "Hel"},
        {"type": "text", "text": "lo"},
    ]
    chunk = {"choices": [{"delta": {"content": parts}, "finish_reason": "stop"}]}
    assert _reply(_read([f"data: {json.dumps(chunk)}\n\n".encode()])) == ("Hello", "stop", None)


def test_a_null_content_or_delta_is_no_fault() -> None:
    stream = (
        b'data: {"choices": [{"delta": {"role": "assistant", "content": null}}]}\n\n'
        b'data: {"choices": [{"delta": null}]}\n\n'
        b'data: {"choices": null, "usage": null}\n\n'
        b'data: {"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]}\n\n'
    )
    assert _reply(_read([stream])) == ("ok", "stop", None)


def test_a_non_streamed_reply_with_content_parts_gives_their_text() -> None:
    # As in a stream: the reply was refused as "a completion whose content is no text".
    parts = [
        {"type": "text", "text": "Hel"},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "lo"},
    ]
    body = {"choices": [{"message": {"content": parts}, "finish_reason": "stop"}]}
    outcome = Stream(1000, False).plain(json.dumps(body).encode(), "application/json")
    assert _reply(outcome) == ("Hello", "stop", None)


def test_a_stream_of_usage_chunks_alone_says_that_no_chunk_had_a_choice() -> None:
    usage = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}}\n\n'
    outcome = _read([usage + b"data: [DONE]\n\n"])
    assert outcome == Failure("stream cut before the reply finished: no chunk had a choice")
    # A choice of the role alone, then [DONE] (llama-cpp-python's interrupt), is a cut.
    role = b'data: {"choices": [{"delta": {"role": "assistant"}}]}\n\n'
    assert _read([role + usage + b"data: [DONE]\n\n"]) == Failure(
        "stream cut before the reply finished"
    )
