"""minact.search.llm against web pages and odd encodings where an API answer was due: a
proxy's HTML 502, a login page, a page labelled as an event stream, a byte order mark on
every line, a character split between chunks, a whole reply of 50 MB. Over real HTTP on
127.0.0.1; the pages' one-line descriptions (minact.search.webpage) are checked apart."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from minact.errors import ConfigError, LLMError
from minact.search import llm
from minact.search.llm import Completion, LLMClient, LLMConfig, Message
from minact.search.webpage import not_an_answer, summary
from tests.fakes import Sleeps, run
from tests.llm_server import GOOD_REPLY, LLMServer, Raw, Reply, Status

MESSAGES: list[Message] = [{"role": "user", "content": "Write one."}]
ANSWER = GOOD_REPLY[: GOOD_REPLY.rindex("```") + 3]  # a stream is read up to its code's end
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad"
    b" Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n"
)
LOGIN = (
    b"<!DOCTYPE html>\n<html><head><meta charset=utf-8><style>p { color: red }</style>"
    b"<script>var next = '<b>';</script></head>\n<body><h1>Sign in</h1><p>Use your"
    b" corporate&nbsp;account &amp; password.\x1b[2J</p>" + b"<div>more</div>" * 2000 + b"</body>"
)


def _ask(server: LLMServer, **overrides: object) -> Completion:
    async def main() -> Completion:
        config = LLMConfig(url=server.url, model="test-model", **overrides)  # type: ignore[arg-type]
        async with httpx.AsyncClient(trust_env=False) as http:
            client = LLMClient(
                http, config, sleep=Sleeps(), rng=random.Random(0), thinks_first=False
            )
            return await client.complete(MESSAGES)

    return run(main())


def _fails(server: LLMServer, **overrides: object) -> str:
    with pytest.raises(LLMError) as info:
        _ask(server, **{"retries": 0, **overrides})
    return str(info.value)


def _answer(status: str, ctype: str, body: bytes, *extra: str) -> Raw:
    typed = [f"Content-Type: {ctype}"] if ctype else []  # "": no Content-Type at all
    lines = [f"HTTP/1.1 {status}", *typed, *extra, "Connection: close"]
    return Raw(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def _events(text: str = GOOD_REPLY) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()


# --- pages in place of answers ----------------------------------------------------------------


def test_a_proxys_html_error_page_is_said_by_its_title(server: LLMServer) -> None:
    # The whole page was quoted (cut at 300 characters) into the error the user saw.
    server.push(_answer("502 Bad Gateway", "text/html", NGINX_502))
    message = _fails(server)
    assert message.endswith("last: 502 Bad Gateway: an HTML page titled '502 Bad Gateway'")
    assert "<" not in message and "\\r" not in message


def test_a_page_without_a_title_is_said_by_its_first_words(server: LLMServer) -> None:
    server.push(_answer("403 Forbidden", "text/html; charset=utf-8", LOGIN))
    message = _fails(server)
    assert message.endswith(
        "403 Forbidden: an HTML page: 'Sign in Use your corporate account & password.\\x1b[2J"
        " more more more more more more more more more m…' (check the API key)"
    )


def test_json_and_plain_text_error_bodies_are_quoted_as_before(server: LLMServer) -> None:
    server.push(Status(500, {"error": {"message": "CUDA out of memory", "code": 500}}))
    assert _fails(server).endswith("500 Internal Server Error: CUDA out of memory (code 500)")
    server.push(Status(503, "Model is loading\nplease wait"))
    assert _fails(server).endswith("503 Service Unavailable: Model is loading\\nplease wait")


HINT = "not an API answer (is --llm-url the API's base URL? It usually ends in /v1)"
SSO = LOGIN.replace(b"<head>", b"<head><title>SSO</title>")


@pytest.mark.parametrize(
    ("ctype", "body", "said"),
    [
        ("text/html", SSO, f"unexpected content type text/html: an HTML page titled 'SSO', {HINT}"),
        ("text/html; charset=utf-8", b"  Welcome\n to  the UI", "text/html; charset=utf-8: an"
         f" HTML page: 'Welcome to the UI', {HINT}"),
        ("application/json", NGINX_502, "application/json: an HTML page titled '502 Bad"
         f" Gateway', {HINT}"),
        ("text/plain", b"Ollama is running", f"text/plain: text: 'Ollama is running', {HINT}"),
        ("", b"OK\x1b[2J", f"(none): text: 'OK\\x1b[2J', {HINT}"),
    ],
)  # fmt: skip
def test_a_page_or_text_with_status_200_fails_at_once(ctype: str, body: bytes, said: str) -> None:
    # A web UI's or a portal's page (--llm-url without /v1) was retried with backoff until
    # the retries ran out, though every attempt got the same page.
    with LLMServer(lambda request: _answer("200 OK", ctype, body)) as server:
        message = _fails(server, retries=3)
        assert len(server.requests) == 1
    assert message.endswith(said) and "failed" not in message
    assert "<" not in message


def test_a_page_labelled_as_an_event_stream_is_said_to_be_one(server: LLMServer) -> None:
    server.push(_answer("200 OK", "text/event-stream", NGINX_502))
    message = _fails(server, retries=3)
    assert message.endswith(
        f"stream cut before the reply finished: an HTML page titled '502 Bad Gateway' in place"
        f" of events ({len(NGINX_502)} bytes; is --llm-url the API's base URL? It usually ends"
        " in /v1)"
    )
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b""),  # an answer that ended before its first byte
        ("application/json", b'{"choices": [{"index": 0, "mess'),  # cut short
        ("text/plain", b'\n {"choices": '),  # JSON, whatever the type says
        ("text/plain", b"data: {nope\n\n"),  # an event stream, mislabelled
    ],
)
def test_an_empty_or_cut_answer_with_status_200_is_retried(
    server: LLMServer, ctype: str, body: bytes
) -> None:
    server.push(_answer("200 OK", ctype, body), Reply())
    c = _ask(server)
    assert c.attempts == 2 and c.text == ANSWER
    assert "not an API answer" not in c.retry_reasons[0]


NO_COMPLETION = (
    "not a chat completion: '{}' (is --llm-url the API's base URL? It usually ends in /v1)"
)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"error": {"message": "model not loaded\\u001b[2J"}}',
         "error from the server: model not loaded\\x1b[2J"),
        (b'{"object": "error", "message": "bad request", "code": 400}',
         "error from the server: bad request"),
        (b'{"error": {"message": "no such model", "code": "404"}}',
         "error from the server: no such model (code 404)"),
        (b'{"object":"list","data":[]}', "the server answered a JSON object with no choices (its"
         " keys: object, data), " + NO_COMPLETION.format('{"object":"list","data":[]}')),
        (b"[]", "the server answered a JSON array, " + NO_COMPLETION.format("[]")),
        (b"null", "the server answered JSON null, " + NO_COMPLETION.format("null")),
        (b'{"choices": []}',
         "the server answered a completion without choices: '{\"choices\": []}'"),
        (b'{"choices": [{"message": {"content": [1]}}]}', "the server answered a completion"
         " whose message's content is no text: '{\"choices\": [{\"message\": {\"content\":"
         " [1]}}]}'"),
        (b'{"choices": [{"index": 0, "text": "hi"}]}', "the server answered a completion whose"
         " first choice has no message: '{\"choices\": [{\"index\": 0, \"text\": \"hi\"}]}'"),
    ],
)  # fmt: skip
def test_whole_json_that_is_no_completion_fails_at_once(body: bytes, said: str) -> None:
    # Each was retried with backoff as if transient ("unexpected content type
    # application/json"), though every attempt got the same answer.
    with LLMServer(lambda request: _answer("200 OK", "application/json", body)) as server:
        message = _fails(server, retries=3)
        assert len(server.requests) == 1
    assert message == f"LLM server {server.url}: {said}"


@pytest.mark.parametrize("code", ["503", "429", "500"])
def test_an_error_with_status_200_and_a_retryable_code_is_retried(
    server: LLMServer, code: str
) -> None:
    # llama-server's "Loading model" error carries code 503: asking again may be answered.
    body = b'{"error": {"message": "Loading model", "code": %s}}' % code.encode()
    server.push(_answer("200 OK", "application/json", body), Reply())
    c = _ask(server, retries=1)
    assert c.attempts == 2 and c.text == ANSWER
    assert c.retry_reasons == (f"error from the server: Loading model (code {code})",)


def _served_model(url: str, model: str) -> str:
    async def main() -> str:
        async with llm.http_client() as http:
            return await llm.server_model(http, LLMConfig(url, model))

    return run(main())


@pytest.mark.parametrize("model", ["", "test-model"])
@pytest.mark.parametrize(
    ("body", "said"),
    [(SSO, "an HTML page titled 'SSO'"), (b"Ollama is running", "text: 'Ollama is running'")],
)
def test_a_page_at_the_start_up_check_ends_the_run_naming_the_url(
    model: str, body: bytes, said: str
) -> None:
    # A web UI's root (--llm-url without /v1): with a model, the check let it be and the
    # first requests were retried with backoff; without one, it said "pass the model name".
    with LLMServer(gets={"/models": _answer("200 OK", "text/html", body)}) as server:
        root = server.url.removesuffix("/v1")
        with pytest.raises(ConfigError) as info:
            _served_model(root, model)
    assert str(info.value) == (
        f"--llm-url {root}: GET {root}/models answered with {said}, not the API's list of"
        " models; give the API's base URL (it usually ends in /v1)"
    )


def test_an_empty_model_list_with_status_200_still_lets_the_first_request_tell() -> None:
    with LLMServer(gets={"/v1/models": _answer("200 OK", "application/json", b"")}) as server:
        assert _served_model(server.url, "test-model") == "test-model"


def test_a_whole_reply_past_the_read_limit_says_so(server: LLMServer) -> None:
    # 50 MB of one completion: "unexpected content type application/json" blamed the type.
    message = {"role": "assistant", "content": GOOD_REPLY + "x" * 50_000_000}
    body = json.dumps({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
    server.push(_answer("200 OK", "application/json", body.encode()))
    limit = 4 * 1000 + 65536
    said = _fails(server, max_reply_chars=1000)
    assert said.endswith(f"a non-streamed reply longer than {limit} bytes, not read")


# --- encodings ----------------------------------------------------------------------------


def test_a_byte_order_mark_on_every_line_is_dropped(server: LLMServer) -> None:
    # A server that encodes each event as utf-8-sig: no event was ever read, and the
    # error said only "stream cut before the reply finished".
    lines = _events().split(b"\n")
    server.push(
        _answer("200 OK", "text/event-stream", b"\n".join(b"\xef\xbb\xbf" + ln for ln in lines))
    )
    assert _ask(server).text == ANSWER


def test_a_byte_order_mark_before_the_json_of_each_event_is_dropped(server: LLMServer) -> None:
    server.push(
        _answer(
            "200 OK", "text/event-stream", _events().replace(b"data: {", b"data: \xef\xbb\xbf{")
        )
    )
    assert _ask(server).text == ANSWER


def test_characters_split_between_chunks_arrive_whole(server: LLMServer) -> None:
    data = _events("Une porte lisse é—😀:\n" + GOOD_REPLY)
    body = b"".join(b"%X\r\n%s\r\n" % (1, data[i : i + 1]) for i in range(len(data)))
    server.push(Raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"))  # fmt: skip
    assert _ask(server).text == "Une porte lisse é—😀:\n" + ANSWER


# --- one-line descriptions of pages -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (NGINX_502, "an HTML page titled '502 Bad Gateway'"),
        (b"\xef\xbb\xbf \n<html><title>a\n  b &lt;c&gt;</title>", "an HTML page titled 'a b <c>'"),
        (b"<html><body><td>a</td><td>b</td></body></html>", "an HTML page: 'a b'"),
        (b"<html><head><title></title><script>x</script></head>", "an HTML page without text"),
        (b'<?xml version="1.0"?><Error><Code>Denied</Code></Error>', "an XML document: 'Denied'"),
        (b"<title>" + b"k" * 500, "an HTML page: 'k" + "k" * 99 + "…'"),
        (b"<a " + b" " * 50_000, "an HTML page: '<a'"),
        (b"<!--" + b"-" * 50_000, "an HTML page: '<!--" + "-" * 96 + "…'"),
    ],
)  # fmt: skip
def test_a_page_is_said_in_one_line(body: bytes, said: str) -> None:
    assert summary(body) == said


@pytest.mark.parametrize("body", [b'{"error": "x"}', b"Bad gateway", b"", b"  \n"])
def test_what_is_not_markup_is_no_page(body: bytes) -> None:
    assert summary(body) is None


@pytest.mark.parametrize(
    ("body", "ctype", "said"),
    [
        (b"\xef\xbb\xbf \n[1, 2", "text/plain", None),  # JSON, perhaps cut: a retry may mend it
        (b": ping\n\n", "text/plain", None),  # an event stream's comment
        (b"id: 7\ndata: x\n\n", "", None),
        (b" \r\n ", "text/html", None),  # nothing came: a retry may do better
        (b"Bad gateway", "text/plain", "text: 'Bad gateway'"),
        (b"Bad gateway", "TEXT/HTML; charset=utf-8", "an HTML page: 'Bad gateway'"),
    ],
)
def test_what_cannot_be_an_answer_is_told_apart(body: bytes, ctype: str, said: str | None) -> None:
    assert not_an_answer(body, ctype) == said


def test_a_key_echoed_in_a_page_is_masked() -> None:
    assert summary(b"<title>bad key sk-secret-0123</title>", "sk-secret-0123") == (
        "an HTML page titled 'bad key ***'"
    )
