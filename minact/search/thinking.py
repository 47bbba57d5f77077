"""Thinking in a reply's text: the `<think>...</think>` block of a reasoning model.

DeepSeek-R1, QwQ and Qwen3 write their reasoning into the content itself when the server
does not split it off (vLLM without a reasoning parser, llama.cpp with
--reasoning-format none); code sketched there is not the answer. Where the chat template
opened the block itself, the reply holds only its `</think>`. Both the stream (sse.py,
which stops at the first whole code block) and the parse of a reply (reply.py) ask here.
"""

from __future__ import annotations

import re
from bisect import bisect_left

__all__ = ["Tags", "answer", "starts_inside"]

_TAG = re.compile(r"<(/?)think(?:ing)?>")
_LONGEST = len("</thinking>")


def answer(text: str) -> str | None:
    """Returns the part of `text` after its thinking (all of it where there is none), or
    None when a thinking block is still open at its end: the reply holds no answer yet."""
    tags = list(_TAG.finditer(text))
    if not tags:
        return text
    if not tags[-1].group(1):  # the last tag opens a block that never closes
        return None
    return text[tags[-1].end() :]


class Tags:
    """The thinking tags of a text that arrives in pieces, each searched once (with the
    few characters before it, where a tag may have been cut)."""

    def __init__(self, inside: bool = False) -> None:
        """`inside`: the text starts within a block (see starts_inside)."""
        self._at: list[int] = [-1] if inside else []  # where each tag starts, in order
        self._opens: list[bool] = [True] if inside else []  # whether it opens a block
        self._tail = ""  # the last characters of the text, where a cut tag may start

    def feed(self, piece: str, start: int) -> None:
        """Notes the tags that `piece`, which starts at `start` in the text, completes."""
        window, base = self._tail + piece, start - len(self._tail)
        for tag in _TAG.finditer(window):
            at = base + tag.start()
            if not self._at or at > self._at[-1]:  # the tail's tags are already noted
                self._at.append(at)
                self._opens.append(not tag.group(1))
        self._tail = window[-(_LONGEST - 1) :]

    def inside(self, position: int) -> bool:
        """Returns whether `position` in the text lies within a thinking block."""
        last = bisect_left(self._at, position) - 1
        return last >= 0 and self._opens[last]


def starts_inside(text: str) -> bool:
    """Returns whether `text` starts within a thinking block: its first tag closes one
    (the chat template opened it, so the model's text never does)."""
    first = _TAG.search(text)
    return first is not None and bool(first.group(1))
