"""Text a server chose (error messages, data lines, model ids), made fit for a message.

A server may send anything: ESC sequences that clear the terminal or retitle its window,
newlines that forge log lines, an echo of the API key. What it says reaches a reason, an
error, a run's files or the terminal only through `clip` (or `printable` and `scrub`).
"""

from __future__ import annotations

import re

__all__ = ["clip", "printable", "printable_lines", "printable_text", "scrub", "writable"]

# C0 and C1 controls, DEL, line separators, bidirectional marks and overrides, and the
# invisible characters (zero-width space and joiners, word joiner, invisible operators,
# soft hyphen, BOM): none may reach a terminal or a report as they are (ESC sequences clear
# screens and retitle windows; RLO and zero-width characters make text read as other text).
# Lone surrogates (a JSON escape like \ud800) cannot be written as UTF-8 at all.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]"
)
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def writable(text: str) -> str:
    """Returns `text` with each lone surrogate replaced by U+FFFD, so that it encodes as UTF-8.

    JSON may escape half a character (`"\\ud800"`): such a reply, sent back to the server
    in a follow-up or written to a report, would fail there, far from where it came in.
    """
    return _SURROGATE.sub("\ufffd", text)


def printable(text: str) -> str:
    """Returns `text` on one line with its control characters escaped (ESC becomes \\x1b)."""

    def escape(m: re.Match[str]) -> str:
        c = m.group()
        return _ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _UNSAFE.sub(escape, text)


def printable_lines(text: str) -> str:
    """Returns `text` (trailing whitespace dropped) with each line's control characters
    escaped as `printable` does, its line breaks kept."""
    return "\n".join(printable(line) for line in text.rstrip().split("\n"))


def printable_text(text: str) -> str:
    """Returns `text` with each line's control characters escaped as `printable` does, its
    line breaks (\\n, and \\r\\n as \\n) kept and nothing stripped: for a block of code or
    a reply shown as it is, and for every value a report renders."""
    return "\n".join(printable(line) for line in text.replace("\r\n", "\n").split("\n"))


def scrub(secret: str | None, text: str) -> str:
    """Returns `text` with `secret` masked as ***, and also any start of it (8 characters or
    more) just before a cut (…), where a clipped echo of the key ends."""
    if not secret:
        return text
    text = text.replace(secret, "***")
    if "…" in text:
        for k in range(len(secret) - 1, 7, -1):
            text = text.replace(secret[:k] + "…", "***…")
    return text


def clip(text: str, limit: int = 300, secret: str | None = None) -> str:
    """Returns server-chosen `text` fit for a one-line reason: the secret masked first, then
    control characters escaped, then cut to `limit` characters."""
    text = printable(scrub(secret, text))
    return text if len(text) <= limit else scrub(secret, text[:limit] + "…")
