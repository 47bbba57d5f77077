"""Server-sent events and chat-completion chunks: bytes in, reply text out.

Everything here is pure: llm.py reads the bytes over httpx, feeds them to an EventReader,
hands each event's data to a Stream, and decides on retries from the Reply or Failure it
gets back. Each rule says, where it is applied, which servers it is for. Text the server
chose (error messages, data lines, names) reaches a reason only through untrusted.clip.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from minact.search import webpage
from minact.search.events import EventReader, content_text, json_object, json_value, not_json
from minact.search.thinking import Tags
from minact.untrusted import clip, writable

__all__ = [
    "CUT",
    "EventReader",
    "Failure",
    "Reply",
    "Stream",
    "error_message",
    "json_object",
    "shown_code",
]

CUT = "stream cut before the reply finished"
_CHUNK = "chat.completion.chunk"  # a chunk's `object`

# A fence (```python, ```py or bare ```) whose body holds the activation, then a closing fence.
# The activation is looked for ahead, once: a body of many of them and no closing fence
# was otherwise read to its end from each (quadratic: 11 s for a 100,000-character reply).
_CODE_BLOCK = re.compile(
    r"```(?i:python3?|py)?[ \t]*\r?\n(?=(?:(?!```).)*?def activation)(?:(?!```).)*```", re.DOTALL
)
_HEADER = re.compile(r"```(?i:python3?|py)?[ \t]*\r?\n")  # the opening line of such a block
# A block as the prompt shows code (prompt.py, conversation.py): fences at the start of a line.
_SHOWN = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _normal(code: str) -> str:
    return "".join(code.split())


def shown_code(messages: Iterable[Mapping[str, str]]) -> frozenset[str]:
    """Returns the code blocks with the activation that `messages` show (the parent, the
    inspirations, earlier replies), whitespace removed: a reply quoting one is not done."""
    shown = set()
    for m in messages:
        for code in _SHOWN.findall(m.get("content") or ""):
            if "def activation" in code:
                shown.add(_normal(code))
    return frozenset(shown)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one attempt failed, whether another may help, and any wait the server asked for."""

    reason: str
    retryable: bool = True
    retry_after: float | None = None
    status: int | None = None  # the HTTP status, where the server answered with one


@dataclass(frozen=True, slots=True)
class Reply:
    """A usable reply from one attempt."""

    text: str
    finish_reason: str
    usage: tuple[int, int] | None
    first_token: float | None
    reasoning: int = 0  # characters of reasoning (reasoning_content) that came with it


def _error_text(error: Any, secret: str | None = None) -> str:
    """Returns an error's message (and its code, int or str), cut to 300 characters."""
    if isinstance(error, dict):
        code = f" (code {error['code']})" if error.get("code") is not None else ""
        error = f"{error.get('message') or json.dumps(error)}{code}"
    return clip(error if isinstance(error, str) else json.dumps(error), 300, secret)


def error_message(body: bytes, secret: str | None = None) -> str:
    """Returns the message of an HTTP error body: nested, flat (old vLLM), plain text, or
    a proxy's or web server's page (its title: webpage.summary)."""
    obj = json_object(body) or {}
    for key in ("error", "message", "detail"):  # OpenAI, old vLLM, FastAPI
        if obj.get(key):
            return _error_text(obj[key], secret)
    text = webpage.summary(body, secret) or body.decode("utf-8", "replace").strip()
    return _error_text(text or "(empty body)", secret)


_RETRY_CODES = (408, 409, 429)  # and 5xx: the statuses openai-python retries


def _error_retryable(obj: dict[str, Any]) -> bool:
    """Returns whether an error answered with status 200 may go away when asked again: only
    when its code is one of a status that is retried (llama-server's 503 "Loading model").
    Any other ("model not loaded" without a code, a 400) is the answer every retry gets."""
    error = obj.get("error") if isinstance(obj.get("error"), dict) else obj
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, str) and code.strip().isdigit() and len(code.strip()) == 3:
        code = int(code)
    return (
        isinstance(code, int)
        and not isinstance(code, bool)
        and (code in _RETRY_CODES or 500 <= code <= 599)
    )


def _first_choice(obj: dict[str, Any]) -> dict[str, Any]:
    """Returns the first choice of a completion or chunk, or {} when it has none."""
    choices = obj.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


_MAX_TOKENS = 1 << 40  # a count past any context; more (or below 0) is not a count


def _usage(obj: dict[str, Any]) -> tuple[int, int] | None:
    """Returns the (prompt, completion) token counts, if the server sent them."""
    usage = obj.get("usage")
    if not isinstance(usage, dict):  # spec: null on every chunk but the last
        return None
    counts = usage.get("prompt_tokens"), usage.get("completion_tokens")
    ok = all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= _MAX_TOKENS for n in counts
    )
    return cast(tuple[int, int], counts) if ok else None  # else estimated, as if not sent


def _reasoning(message: dict[str, Any]) -> int:
    """Returns the characters of reasoning in a delta or message: reasoning_content
    (llama-server, DeepSeek, older vLLM) or reasoning (Ollama, OpenRouter, vLLM),
    counted once where a server sends both with the same text (vLLM's transition)."""
    for key in ("reasoning_content", "reasoning"):
        if isinstance(thought := message.get(key), str):
            return len(thought)
    return 0


def _received(reader: EventReader, secret: str | None) -> Failure:
    """Says what a stream without events brought: bytes, lines, and the first of them.
    A page in their place (a web UI's or a portal's, mislabelled) will stay one: no retry."""
    n = reader.received
    if not reader.data_lines and (page := webpage.summary(bytes(reader.head), secret)):
        return Failure(f"{page} in place of events ({n} bytes; {webpage.URL_HINT})", False)
    if reader.first_line is None and reader.pending == n:  # one line, never ended
        return Failure(f"{n} bytes of a line that never ended")
    if reader.first_line is None:
        return Failure(f"only blank lines and comments (keep-alive pings) in {n} bytes")
    first = clip(reader.first_line, 80, secret)
    what = "complete event" if reader.data_lines else "`data:` line"
    return Failure(f"no {what} in {n} bytes; the first line: '{first}'")


@dataclass(slots=True)
class Stream:
    """What one attempt's stream has delivered so far; decides when the attempt is over.

    With `stop_at_code`, the stream ends at the first whole code block with the activation
    that is not a quote of code in `shown` (see shown_code) nor a sketch in the model's
    thinking (minact.search.thinking; `thinking`: the text starts inside it): a model that
    first quotes its parent, or thinks, and then answers is read up to the answer, which
    parse_reply (the last block after the thinking) takes too. Each character is searched
    for fences about once (`scanned` counts them).
    """

    cap: int
    stop_at_code: bool
    shown: frozenset[str] = frozenset()
    secret: str | None = field(default=None, repr=False)  # masked in every reason
    thinking: bool | None = False  # starts inside a thinking block (None: not known yet)
    started: float = field(default_factory=time.monotonic)
    streaming: bool = False  # a 200 with text/event-stream arrived
    events: int = 0  # before [DONE]
    invalid: int = 0  # events whose data was not a JSON object
    bad_data: str | None = None  # the first of them
    bad_kind: str = "invalid JSON"  # what it was: no JSON, or JSON but no object
    odd: str | None = None  # the first `choices`, `delta` or `delta.content` of no text type
    chunks: int = 0  # events that are chat-completion chunks (choices, usage or the type)
    choices: int = 0  # chunks with a choice: a usage chunk's choices are [], null or none
    other: tuple[str, list[str]] | None = None  # the first object that is none: data, keys
    parts: list[str] = field(default_factory=list)
    length: int = 0
    reasoning: int = 0  # characters of reasoning_content (or reasoning), not in the reply
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    first_token: float | None = None
    scanned: int = 0
    _open: int | None = field(default=None, init=False, repr=False)  # the open fence's start
    _block: list[str] = field(default_factory=list, init=False, repr=False)  # text from it on
    _base: int = field(default=0, init=False, repr=False)  # where the first of _block starts
    _fence_end: int = field(default=0, init=False, repr=False)  # where the last fence ends
    _tail: str = field(default="", init=False, repr=False)  # the last 2 characters of the text
    _tags: Tags = field(init=False, repr=False)  # where thinking blocks open and close

    def __post_init__(self) -> None:
        self._tags = Tags(self.thinking)

    def take(self, data: str, reader: EventReader | None = None) -> Reply | Failure | None:
        """Applies one event; returns the attempt's outcome once it is decided. `reader`
        tells, at a [DONE] before any event, what came instead."""
        if data.strip() == "[DONE]":
            return self.end(None, reader)
        self.events += 1
        obj = json_object(data)
        if obj is None:
            self.invalid += 1
            if self.bad_data is None:
                self.bad_data = data[:200]
                try:  # `[1, 2]` is JSON: said so, not called invalid
                    self.bad_kind = f"JSON {type(json_value(data)).__name__}, no object,"
                except (ValueError, RecursionError):
                    pass
            return None
        if obj.get("error") or obj.get("object") == "error":  # nested, or flat (old vLLM)
            why = _error_text(obj.get("error") or obj, self.secret)
            # In place of the reply, it is the server's answer, as a 200 with an error body
            # is; a reply that breaks off with one (a crash, memory) may do better again.
            # A chunk of the role alone (vLLM's first) or of empty text began no reply.
            began = self.length or self.reasoning
            again = True if began else _error_retryable(obj)
            return Failure(f"error event in the stream: {why}", again)
        if not ("choices" in obj or "usage" in obj or obj.get("object") == _CHUNK):
            self.other = self.other or (data[:200], [str(k) for k in list(obj)[:6]])
            return None
        self.chunks += 1
        self.usage = _usage(obj) or self.usage
        self.choices += bool(choice := _first_choice(obj))
        self._odd("choices", obj.get("choices"), list)
        if isinstance(finish := choice.get("finish_reason"), str) and finish:
            self.finish_reason = clip(finish, 40, self.secret)
        delta = choice.get("delta")
        delta = delta if self._odd("delta", delta, dict) and delta else {}
        self.reasoning += _reasoning(delta)
        content = content_text(delta.get("content"))
        self._odd("delta.content", delta.get("content") if content is None else None, str)
        return self._add(writable(content)) if content else None

    def _odd(self, name: str, value: Any, kind: type) -> bool:
        """Returns whether `value` (a chunk's `name`) is a `kind` or null; notes it if not."""
        if value is None or isinstance(value, kind):
            return True
        said = type(value).__name__ + ("" if isinstance(value, (list, dict)) else f" {value!r}")
        said = clip(said, 60, self.secret)  # a nested value is named, never walked
        self.odd = self.odd or f"`{name}` is {said}, not a {kind.__name__}"
        return False

    def _add(self, content: str) -> Reply | None:
        """Appends reply text; returns the reply once a code block closes or the cap is hit."""
        if self.first_token is None:
            self.first_token = time.monotonic() - self.started
        start = self.length
        self.parts.append(content)
        self.length += len(content)
        if self.stop_at_code:
            self._tags.feed(content, start)
        if self.stop_at_code and (end := self._scan(content, start)) is not None:
            if end <= self.cap:
                return self._reply("".join(self.parts)[:end], "code_complete")
        if self.length >= self.cap:
            return self._reply("".join(self.parts)[: self.cap], "cap")
        return None

    def _scan(self, content: str, start: int) -> int | None:
        """Pairs the fences in `content` (at `start` in the text); returns where the first
        block that ends the stream ends. Only the new text and two characters are searched."""
        if self._open is not None:
            self._block.append(content)
        if "`" in content:
            keep = max(0, min(2, start - self._fence_end, len(self._tail)))
            prev = self._tail[len(self._tail) - keep :] if keep else ""
            window, base = prev + content, start - keep
            self.scanned += len(window)
            at = window.find("```")
            while at >= 0:
                if self._open is None:
                    # Not window[at:]: a copy of the rest at each fence is quadratic in a piece.
                    self._open, self._block, self._base = base + at, [window], base
                else:
                    end, opened = base + at + 3, self._open
                    block = "".join(self._block)[opened - self._base : end - self._base]
                    self._open, self._block = None, []
                    if self._answers(block) and not self._tags.inside(opened):
                        return end
                self._fence_end = base + at + 3
                at = window.find("```", at + 3)
        self._tail = (self._tail + content)[-2:]
        return None

    def _answers(self, block: str) -> bool:
        """Returns whether a whole fenced block holds the activation and is no quote."""
        if not _HEADER.match(block) or "def activation" not in block:
            return False
        code = _normal(block[block.index("\n") + 1 : -3])
        return not any(code in quoted for quoted in self.shown)

    def _reply(self, text: str, finish: str) -> Reply:
        return Reply(text, finish, self.usage, self.first_token, self.reasoning)

    def end(
        self, why: str | None = None, reader: EventReader | None = None, *, transient: bool = True
    ) -> Reply | Failure:
        """Returns the outcome once the stream stopped: at [DONE] or EOF (`why` None), or
        for `why` (a timeout, a cut: `transient`, or the stream's byte limit); `reader` tells
        what arrived when no event did."""
        text = "".join(self.parts)
        if self.invalid and not text:
            bad = clip(self.bad_data or "", 80, self.secret)
            return Failure(f"{self.bad_kind} in stream: '{bad}'")
        if self.odd is not None and not text and not self.reasoning:
            return Failure(f"no text in the stream's chunks: {self.odd}", retryable=False)
        if self.finish_reason is not None:
            return self._reply(text, self.finish_reason)
        # No finish_reason means truncated, even after [DONE] (llama-cpp-python's interrupt).
        if _CODE_BLOCK.search(text):
            return self._reply(text, "truncated")
        if not self.chunks and self.other is not None:  # objects, none a chunk
            return self._foreign(self.other, why, transient)
        if self.events:  # a stream of usage chunks alone says so
            said = why or (None if self.choices else "no chunk had a choice")
            return Failure(f"{CUT}: {said}" if said else CUT)
        if reader is None or not reader.received:
            if why is not None:
                return Failure(f"{why}, before any byte of the event stream")
            # llama-cpp-python sends an empty 200 stream when the prompt exceeds its context.
            return Failure(f"{CUT}: the event stream ended empty (no events: prompt too long?)")
        if why is None and not reader.data_lines:
            # A whole completion labelled text/event-stream: some servers ignore stream=true.
            obj = json_object(bytes(reader.head)) or {}
            if obj.get("error") or _first_choice(obj):
                return self.plain(bytes(reader.head), "text/event-stream")
        got = _received(reader, self.secret)
        return replace(got, reason=f"{why}; {got.reason}" if why else f"{CUT}: {got.reason}")

    def _foreign(self, first: tuple[str, list[str]], why: str | None, transient: bool) -> Failure:
        """Says what a stream of JSON objects that are no chat-completion chunks brought:
        a server (or a route) of another protocol, which sends them again when asked again.
        One that a timeout or a dropped connection cut (`why`, `transient`) is asked again:
        the objects may be a proxy's keep-alives or progress before a reply that was late."""
        n, keys = self.events, ", ".join(clip(k, 40, self.secret) for k in first[1])
        said = clip(" ".join(first[0].split()), 80, self.secret)
        what = f"{n} event{'s' if n > 1 else ''} but no chat-completion chunk: the first is a"
        what += f" JSON object with no choices (its keys: {keys or 'none'}): '{said}'"
        what = f"the server streamed {what} ({webpage.URL_HINT})"
        if why is None:
            return Failure(what, retryable=False)
        return Failure(f"{why}; {what}", retryable=transient)

    def plain(self, body: bytes, content_type: str, cut: bool = False) -> Reply | Failure:
        """Returns the outcome of a non-streamed completion (some servers ignore stream=true);
        `cut`: `body` is only the start of a longer one."""
        # Bytes that are no UTF-8 become U+FFFD, as in a stream: one bad byte in a reply
        # was the whole reply refused (and the JSON then said to be no completion).
        body = body.decode("utf-8", "replace").encode()
        obj = json_object(body) or {}
        if obj.get("error") or obj.get("object") == "error":  # nested, or flat (old vLLM)
            why = f"error from the server: {error_message(body, self.secret)}"
            return Failure(why, _error_retryable(obj))
        choice = _first_choice(obj)
        message = choice.get("message")
        text = content_text(message.get("content")) if isinstance(message, dict) else None
        if isinstance(message, dict) and message.get("content") is None:
            text = ""  # all reasoning up to max_tokens, or a tool call: finish_reason says
        if not isinstance(text, str) and (other := webpage.no_completion(body, self.secret)):
            # Whole JSON, but no chat completion (a model list, an array, no choices): the
            # server answered what it will answer again. Cut JSON may yet do better.
            return Failure(other, retryable=False)
        if not isinstance(text, str):
            kind = clip(content_type or "(none)", 80, self.secret)
            # A page (a web UI's, a portal's), text that is no JSON, or JSON broken before its
            # end (as the server wrote it) comes again; an empty body or a cut JSON may not.
            if (other := webpage.not_an_answer(body, content_type, self.secret)) is not None:
                why = f"unexpected content type {kind}: {other}, not an API answer"
                return Failure(f"{why} ({webpage.URL_HINT})", retryable=False)
            if cut:  # its JSON does not end within the limit
                return Failure(f"a non-streamed reply longer than {len(body)} bytes, not read")
            start = clip(body[:200].decode("utf-8", "replace").strip(), 80, self.secret)
            if (broken := not_json(body)) is not None:
                return Failure(f"the server answered broken JSON ({broken}): '{start}'", False)
            return Failure(f"unexpected content type {kind}: '{start}'")
        text = writable(text)
        finish = choice.get("finish_reason")
        finish = clip(finish, 40, self.secret) if isinstance(finish, str) and finish else "stop"
        first = time.monotonic() - self.started if text else None
        capped = len(text) > self.cap
        reasoning = _reasoning(message) if isinstance(message, dict) else 0
        return Reply(text[: self.cap], "cap" if capped else finish, _usage(obj), first, reasoning)
