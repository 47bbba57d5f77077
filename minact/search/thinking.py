"""Thinking in a reply's text: the `<think>...</think>` block of a reasoning model.

DeepSeek-R1, QwQ and Qwen3 write their reasoning into the content itself when the server
does not split it off (vLLM without a reasoning parser, llama.cpp with
--reasoning-format none); code sketched there is not the answer. Where the chat template
opened the block itself, the reply holds only its `</think>`: until a client has seen a
reply, it cannot know whether its replies start inside a block, and the first tag of each
reply tells. Both the stream (sse.py, which stops at the first whole code block) and the
parse of a reply (reply.py) ask here.
"""

from __future__ import annotations

import re
from bisect import bisect_left

__all__ = ["OPEN", "Tags", "answer", "made_explicit", "revised", "template_opens"]

OPEN = "<think>"
_TAG = re.compile(r"<(/?)think(?:ing)?>")
_LONGEST = len("</thinking>")
_UNFINISHED = ("length", "cap", "truncated")  # finish reasons of a reply cut short


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

    def __init__(self, inside: bool | None = False) -> None:
        """`inside`: the text starts within a block (see template_opens); None: not known
        yet (no reply from this server seen), and the text's first tag will tell."""
        self._at: list[int] = [-1] if inside else []  # where each tag starts, in order
        self._opens: list[bool] = [True] if inside else []  # whether it opens a block
        self._known = inside is not None
        self._tail = ""  # the last characters of the text, where a cut tag may start

    def feed(self, piece: str, start: int) -> None:
        """Notes the tags that `piece`, which starts at `start` in the text, completes."""
        window, base = self._tail + piece, start - len(self._tail)
        for tag in _TAG.finditer(window):
            at = base + tag.start()
            if not self._known:
                # The first tag tells: a close means the template opened the block, and
                # the text before it was thinking too.
                self._known = True
                if tag.group(1):
                    self._at.append(-1)
                    self._opens.append(True)
            if not self._at or at > self._at[-1]:  # the tail's tags are already noted
                self._at.append(at)
                self._opens.append(not tag.group(1))
        self._tail = window[-(_LONGEST - 1) :]

    def inside(self, position: int) -> bool:
        """Returns whether `position` in the text lies (or may yet turn out to lie) within a
        thinking block: before the first tag of a text not known to start outside one, a
        later `</think>` may still show that it did."""
        if not self._known:
            return True
        last = bisect_left(self._at, position) - 1
        return last >= 0 and self._opens[last]


def template_opens(text: str, finish_reason: str) -> bool | None:
    """Returns whether the chat template opens a thinking block, as reply `text` shows:
    True when its first tag closes one, False when its first tag opens one or it has none
    and finished of itself; None when it cannot tell (no tag in a reply cut short)."""
    first = _TAG.search(text)
    if first is not None:
        return bool(first.group(1))
    return None if finish_reason in _UNFINISHED else False


def revised(known: bool | None, text: str, finish_reason: str) -> tuple[bool, bool | None]:
    """Returns whether reply `text` is to be read as started inside a block its chat
    template opened, where earlier replies showed `known` (see template_opens), and what is
    known of the template after it: learnt from the first reply that tells, and unlearnt
    by a reply that ended of itself (finish_reason "stop") without any tag."""
    if known is None:
        return False, template_opens(text, finish_reason)
    if known and finish_reason == "stop" and _TAG.search(text) is None:
        # A template that opens a block gets a </think> in every reply that answers: a
        # first reply that began with one was odd, not this one, which read as all thinking
        # gave no code, and so did every later one. It is read as it is, and the next
        # reply (read whole, as a first one is) tells again.
        return False, None
    return known, known


def made_explicit(text: str, started_inside: bool) -> str:
    """Returns `text` with the opening tag its chat template wrote (`started_inside`, or
    a first tag that closes) put back at its start: the reply then reads the same to
    every later reader (the parse, a cut reply's check, a replay of a recorded run),
    which does not know the server. A reply that started inside a block and never
    closed it is then all thinking, and said so."""
    first = _TAG.search(text)
    if first is not None and not first.group(1):  # it opens its own block
        return text
    return OPEN + text if started_inside or first is not None else text
