"""A web page where an API answer was due: a proxy's or nginx's 502 page, a login page,
a welcome page. It is said in one line, by its title or else by a short excerpt of its
text without the markup, never quoted whole.

With status 200, such a page (or any text that is neither JSON nor an event stream) is
no answer that a retry could improve: --llm-url names a web UI or a captive portal rather
than the API (`not_an_answer` says so, and the client gives up at once). So is whole JSON
that is no chat completion (`no_completion`: a model list, an error without a code).

Bodies are untrusted and may be hostile: every step here is linear in the body's length.
"""

from __future__ import annotations

import html
import re

from minact.search.events import json_value
from minact.untrusted import clip

__all__ = ["URL_HINT", "no_completion", "not_an_answer", "summary"]

EXCERPT = 100  # characters of a page's title or text in a reason
_SCAN = 16_384  # characters of the body searched: a page's title and first words are early
# A tag, or else a run of text, or else a lone "<": each character is matched about once.
# The name and the rest of a tag share no character, so a tag never closed is given up in
# one pass, not retried at each split of its characters between the two.
_PIECE = re.compile(r"<(/?)([A-Za-z!?][^<>\s/]*)(?:[\s/][^<>]*)?>|[^<]+|<")
_HIDDEN = {"script", "style"}  # their text is no page text
# How an answer of the API may start: JSON (perhaps cut short, which a retry may mend) or
# the fields of an event stream (a comment, data, event, id, retry).
_API_START = ("{", "[", '"', ":", "data:", "event:", "id:", "retry:")
_PAGE_TYPES = ("text/html", "application/xhtml+xml")
URL_HINT = "is --llm-url the API's base URL? It usually ends in /v1"


def summary(body: bytes, secret: str | None = None) -> str | None:
    """Returns a one-line description of `body` when it is markup (HTML, or XML from a
    gateway), else None: the page's title, or the start of its text, and its kind."""
    text = body[: _SCAN * 4].decode("utf-8", "replace").lstrip("\ufeff \t\r\n")[:_SCAN]
    if not text.startswith("<"):
        return None
    kind = "an XML document" if text.startswith("<?xml") else "an HTML page"
    if title := _title(text):
        return f"{kind} titled '{clip(title, EXCERPT, secret)}'"
    if words := _words(text):
        return f"{kind}: '{clip(words, EXCERPT, secret)}'"
    return f"{kind} without text"


def not_an_answer(body: bytes, content_type: str, secret: str | None = None) -> str | None:
    """Returns a one-line description of a successful response's `body` when it cannot be
    an API's answer, however often it is asked again: a page (by its markup or its type,
    text/html), or text that starts as neither JSON nor an event stream. Returns None for
    anything else, an empty body included: a connection that ended early may do better."""
    if (page := summary(body, secret)) is not None:
        return page
    text = body[: EXCERPT * 4].decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text:
        return None
    start = clip(" ".join(text.split()), EXCERPT, secret)
    if content_type.split(";")[0].strip().lower() in _PAGE_TYPES:
        return f"an HTML page: '{start}'"
    return None if text.startswith(_API_START) else f"text: '{start}'"


def _flat(text: str) -> str:
    """Returns `text` with its character references resolved and its spaces collapsed."""
    return " ".join(html.unescape(text).split())


def _title(text: str) -> str:
    """Returns the text of the page's first <title> element ("" when it has none)."""
    lower = text.lower()
    start = lower.find("<title")
    opened = lower.find(">", start) + 1 if start >= 0 else 0
    end = lower.find("</title", opened) if opened else -1
    return _flat(text[opened:end]) if end >= 0 else ""


def _words(text: str) -> str:
    """Returns the page's text without its tags, scripts and styles, spaces collapsed."""
    words: list[str] = []
    hidden: str | None = None  # the element whose text is skipped, while inside it
    size = 0
    for piece in _PIECE.finditer(text):
        closing, name = piece.group(1), (piece.group(2) or "").lower()
        if name:
            if hidden is None and not closing and name in _HIDDEN:
                hidden = name
            elif closing and name == hidden:
                hidden = None
            words.append(" ")  # a tag separates words: <td>a</td><td>b</td> is "a b"
        elif hidden is None:
            words.append(piece.group())
            size += len(piece.group())
            if size > 4 * EXCERPT:
                break
    return _flat("".join(words))


def no_completion(body: bytes, secret: str | None) -> str | None:
    """Returns what a body that is whole JSON but no chat completion is, in one line; None
    when it is no whole JSON (cut, empty or not JSON at all)."""
    try:
        value = json_value(body.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    start = clip(" ".join(body[:200].decode("utf-8", "replace").split()), 80, secret)
    if isinstance(value, dict) and "choices" in value:
        choices = value["choices"]
        if not isinstance(choices, list) or not choices:
            what = "a completion without choices"
        elif isinstance(first := choices[0], dict) and isinstance(first.get("message"), dict):
            what = "a completion whose message's content is no text"
        else:
            what = "a completion whose first choice has no message"
        return f"the server answered {what}: '{start}'"
    if isinstance(value, dict):
        keys = ", ".join(clip(str(k), 40, secret) for k in list(value)[:6]) or "none"
        what = f"a JSON object with no choices (its keys: {keys})"
    else:
        kinds = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean"}
        what = "JSON null" if value is None else kinds.get(type(value), "a JSON number")
    return f"the server answered {what}, not a chat completion: '{start}' ({URL_HINT})"
