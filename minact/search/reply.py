"""An LLM's reply back to candidate source: text in, source or a reason out.

A reply may hold one fenced python block with `def activation(x)`, SEARCH/REPLACE blocks
against the parent, or unfenced code, after any thinking (`<think>...</think>`: code
sketched there is no answer); anything else is a ParseFailure with a reason. Every
step is bounded in the reply's length: replies are untrusted, and a capped reply of
markers or brackets must not cost minutes.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass

from minact.search import thinking

__all__ = ["ParseFailure", "parse_reply"]

# The opening line's info string holds no backtick (as in CommonMark): a run of backticks
# without a newline is then searched once, not once per backtick (a capped reply of them).
# The blanks and the language are taken whole ((?![...]) after each): the rest of the line
# shares their characters, and each split of a line that never ends was tried in turn,
# quadratic in its length (40 s for ``` and 100,000 letters).
_INFO = r"```[ \t]*(?![ \t])([A-Za-z0-9_+-]*)(?![A-Za-z0-9_+-])"  # the fence, its language
_FENCE = re.compile(_INFO + r"[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
# The lines that open, divide and close a SEARCH/REPLACE block (_diff_blocks).
_SEARCH = re.compile(r"[ \t]*<{5,9} ?SEARCH")
_DIVIDER = re.compile(r"[ \t]*={5,9}")
_REPLACE = re.compile(r"[ \t]*>{5,9} ?REPLACE")
_CODE_LANGS = {"", "python", "py", "python3"}


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A reply that holds no usable candidate, with the reason."""

    reason: str


def _error_line(text: str) -> int | None:
    """Returns None when `text` parses, else the line its syntax error is on (0: unknown)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except SyntaxError as e:
        return e.lineno or 0
    except (ValueError, RecursionError, MemoryError):
        return 0
    return None


def _diff_blocks(text: str) -> list[tuple[str, str]]:
    """Returns the (search, replace) text of each SEARCH/REPLACE block, in order.

    Read line by line, each line once: the markers are lines of their own. (A pattern
    matching a whole block rescans the rest of the reply from every marker, which a reply
    of many markers turns into minutes.)
    """
    blocks: list[tuple[str, str]] = []
    search: list[str] | None = None  # inside a block's SEARCH part
    replace: list[str] | None = None  # inside its REPLACE part
    for line in text.split("\n"):
        if replace is not None:
            if _REPLACE.match(line):
                blocks.append(("\n".join(search or ()), "\n".join(replace)))
                search = replace = None
            else:
                replace.append(line)
        elif search is not None:
            if _DIVIDER.match(line):
                replace = []
            else:
                search.append(line)
        elif _SEARCH.match(line):
            search = []
    return blocks


# Lines of the child that the loose matches of one reply may read in all. Each reads the
# whole child, which an earlier block may have made tens of thousands of lines long: a
# reply of one such block and a thousand loose ones took seconds, and this is milliseconds.
# An honest diff reads a few thousand lines at most.
_LOOSE_LINES = 1 << 18


def _apply_diff(parent: str, blocks: list[tuple[str, str]]) -> str | ParseFailure:
    child = parent
    read = 0  # lines the loose matches have read
    for i, (search, replace) in enumerate(blocks, start=1):
        if search in child:
            child = child.replace(search, replace, 1)
            continue
        # Tolerate differences in trailing spaces and indentation width of whole lines.
        child_lines = child.splitlines()
        read += len(child_lines)
        if read > _LOOSE_LINES:
            return ParseFailure(
                f"diff block {i}: too many blocks whose SEARCH text differs from the code "
                "in its spaces, for code this long; copy the SEARCH text exactly"
            )
        span = _loose_find(child_lines, [ln.strip() for ln in search.splitlines() if ln.strip()])
        if span is None:
            return ParseFailure(f"diff block {i}: the SEARCH text is not in the parent")
        start, end = span
        indent = re.match(r"\s*", child_lines[start]).group(0)  # type: ignore[union-attr]
        new = [indent + ln.strip() if ln.strip() else "" for ln in replace.splitlines()]
        child = "\n".join(child_lines[:start] + new + child_lines[end:])
    return child


def _loose_find(lines: list[str], want: list[str]) -> tuple[int, int] | None:
    """Returns the span of `lines` whose non-blank lines, stripped, are `want`, or None.

    One substring search over the stripped non-blank lines joined: an earlier block may
    have made the child tens of thousands of lines long, and comparing a window at each
    line takes quadratic time (minutes) on it.
    """
    kept = [n for n, ln in enumerate(lines) if ln.strip()]
    if not lines or not want:
        return (0, 0) if lines else None  # blank SEARCH text: insert at the top
    joined = "\n".join(lines[n].strip() for n in kept)
    at = f"\n{joined}\n".find("\n" + "\n".join(want) + "\n")  # whole lines only
    if at < 0:
        return None
    first = joined.count("\n", 0, at)  # the matched line's position among the non-blank
    return kept[first], kept[first + len(want) - 1] + 1


_ONE_DEF = re.compile(r"^def ([A-Za-z_][A-Za-z0-9_]*)\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", re.M)


def _renamed_block(text: str) -> str | None:
    """Returns the last python block with exactly one one-argument def, renamed to activation."""
    for lang, code in reversed(_FENCE.findall(text)):
        if lang.lower() not in _CODE_LANGS:
            continue
        defs = _ONE_DEF.findall(code)
        if len(defs) == 1 and code.count("def ") == 1:
            # Models often name the function after what it does (`def gelu_sine(x)`).
            name = defs[0]
            return re.sub(rf"\b{name}\b", "activation", str(code)).strip("\n") + "\n"
    return None


_UNFENCED_CHARS = 16_000  # twice the limit of the code that runs (validate.MAX_SOURCE_CHARS)
_UNFENCED_TRIES = 64  # prefixes tried, each cut at its syntax error


def parse_reply(text: str, parent_source: str) -> str | ParseFailure:
    """Returns the candidate source in an LLM reply, or a ParseFailure saying why not."""
    if not text.strip():
        return ParseFailure("empty reply")
    answer = thinking.answer(text)
    if answer is None:
        return ParseFailure("the reply ends inside its <think> block: no answer after it")
    if not answer.strip():
        return ParseFailure("the reply is all thinking: nothing after its </think>")
    text = answer
    diffs = _diff_blocks(text)
    if diffs:
        return _apply_diff(parent_source, diffs)
    blocks: list[str] = [
        str(code)
        for lang, code in _FENCE.findall(text)
        if lang.lower() in _CODE_LANGS and "def activation" in code
    ]
    if blocks:
        return blocks[-1].strip("\n") + "\n"  # the last block is the answer, not the quote
    renamed = _renamed_block(text)
    if renamed is not None:
        return renamed
    at = text.find("def activation")
    if at < 0:
        return ParseFailure("no ```python block with `def activation(x)` in the reply")
    # Unfenced code: from the imports before the def, trimmed until it parses.
    start = max(text.rfind("\nimport ", 0, at), text.rfind("\nfrom ", 0, at), -1) + 1
    if start == 0 and not text.startswith(("import ", "from ")):
        start = at
    lines = text[start : at + _UNFENCED_CHARS].splitlines()
    first = next(i for i, line in enumerate(lines) if "def activation" in line) + 1
    body = first
    while body < len(lines) and (not lines[body].strip() or lines[body][0] in " \t"):
        body += 1  # the def's indented body: prose after code is not indented
    # The longest prefix that parses. An error on line n rules out the longer prefixes that
    # hold line n whole, so each try ends there; where errors are found late (a bracket
    # never closed is reported on its own line), the def and its body are tried next.
    end = len(lines)
    for tried in range(_UNFENCED_TRIES):
        if end < first:
            break
        line = _error_line("\n".join(lines[:end]))
        if line is None:
            return "\n".join(lines[:end]).rstrip() + "\n"
        end = min(end - 1, line) if line > 0 else end - 1
        if tried == _UNFENCED_TRIES // 4:
            end = min(end, body)
    return ParseFailure("the reply's `def activation` is not valid Python")
