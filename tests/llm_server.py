"""A real, scriptable OpenAI-compatible streaming server on 127.0.0.1, for tests and benchmarks.

Each request to POST /v1/chat/completions is answered by the next queued Behaviour (see
`LLMServer.push`), else by the responder. The behaviours mimic what llama-cpp-python,
llama-server, Ollama and vLLM really send, faults included.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

GOOD_CODE = "def activation(x):\n    return x * torch.sigmoid(x)\n"
GOOD_REPLY = f"A smooth gate:\n\n```python\n{GOOD_CODE}```\n\nIt is SiLU."
PROMPT_TOKENS = 42  # reported in every usage chunk; completion_tokens = content chunks sent
MODELS = {"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "me"}]}


def finished_without_code(text: str = "No code, sorry.") -> bytes:
    """Returns SSE events of a reply without code and its finish chunk, neither [DONE] nor
    anything after: what a server that holds the stream open has sent before it waits."""
    chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    return f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(finish)}\n\n".encode()


def serving(*names: str) -> dict[str, Any]:
    """Returns a GET /v1/models body that lists `names`."""
    return {"object": "list", "data": [{"id": n, "object": "model"} for n in names]}


@dataclass(frozen=True)
class Reply:
    """A well-formed stream of `text`, split into chunks of `chunk_chars` characters."""

    text: str = GOOD_REPLY
    chunk_chars: int = 20
    chunk_delay: float = 0.0  # seconds between chunks
    usage: bool = True  # send the usage chunk (llama-cpp-python never does)
    finish_reason: str | None = "stop"  # None: no finish chunk
    role_first: bool = True  # a first chunk with only the role, as every server sends
    ping_every: int = 0  # a ": ping" comment line after every N content chunks
    crlf: bool = False  # end lines with \r\n
    multiline: bool = False  # spread each event's JSON over several `data:` lines


@dataclass(frozen=True)
class Status:
    """An HTTP error before any stream: a JSON body (dict) or a plain-text one (str)."""

    code: int
    body: Mapping[str, Any] | str | None = None  # None: {"error": {"message": ...}}
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorEvent:
    """A 200 stream with some content, then `data: {"error": ...}` and the end, no [DONE]."""

    text_before: str = "Let me think"
    error: Mapping[str, Any] = field(
        default_factory=lambda: {"message": "model crashed", "type": "server_error", "code": 500}
    )


@dataclass(frozen=True)
class Truncate:
    """A stream cut (connection closed) after `cut_after_chars`: no finish_reason, no [DONE]."""

    text: str
    cut_after_chars: int


@dataclass(frozen=True)
class DoneWithoutFinish:
    """llama-cpp-python's interrupted stream: content, then [DONE] with no finish_reason."""

    text: str


@dataclass(frozen=True)
class Hang:
    """Accept the request and send nothing for `seconds`, then close."""

    seconds: float


@dataclass(frozen=True)
class Stall:
    """A well-formed stream of `text` that stops after `after` bytes of its body (0: right
    after the 200 headers, or in the middle of an event) and then holds the connection open,
    silent, for `seconds`: a server that hangs mid-reply."""

    text: str = GOOD_REPLY
    after: int = 0
    seconds: float = 30.0


@dataclass(frozen=True)
class Trickle:
    """A well-formed stream of `text`, sent one byte at a time."""

    text: str
    bytes_per_second: float = 1.0


@dataclass(frozen=True)
class InvalidJsonChunk:
    """A well-formed stream of `text` with a garbage `data: {nope` event after the first chunk."""

    text: str


@dataclass(frozen=True)
class WrongContentType:
    """A 200 whose body is not an event stream."""

    body: str = "<html><body>Welcome to nginx!</body></html>"
    content_type: str = "text/html"


@dataclass(frozen=True)
class PlainJson:
    """A non-streamed completion (application/json), as from a server that ignores stream=true."""

    text: str


@dataclass(frozen=True)
class Redirect:
    """A redirect to `location`."""

    location: str
    code: int = 307


@dataclass(frozen=True)
class Huge:
    """A well-formed stream of `megabytes` MB of text without any code."""

    megabytes: float = 10


@dataclass(frozen=True)
class Empty:
    """A well-formed stream with no content at all and finish_reason "stop"."""


@dataclass(frozen=True)
class EmptyBody:
    """A 200 event stream with no events at all (llama-cpp-python on a too-long prompt)."""


@dataclass(frozen=True)
class Raw:
    """`data` written as it is, status line and headers included, then a close after `hang`
    seconds: a malformed or hostile answer (no `data:` prefix, a false Content-Encoding,
    broken chunks, a silent stream)."""

    data: bytes
    hang: float = 0.0


@dataclass(frozen=True)
class Drip:
    """A 200 whose body is `start`, then one more byte every `every` seconds, without end."""

    start: bytes = b'{"data": ['
    every: float = 1.0
    content_type: str = "application/json"


@dataclass(frozen=True)
class Endless:
    """A 200 whose body is `start`, then `piece` again and again as fast as it is read, up to
    `megabytes` (a guard: a client that does not stop fails its test, not the machine)."""

    start: bytes = b'{"data": ['
    piece: bytes = b'{"id": "m"},' * 1000
    content_type: str = "application/json"
    megabytes: float = 256


Behaviour = (
    Reply | Status | ErrorEvent | Truncate | DoneWithoutFinish | Hang | Stall | Trickle
    | InvalidJsonChunk | WrongContentType | PlainJson | Redirect | Huge | Empty | EmptyBody
    | Raw | Drip | Endless
)  # fmt: skip
Responder = Callable[[dict[str, Any]], Behaviour]  # request body -> what to answer


def numbered_replies(body: Callable[[int], str], start: int = 0) -> Responder:
    """Returns a responder whose k-th reply (k from `start`, in the order requests arrive)
    is a python block with `def activation(x): return <body(k)>`."""
    counter = itertools.count(start)
    lock = threading.Lock()

    def respond(request: dict[str, Any]) -> Behaviour:
        with lock:
            k = next(counter)
        return Reply(
            "```python\nimport torch\nimport torch.nn.functional as F\n"
            f"def activation(x):\n    return {body(k)}\n```"
        )

    return respond


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it; header names are lower case."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any  # the parsed body, or None


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "choices": [choice], "usage": None}  # fmt: skip


def _usage_chunk(model: str, completion_tokens: int) -> dict[str, Any]:
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": completion_tokens,
             "total_tokens": PROMPT_TOKENS + completion_tokens}  # fmt: skip
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "choices": [], "usage": usage}  # fmt: skip


def _event(payload: Any, nl: str = "\n", multiline: bool = False) -> bytes:
    """Returns one SSE event; multiline spreads the JSON over several `data:` lines."""
    text = payload if isinstance(payload, str) else json.dumps(payload, indent=multiline or None)
    return ("".join(f"data: {line}{nl}" for line in text.split("\n")) + nl).encode()


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


def _reply_events(r: Reply, model: str) -> Iterator[bytes]:
    """Yields the events of a well-formed (or as configured) stream."""
    nl = "\r\n" if r.crlf else "\n"
    if r.role_first:
        yield _event(_chunk(model, {"role": "assistant"}), nl, r.multiline)
    pieces = _pieces(r.text, r.chunk_chars)
    for i, piece in enumerate(pieces, 1):
        yield _event(_chunk(model, {"content": piece}), nl, r.multiline)
        if r.ping_every and i % r.ping_every == 0:
            yield f": ping - 2025-01-01 00:00:{i % 60:02d}.000000{nl}{nl}".encode()
    if r.finish_reason is not None:
        yield _event(_chunk(model, {}, r.finish_reason), nl, r.multiline)
    if r.usage:
        yield _event(_usage_chunk(model, len(pieces)), nl, r.multiline)
    yield _event("[DONE]", nl)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, like uvicorn
    timeout = 30  # an idle connection's thread ends after this
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keeps the test output quiet."""

    def setup(self) -> None:
        """Registers the connection so that close() can cut it."""
        super().setup()
        self.server.owner._opened(self.connection)

    def finish(self) -> None:
        """Unregisters the connection."""
        try:
            super().finish()
        finally:
            self.server.owner._closed(self.connection)

    def do_GET(self) -> None:
        """Answers GET /v1/models (the readiness check) and, if set, /props; else 404. A path
        in `gets` is answered by its behaviour instead (a Drip, an Endless, a Raw...)."""
        owner = self.server.owner
        owner._record(RecordedRequest("GET", self.path, self._headers(), None))
        keyed = owner.key is None or self._headers().get("authorization") == f"Bearer {owner.key}"
        if (answer := owner.gets.get(self.path.rstrip("/"))) is not None:
            try:
                self._serve(answer, "test-model")
            except OSError:  # the client hung up: what a Drip or an Endless waits for
                self.close_connection = True
                owner._disconnected()
        elif not keyed:
            self._send(401, "application/json", b'{"error":{"message":"Incorrect API key"}}')
        elif self.path.rstrip("/") == "/v1/models":
            self._send(200, "application/json", json.dumps(owner.models).encode())
        elif self.path.rstrip("/") == "/props" and owner.props is not None:
            self._send(200, "application/json", json.dumps(owner.props).encode())
        else:
            self._send(404, "application/json", b'{"detail":"Not Found"}')

    def do_POST(self) -> None:
        """Answers POST /v1/chat/completions with the next behaviour."""
        owner = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        owner._record(RecordedRequest("POST", self.path, self._headers(), body))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, "application/json", b'{"detail":"Not Found"}')
            return
        behaviour = owner._next(body if isinstance(body, dict) else {})
        model = str(body.get("model", "test-model")) if isinstance(body, dict) else "test-model"
        try:
            if owner._wait(owner.latency):
                return
            self._serve(behaviour, model)
        except OSError:  # the client went away (BrokenPipe, ConnectionReset): that is fine
            self.close_connection = True
            owner._disconnected()

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _send(
        self, code: int, ctype: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _write(self, data: bytes) -> None:
        """Writes one HTTP chunk."""
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _stream(self, events: Iterator[bytes], delay: float = 0.0, end: bool = True) -> None:
        """Streams `events` with `delay` between them; end=False cuts the connection instead."""
        self._start_stream()
        for event in events:
            self._write(event)
            if delay and self.server.owner._wait(delay):
                break
        if end:
            self.wfile.write(b"0\r\n\r\n")
        else:  # no terminating chunk: the client sees an incomplete body
            self.close_connection = True

    def _serve(self, b: Behaviour, model: str) -> None:
        owner = self.server.owner
        match b:
            case Reply():
                self._stream(_reply_events(b, model), b.chunk_delay)
            case Status():
                body = b.body if b.body is not None else {"error": {"message": f"status {b.code}"}}
                if isinstance(body, str):
                    self._send(b.code, "text/plain; charset=utf-8", body.encode(), b.headers)
                else:
                    self._send(b.code, "application/json", json.dumps(body).encode(), b.headers)
            case ErrorEvent():
                role = _event(_chunk(model, {"role": "assistant"}))
                text = _event(_chunk(model, {"content": b.text_before}))
                self._stream(iter([role, text, _event({"error": dict(b.error)})]))
            case Truncate():
                cut = Reply(b.text[: b.cut_after_chars], usage=False, finish_reason=None)
                self._stream(iter(list(_reply_events(cut, model))[:-1]), end=False)  # no [DONE]
            case DoneWithoutFinish():
                self._stream(_reply_events(Reply(b.text, usage=False, finish_reason=None), model))
            case Hang():
                owner._wait(b.seconds)
                self.close_connection = True
            case Stall():
                self._start_stream()
                if data := b"".join(_reply_events(Reply(b.text), model))[: b.after]:
                    self._write(data)
                owner._wait(b.seconds)
                self.close_connection = True
            case Trickle():
                data = b"".join(_reply_events(Reply(b.text), model))
                self._stream((data[i : i + 1] for i in range(len(data))), 1 / b.bytes_per_second)
            case InvalidJsonChunk():
                events = list(_reply_events(Reply(b.text), model))
                self._stream(iter([*events[:2], b"data: {nope\n\n", *events[2:]]))
            case WrongContentType():
                self._send(200, b.content_type, b.body.encode())
            case PlainJson():
                message = {"role": "assistant", "content": b.text}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(b.text) // 4}
                reply = {"id": "chatcmpl-test", "object": "chat.completion", "model": model,
                         "choices": [choice], "usage": usage}  # fmt: skip
                self._send(200, "application/json", json.dumps(reply).encode())
            case Redirect():
                self._send(b.code, "text/plain", b"", {"Location": b.location})
            case Huge():
                self._stream(self._huge(b, model))
            case Empty():
                self._stream(_reply_events(Reply(""), model))
            case EmptyBody():
                self._stream(iter([]))
            case Raw():
                self.wfile.write(b.data)
                self.wfile.flush()
                owner._wait(b.hang)
                self.close_connection = True
            case Drip():
                self._open_body(b.content_type)
                self.wfile.write(b.start)
                while not owner._wait(b.every):
                    self.wfile.write(b" ")
                    self.wfile.flush()
            case Endless():
                self._open_body(b.content_type)
                self.wfile.write(b.start)
                for _ in range(int(b.megabytes * 1_000_000 / max(1, len(b.piece)))):
                    if owner._wait(0):
                        break
                    self.wfile.write(b.piece)
            case _:
                raise TypeError(f"not a Behaviour: {b!r}")

    def _open_body(self, content_type: str) -> None:
        """Sends 200 headers for a body without a length: it ends when the connection does."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def _huge(self, b: Huge, model: str) -> Iterator[bytes]:
        yield _event(_chunk(model, {"role": "assistant"}))
        piece = _event(_chunk(model, {"content": "lorem ipsum " * 100}))
        for _ in range(int(b.megabytes * 1_000_000 / 1200) + 1):
            yield piece
        yield _event(_chunk(model, {}, "stop"))
        yield _event("[DONE]")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck handler must never keep the test process alive
    owner: LLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stays quiet about clients that went away; reports anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class LLMServer:
    """A scriptable OpenAI-compatible streaming server on a free port of 127.0.0.1 (or of
    another loopback address)."""

    def __init__(
        self,
        responder: Responder | None = None,
        latency: float = 0.0,
        *,
        models: Mapping[str, Any] = MODELS,
        props: Mapping[str, Any] | None = None,
        key: str | None = None,
        gets: Mapping[str, Behaviour] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """`host`: the IPv4 address to listen on (any of 127.0.0.0/8 is this machine)."""
        self.key = key  # when set, GET requests without this bearer key are answered 401
        self.models = models  # the body of GET /v1/models (vLLM adds max_model_len)
        self.props = props  # the body of GET /props (llama.cpp's server), or 404
        self.gets = dict(gets or {})  # {path: behaviour} for GET, e.g. {"/v1/models": Drip()}
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0  # replies cut short because the client closed the connection
        self.latency = latency  # seconds before the first byte of every reply
        self._responder = responder or (lambda body: Reply())
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._httpd = _HTTPServer((host, 0), _Handler)
        self._httpd.owner = self
        self.url = f"http://{host}:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def push(self, *behaviours: Behaviour) -> None:
        """Queues behaviours for the next requests, in order."""
        with self._lock:
            self._queue.extend(behaviours)

    def close(self) -> None:
        """Stops serving and cuts open connections; sleeping handlers wake at once."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            connections = dict(self._connections)
        for conn in connections:
            _shutdown(conn)
        self._httpd.server_close()
        self._thread.join()
        for thread in connections.values():
            thread.join(timeout=5)

    def __enter__(self) -> LLMServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _next(self, body: dict[str, Any]) -> Behaviour:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self._responder(body)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _disconnected(self) -> None:
        with self._lock:
            self.disconnects += 1

    def _wait(self, seconds: float) -> bool:
        """Sleeps `seconds`; returns True (at once) when the server is closing."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    def _opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections[conn] = threading.current_thread()
        if self._stopping.is_set():
            _shutdown(conn)

    def _closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.pop(conn, None)


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
