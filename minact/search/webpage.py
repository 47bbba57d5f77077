"""A web page where an API answer was due: a proxy's or nginx's 502 page, a login page,
a welcome page. It is said in one line, by its title or else by a short excerpt of its
text without the markup, never quoted whole.

Bodies are untrusted and may be hostile: every step here is linear in the body's length.
"""

from __future__ import annotations

import html
import re

from minact.untrusted import clip

__all__ = ["summary"]

EXCERPT = 100  # characters of a page's title or text in a reason
_SCAN = 16_384  # characters of the body searched: a page's title and first words are early
# A tag, or else a run of text, or else a lone "<": each character is matched about once.
# The name and the rest of a tag share no character, so a tag never closed is given up in
# one pass, not retried at each split of its characters between the two.
_PIECE = re.compile(r"<(/?)([A-Za-z!?][^<>\s/]*)(?:[\s/][^<>]*)?>|[^<]+|<")
_HIDDEN = {"script", "style"}  # their text is no page text


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
