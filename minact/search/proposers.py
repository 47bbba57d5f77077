"""Where new candidates come from: an LLM, the offline mutator, or a recorded run.

Each proposer turns a ProposalRequest (parents, prompt, the proposal's own random
generator) into a Reply: text that should hold a ```python block with
`def activation(x)`. Expected failures (an LLM that stays unreachable after its
retries, a replay without that proposal) are Replies with `error` set, never
exceptions: the search counts them.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from minact.errors import ConfigError, LLMError
from minact.lab.files import FileRefused, open_regular, read_regular
from minact.outcome import Reply
from minact.search import thinking
from minact.search.mutate import Mutator
from minact.search.population import Member
from minact.search.summary import Stop

__all__ = [
    "LLMProposer",
    "OfflineProposer",
    "ProposalRequest",
    "Proposer",
    "RecordingProposer",
    "ReplayProposer",
    "load_recording",
    "load_replay",
    "replay_end",
]

MAX_REPLAY_BYTES = 1 << 28  # a record of thousands of exchanges is a few tens of MB

Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class ProposalRequest:
    """What a proposer gets for proposal `index`.

    Attributes:
        model: the ensemble's model drawn for this proposal (None: the only one).
        turn: 0 for the opening request, n for the n-th follow-up in its conversation.
        sampling_seed: the seed an LLM server samples this exchange's reply with (None:
            the server's own), derived from the run's seed, the index and the turn.
    """

    index: int
    parent: Member
    other: Member | None
    messages: list[Message]
    rng: random.Random
    model: str | None = None
    turn: int = 0
    sampling_seed: int | None = None


class Proposer(Protocol):
    """Anything that answers proposal requests."""

    kind: str

    async def propose(self, request: ProposalRequest) -> Reply:
        """Returns a reply for `request`."""
        ...


class OfflineProposer:
    """Expression-level mutation and crossover of the parents; needs no server."""

    kind = "offline"

    async def propose(self, request: ProposalRequest) -> Reply:
        """Returns a mutated child of the request's parent as a fenced block."""
        # The mutator picks crossover among its operators when a second parent is given.
        other = request.other.score.source if request.other else None
        mutation = Mutator(request.rng).mutate(request.parent.score.source, other)
        return Reply(f"```python\n{mutation.source}\n```", note=mutation.description)


class Completer(Protocol):
    """The part of llm.LLMClient the search needs (kept abstract: no httpx here)."""

    async def complete(self, messages: Sequence[Message], *, seed: int | None = None) -> Any:
        """Returns a completion with text, finish_reason, token counts, latency, the time to
        its first token and the reasons of the attempts that failed before it; `seed` is
        the sampling seed to ask for."""
        ...


# Why a reply has no text, by the finish_reason that says so.
_NO_TEXT = {
    "tool_calls": "the model answered with a tool call instead of text (minact offers no tools)",
    "function_call": "the model answered with a function call instead of text",
    "content_filter": "the server's content filter stopped the reply before any text",
}


class LLMProposer:
    """Asks an OpenAI-compatible server (through llm.LLMClient) for a child."""

    kind = "llm"

    def __init__(self, client: Completer) -> None:
        self.client = client

    async def propose(self, request: ProposalRequest) -> Reply:
        """Returns the model's reply to the request's prompt, or the error after retries."""
        start = time.monotonic()
        try:
            c = await self.client.complete(request.messages, seed=request.sampling_seed)
        except LLMError as e:
            # A failed call cost its attempts and waits too (up to --llm-timeout): the run's
            # LLM time and each model's seconds count it.
            return Reply("", error=str(e), latency=time.monotonic() - start)
        error = None
        # Cut at --max-tokens before any content or any answer after the <think> block
        # (reasoning took it all): no follow-up can help. A reply cut later is judged as it
        # is, and its verdict says it was cut (Conversation.verdict), so the follow-up asks
        # for something shorter.
        if c.finish_reason == "length" and not (thinking.answer(c.text) or "").strip():
            thought = c.reasoning_chars + len(c.text.strip())
            where = "answer after its thinking" if c.text.strip() else "content"
            error = f"the reply was cut at --max-tokens (finish_reason length) before any {where}"
            error += f" ({thought} characters went to reasoning)" if thought else ""
        elif not c.text.strip() and c.finish_reason in _NO_TEXT:
            # Said as it is: an "empty reply" parse failure would blame the model's code.
            error = f"{_NO_TEXT[c.finish_reason]} (finish_reason {c.finish_reason})"
        return Reply(
            "" if error else c.text,
            error=error,
            note=f"llm finish={c.finish_reason}",
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            usage_reported=c.usage_reported,
            latency=c.latency,
            attempts=c.attempts,
            first_token=c.first_token,
            retry_reasons=tuple(c.retry_reasons),
        )


class RecordingProposer:
    """Wraps a proposer and appends every exchange to a JSON-lines file (`--record`)."""

    def __init__(self, inner: Proposer, path: Path) -> None:
        """Raises ConfigError naming `path` when it is there and cannot take records: no
        regular file (a folder, a FIFO, a link to a device), or not to be opened to append."""
        self.inner = inner
        self.kind = inner.kind
        self.path = path
        self._mended = False
        if os.path.lexists(path):  # refused now, before a reply is paid for and then lost
            os.close(self._open())

    def _open(self) -> int:
        """Returns a descriptor of the recording, open to append (and read: `_mend`); raises
        ConfigError."""
        try:
            return open_regular(self.path, append=True)
        except FileRefused as e:  # a folder, a FIFO, a link to a device
            raise ConfigError(f"--record: cannot write {self.path}: it {e}; move it away") from None
        except OSError as e:
            raise ConfigError(f"--record: cannot write {self.path}: {e.strerror or e}") from None

    def _mend(self, fd: int) -> None:
        """Drops the cut record a killed recording left at the end of the file (if any)."""
        # The next record would be glued to it, and the file refused by --replay for good.
        # Only the end is read: a recording of a long run is large.
        self._mended = True
        size = end = os.fstat(fd).st_size
        if not size or os.pread(fd, 1, size - 1) == b"\n":
            return
        while end > 0:
            start = max(0, end - (1 << 16))
            cut = os.pread(fd, end - start, start).rfind(b"\n")
            if cut >= 0:
                os.ftruncate(fd, start + cut + 1)
                return
            end = start
        os.ftruncate(fd, 0)  # one cut record and nothing else

    async def propose(self, request: ProposalRequest) -> Reply:
        """Returns the inner proposer's reply, after recording it."""
        reply = await self.inner.propose(request)
        record = {
            "index": request.index,
            "turn": request.turn,
            "sampling_seed": request.sampling_seed,
            "messages": request.messages,
            "reply": reply.to_dict(),
        }
        with open(self._open(), "a", encoding="utf-8") as f:
            if not self._mended:
                self._mend(f.fileno())
            f.write(json.dumps(record, sort_keys=True) + "\n")
        return reply


class ReplayProposer:
    """Serves the replies of a recorded run by proposal index and turn (`--replay`).

    With what each exchange asked (`asked`: its messages and sampling seed, as recorded),
    a request that asks something else is found: the replay no longer repeats the recorded
    run (another seed, concurrency or lab, an edited or reordered file). Its reply is still
    served, but the first such request is said through `say` and kept in `diverged`.
    """

    kind = "replay"

    def __init__(
        self,
        replies: dict[tuple[int, int], Reply],
        asked: dict[tuple[int, int], Asked] | None = None,
        say: Callable[[str], None] = lambda _: None,
        name: str = "the replay file",
    ) -> None:
        self.replies = replies
        self.asked = asked or {}
        self.say = say
        self.name = name
        self.diverged: str | None = None  # the first request that differs from the recording
        self.last = max((index for index, _ in replies), default=-1)  # its last proposal

    async def propose(self, request: ProposalRequest) -> Reply:
        """Returns the recorded reply for the request's index and turn."""
        where = f"proposal {request.index}"
        where += f", follow-up {request.turn}" if request.turn else ""
        reply = self.replies.get((request.index, request.turn))
        if reply is None:
            return Reply("", error=f"the replay file has no reply for {where}")
        recorded = self.asked.get((request.index, request.turn))
        if self.diverged is None and recorded is not None:
            what = _difference(recorded, (request.messages, request.sampling_seed))
            if what is not None:
                # Replies are served by number: past this, they answer other questions.
                self.diverged = (
                    f"{self.name} is not repeated from {where} on: it asks {what} than the"
                    " recorded run did (another --seed, --concurrency, --islands or lab, or"
                    " an edited file?); the recorded replies are served by proposal number,"
                    " so the candidates and ranking may differ from the recorded run's"
                )
                self.say(f"warning: {self.diverged}")
        return reply


Asked = tuple[list[Message], int | None]  # a recorded exchange's messages and sampling seed


def replay_end(proposer: Proposer, index: int) -> Stop | None:
    """Returns the stop of a replay (`--replay`, recorded again or not) whose recording
    holds no proposal `index` nor any later one: the recorded run asked no more, and each
    proposal after it would fail for want of a reply. None for any other proposer or index."""
    inner = proposer.inner if isinstance(proposer, RecordingProposer) else proposer
    if not isinstance(inner, ReplayProposer) or index <= inner.last:
        return None
    why = f"{inner.name} ends after proposal {inner.last}: the recorded run asked no more"
    return "replay_ended", why + "; its candidates are scored"


def _difference(recorded: Asked, asked: Asked) -> str | None:
    """Returns what a request asks otherwise than the recorded one (None: the same)."""
    if recorded[0] != asked[0]:
        return "another prompt"
    if recorded[1] != asked[1]:
        return "another sampling seed"
    return None


def load_replay(path: Path) -> dict[tuple[int, int], Reply]:
    """Returns {(proposal index, turn): reply} from a `--record` file; raises ConfigError."""
    return load_recording(path)[0]


def load_recording(
    path: Path,
) -> tuple[dict[tuple[int, int], Reply], dict[tuple[int, int], Asked]]:
    """Returns the replies of a `--record` file by (proposal index, turn), and what each
    exchange asked (where the record holds its messages); raises ConfigError.

    Every line is checked before the run starts (Reply.from_dict checks each field), so a
    line of the wrong shape is refused with its number and what is wrong with it.
    """
    replies: dict[tuple[int, int], Reply] = {}
    asked: dict[tuple[int, int], Asked] = {}
    try:
        text = read_regular(path, MAX_REPLAY_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError, FileRefused) as e:
        raise ConfigError(f"--replay {path}: cannot read it ({e})") from None
    lines = text.split("\n")  # JSON lines: a reply's U+2028 is no line break
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as e:
            if n == len(lines) and not isinstance(e, RecursionError):
                continue  # no newline after it: the record a killed run was cut writing
            raise ConfigError(
                f"--replay {path}: line {n} is not a recorded exchange ({e})"
            ) from None
        try:
            key = _replay_key(record)
            replies[key] = Reply.from_dict(record["reply"])
            messages, seed = record.get("messages"), record.get("sampling_seed")
            if isinstance(messages, list) and (seed is None or type(seed) is int):
                asked[key] = (messages, seed)
        except KeyError as e:
            raise ConfigError(
                f"--replay {path}: line {n} is not a recorded exchange (it has no {e})"
            ) from None
        except (ValueError, TypeError, OverflowError, RecursionError) as e:
            raise ConfigError(
                f"--replay {path}: line {n} is not a recorded exchange ({e})"
            ) from None
    if not replies:
        raise ConfigError(f"--replay {path}: no recorded exchanges")
    return replies, asked


def _replay_key(record: object) -> tuple[int, int]:
    """Returns a recorded exchange's (index, turn); raises TypeError or ValueError."""
    if not isinstance(record, dict):
        raise TypeError(f"a line must be a JSON object, got {type(record).__name__}")
    key = []
    for name, value in (("index", record["index"]), ("turn", record.get("turn", 0))):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name!r} must be an integer, got {value!r:.60}")
        if value < 0:
            raise ValueError(f"{name!r} must be >= 0, got {value!r}")
        key.append(value)
    return key[0], key[1]
