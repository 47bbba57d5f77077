"""Server-sent events: bytes in, the data of whole events out (the SSE spec's line rules);
and JSON as servers send it, in events or whole bodies.

Pure, like minact.search.sse, which reads the chat-completion chunks in the data and
re-exports EventReader and json_object.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["BOM", "EventReader", "content_text", "json_object", "json_value", "not_json"]

BOM = "\ufeff"


class EventReader:
    """Splits SSE bytes into the data of whole events (lines end in \\n, \\r\\n or \\r, as
    the SSE spec allows), and notes what arrived, so that a stream without events can be
    told apart from silence.

    The data of an `event: error` event comes back as {"error": <its message>}.
    """

    def __init__(self, keep: int = 65536) -> None:
        self._partial: list[bytes] = []  # an unfinished line, in pieces (joined once, at its end)
        self._partial_len = 0
        self._data: list[str] = []
        self._data_len = 0
        self._event = ""  # the `event:` field of the event being read
        self._keep = keep
        self.pending = 0  # bytes held for an unfinished event; the caller bounds it
        self.received = 0  # bytes fed
        self.data_lines = 0
        self.first_line: str | None = None  # the first line that is not blank or a comment
        self.head = bytearray()  # the first `keep` bytes, kept until a data line comes
        self._after_cr = False  # the last chunk ended in \r: a \n starting the next is its pair

    def feed(self, chunk: bytes) -> list[str]:
        """Returns the data of the events that `chunk` completes."""
        self.received += len(chunk)
        if not self.data_lines and len(self.head) < self._keep:
            self.head += chunk[: self._keep - len(self.head)]
        if chunk and (self._after_cr or b"\r" in chunk):
            # A lone \r ends a line too: a server ending lines with it alone sent one line.
            chunk = chunk[1:] if self._after_cr and chunk.startswith(b"\n") else chunk
            self._after_cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:  # a line in many pieces is joined once, not at every piece
            self._partial.append(chunk)
            self._partial_len += len(chunk)
            self.pending = self._partial_len + self._data_len
            return []
        *lines, last = (b"".join(self._partial) + chunk).split(b"\n")
        self._partial, self._partial_len = [last], len(last)
        events = [data for line in lines if (data := self._line(line)) is not None]
        self.pending = self._partial_len + self._data_len
        return events

    def close(self) -> list[str]:
        """Returns the last event when the server closed without its blank line."""
        if self._partial_len:
            self._line(b"".join(self._partial))
        self._partial, self._partial_len = [], 0
        return [data] if (data := self._line(b"")) is not None else []

    def _line(self, raw: bytes) -> str | None:
        """Takes one line; returns the event's data when the line ends an event."""
        # The SSE spec drops a byte order mark that starts the stream; a server that encodes
        # each event as utf-8-sig starts every line with one, and each was then a field of
        # another name (no event was ever read). No field name starts with one.
        line = raw.decode("utf-8", "replace").removeprefix(BOM)
        if not line:  # a blank line ends the event
            data, kind = self._data, self._event
            self._data, self._data_len, self._event = [], 0, ""
            if not data:
                return None
            text = "\n".join(data)
            return _as_error(text) if kind == "error" else text
        if self.first_line is None and not line.startswith(":"):
            self.first_line = line[:200]
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":  # ":" lines are comments (keep-alive pings)
            self._data.append(value)
            self._data_len += len(value)
            self.data_lines += 1
        elif name == "event":
            self._event = value
        return None


def _as_error(data: str) -> str:
    """Returns the data of an `event: error` event as {"error": ...}: its JSON object, or
    its text (some proxies send `event: error` with `data: {"message": ...}` or plain text)."""
    obj = json_object(data)
    if obj is not None and obj.get("error"):
        return data
    return json.dumps({"error": obj or data.strip() or "(an empty error event)"})


def json_value(body: bytes | str) -> Any:
    """Returns `body` parsed as JSON; raises ValueError (json.JSONDecodeError where it is
    text but no JSON) or RecursionError. A byte order mark before it is ignored (RFC 8259
    allows that): json.loads refuses one in text. So are control characters inside strings
    (a line break, \\x01): JSON wants them escaped, but llama.cpp's server, among others,
    sometimes sends them as they are, and they mean the text they are."""
    return json.loads(body.removeprefix(BOM) if isinstance(body, str) else body, strict=False)


def content_text(content: Any) -> str | None:
    """Returns the text of a message's or delta's `content`: a string, or a list of content
    parts whose text parts are joined (Mistral's API streams them so); else None."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        texts = [p.get("text") for p in content if p.get("type") == "text"]
        return "".join(t for t in texts if isinstance(t, str))
    return None


def json_object(body: bytes | str) -> dict[str, Any] | None:
    """Returns `body` parsed as a JSON object (json_value), or None when it is not one."""
    try:
        obj = json_value(body)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


# What may stand where a JSON text that is cut short stops being JSON: the start of a word
# (true, NaN...), a number's sign, point or exponent, or a \u escape without its 4 digits.
_WORDS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_TAIL = re.compile(r"-|\.|[eE][-+]?|u[0-9a-fA-F]{0,4}")


def not_json(body: bytes) -> str | None:
    """Returns why `body` (UTF-8), which starts as JSON, is no JSON text, as json.loads
    says it with its position, when more of it could not make it JSON; None when it is
    JSON, or only its start (a body cut short, which a retry may get whole), or when it
    does not start as JSON ({, [ or ") at all."""
    text = body.decode("utf-8", "replace").removeprefix(BOM)
    if not text.lstrip(" \t\r\n").startswith(("{", "[", '"')):
        return None
    try:
        json_value(text)
    except json.JSONDecodeError as e:
        rest = text[e.pos :].rstrip(" \t\r\n")  # where it stopped being JSON, to the end
        if not rest or e.msg.startswith("Unterminated string"):  # cut at or inside a string
            return None
        if any(w.startswith(rest) for w in _WORDS) or _TAIL.fullmatch(rest):
            return None
        return f"{e.msg} at character {e.pos}"
    except (ValueError, RecursionError):
        return None  # nested past Python's limit: JSON, if an unusual one
    return None
