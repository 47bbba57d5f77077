"""Server-sent events and chat-completion chunks: bytes in, reply text out.

Everything here is pure: llm.py reads the bytes over httpx, feeds them to an EventReader,
hands each event's data to a Stream, and decides on retries from the Reply or Failure it
gets back. Each rule says, where it is applied, which servers it is for.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = ["EventReader", "Failure", "Reply", "Stream", "error_message", "json_object"]

# A fence (```python, ```py or bare ```) whose body holds the activation, then a closing fence.
_CODE_BLOCK = re.compile(
    r"```(?i:python3?|py)?[ \t]*\r?\n(?:(?!```).)*?def activation(?:(?!```).)*?```", re.DOTALL
)


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


class EventReader:
    """Splits SSE bytes into the data of whole events (lines end in \\n or \\r\\n)."""

    def __init__(self) -> None:
        self._partial = b""
        self._data: list[str] = []
        self.pending = 0  # bytes held for an unfinished event; the caller bounds it

    def feed(self, chunk: bytes) -> list[str]:
        """Returns the data of the events that `chunk` completes."""
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        events = [data for line in lines if (data := self._line(line)) is not None]
        self.pending = len(self._partial) + sum(map(len, self._data))
        return events

    def close(self) -> list[str]:
        """Returns the last event when the server closed without its blank line."""
        if self._partial:
            self._line(self._partial)
        self._partial = b""
        return [data] if (data := self._line(b"")) is not None else []

    def _line(self, raw: bytes) -> str | None:
        """Takes one line; returns the event's data when the line ends an event."""
        line = raw.removesuffix(b"\r").decode("utf-8", "replace")
        if not line:  # a blank line ends the event
            data, self._data = self._data, []
            return "\n".join(data) if data else None
        name, _, value = line.partition(":")
        if name == "data":  # ":" lines are comments (keep-alive pings); other fields are unused
            self._data.append(value.removeprefix(" "))
        return None


def _error_text(error: Any) -> str:
    """Returns an error's message (and its code, int or str), cut to 300 characters."""
    if isinstance(error, dict):
        code = f" (code {error['code']})" if error.get("code") is not None else ""
        error = f"{error.get('message') or json.dumps(error)}{code}"
    text = error if isinstance(error, str) else json.dumps(error)
    return text if len(text) <= 300 else text[:300] + "…"


def json_object(body: bytes | str) -> dict[str, Any] | None:
    """Returns `body` parsed as a JSON object, or None when it is not one."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def error_message(body: bytes) -> str:
    """Returns the message of an HTTP error body: nested, flat (old vLLM) or plain text."""
    obj = json_object(body) or {}
    for key in ("error", "message", "detail"):  # OpenAI, old vLLM, FastAPI
        if obj.get(key):
            return _error_text(obj[key])
    return _error_text(body.decode("utf-8", "replace").strip() or "(empty body)")


def _first_choice(obj: dict[str, Any]) -> dict[str, Any]:
    """Returns the first choice of a completion or chunk, or {} when it has none."""
    # The usage chunk has choices [], null or no key at all, depending on the server.
    choices = obj.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


def _usage(obj: dict[str, Any]) -> tuple[int, int] | None:
    """Returns the (prompt, completion) token counts, if the server sent them."""
    usage = obj.get("usage")
    if not isinstance(usage, dict):  # spec: null on every chunk but the last
        return None
    counts = usage.get("prompt_tokens"), usage.get("completion_tokens")
    ok = all(isinstance(n, int) and not isinstance(n, bool) for n in counts)
    return cast(tuple[int, int], counts) if ok else None


@dataclass(slots=True)
class Stream:
    """What one attempt's stream has delivered so far; decides when the attempt is over."""

    cap: int
    stop_at_code: bool
    started: float = field(default_factory=time.monotonic)
    streaming: bool = False  # a 200 with text/event-stream arrived
    events: int = 0  # before [DONE]
    invalid: int = 0  # events whose data was not a JSON object
    parts: list[str] = field(default_factory=list)
    length: int = 0
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    first_token: float | None = None

    def take(self, data: str) -> Reply | Failure | None:
        """Applies one event; returns the attempt's outcome once it is decided."""
        if data.strip() == "[DONE]":
            return self.end()
        self.events += 1
        obj = json_object(data)
        if obj is None:
            self.invalid += 1
            return None
        if obj.get("error"):
            return Failure(f"error event in the stream: {_error_text(obj['error'])}")
        self.usage = _usage(obj) or self.usage
        choice = _first_choice(obj)
        if isinstance(finish := choice.get("finish_reason"), str) and finish:
            self.finish_reason = finish
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        return self._add(content) if isinstance(content, str) and content else None

    def _add(self, content: str) -> Reply | None:
        """Appends reply text; returns the reply once a code block closes or the cap is hit."""
        if self.first_token is None:
            self.first_token = time.monotonic() - self.started
        self.parts.append(content)
        self.length += len(content)
        # Only a chunk with a backtick can close a fence, so the text is rarely rescanned.
        if self.stop_at_code and "`" in content:
            text = "".join(self.parts)[: self.cap]
            if match := _CODE_BLOCK.search(text):
                return Reply(text[: match.end()], "code_complete", self.usage, self.first_token)
        if self.length >= self.cap:
            return Reply("".join(self.parts)[: self.cap], "cap", self.usage, self.first_token)
        return None

    def end(self, why: str = "stream cut before the reply finished") -> Reply | Failure:
        """Returns the outcome once the stream stopped ([DONE], EOF, a timeout, a cut)."""
        text = "".join(self.parts)
        if self.invalid and not text:
            return Failure("invalid JSON in stream")
        if self.finish_reason is not None:
            return Reply(text, self.finish_reason, self.usage, self.first_token)
        # No finish_reason means truncated, even after [DONE] (llama-cpp-python's interrupt).
        if _CODE_BLOCK.search(text):
            return Reply(text, "truncated", self.usage, self.first_token)
        # llama-cpp-python sends an empty 200 stream when the prompt exceeds its context.
        return Failure(why + ("" if self.events else " (no events: prompt too long?)"))

    def plain(self, body: bytes, content_type: str) -> Reply | Failure:
        """Returns the outcome of a non-streamed completion (some servers ignore stream=true)."""
        obj = json_object(body) or {}
        if obj.get("error"):
            return Failure(f"error from the server: {_error_text(obj['error'])}")
        choice = _first_choice(obj)
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            return Failure(f"unexpected content type {content_type or '(none)'}")
        finish = choice.get("finish_reason")
        finish = finish if isinstance(finish, str) and finish else "stop"
        first = time.monotonic() - self.started if text else None
        capped = len(text) > self.cap
        return Reply(text[: self.cap], "cap" if capped else finish, _usage(obj), first)
