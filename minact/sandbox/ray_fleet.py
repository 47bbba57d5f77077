"""`Fleet`: a request's items spread over Ray actors, with lost actors replaced.

A request's items are cut into chunks of whole candidates, one per actor, and come back
in order. When an actor dies or stops answering (killed, node lost), its chunk goes back
to the queue for another actor while a replacement starts; after a second loss the chunk
is asked item by item, and only an item that loses LOST_LIMIT actors alone gets a
failure, so nothing is lost to a dead actor and one item cannot sink the others.
This module does not import torch.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minact.errors import EvaluationError
from minact.sandbox.client import START_SECONDS
from minact.sandbox.ray_actor import reason

__all__ = ["LOST_LIMIT", "Fleet", "Job"]

LOST_LIMIT = 3  # actor losses a single item may cause before it is failed as crashed
_POLL_SECONDS = 0.5  # how often the dispatch loop looks at interrupts and deadlines


@dataclass(frozen=True, slots=True)
class Job:
    """One request: how to send some of its items to an actor, read the answer, fail one.

    Attributes:
        send: (actor, item indices) -> the Ray object ref of the actor's answer.
        read: the actor's answer -> one decoded result per item sent.
        failed: (item index, why) -> that item's failure, after LOST_LIMIT losses.
        limit: item indices -> seconds an actor may take on them before it counts as lost.
    """

    send: Callable[[Any, list[int]], Any]
    read: Callable[[Any], list[Any]]
    failed: Callable[[int, str], Any]
    limit: Callable[[list[int]], float]


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Some items of one request, and how many actors were lost serving them."""

    indices: list[int]
    lost: int = 0


class Fleet:
    """The started actors of one RayWorkers, and replacements for those lost."""

    def __init__(
        self,
        ray: Any,
        actors: list[Any],
        new_actor: Callable[[], Any],
        check: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        """`new_actor` creates an actor; `check` raises EvaluationError for a start info
        that must not join (another torch version, say)."""
        self._ray = ray
        self._new_actor = new_actor
        self._check = check
        self._lock = threading.Lock()
        self.actors = list(actors)
        self.starting: dict[Any, Any] = {}  # start ref -> replacement actor not yet checked
        self.interrupted = False
        self._failed_start = ""  # why the last replacement could not start

    def kill(self) -> None:
        """Kills every actor, started or starting; safe from any thread."""
        with self._lock:
            doomed = [*self.actors, *self.starting.values()]
            self.actors, self.starting = [], {}
        for actor in doomed:
            self._kill(actor)

    def _kill(self, actor: Any) -> None:
        try:
            self._ray.kill(actor, no_restart=True)
        except Exception:  # already gone: nothing to kill
            pass

    def spread(self, n: int, job: Job) -> list[Any]:
        """Returns the results of items 0..n-1, in order; raises EvaluationError when
        interrupted, when an actor's own code fails, or when no actor is left."""
        ray = self._ray
        size = math.ceil(n / max(1, len(self.actors)))
        pending = collections.deque(
            _Chunk(list(range(s, min(n, s + size)))) for s in range(0, n, size)
        )
        results: list[Any] = [None] * n
        idle = list(self.actors)
        busy: dict[Any, tuple[Any, _Chunk, float]] = {}  # ref -> (actor, chunk, give up at)
        while pending or busy:
            if self.interrupted:
                raise EvaluationError("evaluation interrupted")
            while pending and idle:
                actor, chunk = idle.pop(), pending.popleft()
                until = time.monotonic() + job.limit(chunk.indices)
                busy[job.send(actor, chunk.indices)] = (actor, chunk, until)
            if not busy and not self.starting:
                why = f" ({self._failed_start})" if self._failed_start else ""
                raise EvaluationError(f"every Ray actor was lost and none could be replaced{why}")
            waiting = [*busy, *self.starting]
            ready, _ = ray.wait(waiting, num_returns=1, timeout=_POLL_SECONDS)
            if self.interrupted:  # its actors were killed: no losses to replace
                raise EvaluationError("evaluation interrupted")
            for ref in ready:
                if ref in self.starting:
                    idle += self._started(ref)
                    continue
                actor, chunk, _ = busy.pop(ref)
                try:
                    answers = job.read(ray.get(ref))
                except ray.exceptions.RayActorError as e:
                    self._lost(actor, chunk, reason(e), pending, results, job)
                    continue
                except ray.exceptions.RayTaskError as e:
                    raise EvaluationError(f"a Ray actor failed: {reason(e)}") from None
                if len(answers) != len(chunk.indices):
                    raise EvaluationError(
                        f"a Ray actor answered {len(answers)} results for {len(chunk.indices)}"
                    )
                for i, r in zip(chunk.indices, answers, strict=True):
                    results[i] = r
                idle.append(actor)
            now = time.monotonic()
            for ref, (actor, chunk, until) in list(busy.items()):
                if now > until:  # the actor hangs, or its node is unreachable
                    del busy[ref]
                    why = "its Ray actor did not answer in time"
                    self._lost(actor, chunk, why, pending, results, job)
        return results

    def _lost(
        self,
        actor: Any,
        chunk: _Chunk,
        why: str,
        pending: collections.deque[_Chunk],
        results: list[Any],
        job: Job,
    ) -> None:
        """Puts a lost actor's chunk back in the queue (item by item after a second loss,
        failed after LOST_LIMIT alone) and starts a replacement actor."""
        self._kill(actor)
        with self._lock:
            if actor in self.actors:
                self.actors.remove(actor)
        lost = chunk.lost + 1
        if len(chunk.indices) == 1 and lost >= LOST_LIMIT:
            i = chunk.indices[0]
            results[i] = job.failed(i, f"lost {lost} Ray actors: {why}")
        elif lost >= 2 and len(chunk.indices) > 1:
            pending.extendleft(_Chunk([i], lost) for i in reversed(chunk.indices))
        else:
            pending.appendleft(_Chunk(chunk.indices, lost))
        replacement = self._new_actor()
        with self._lock:
            self.starting[replacement.start.remote()] = replacement

    def _started(self, ref: Any) -> list[Any]:
        """Returns [the replacement actor behind a finished start] once it is checked, or []
        when it could not start (no room or node left for it); raises EvaluationError for
        one on a node that must not join."""
        with self._lock:
            actor = self.starting.pop(ref, None)
        if actor is None:  # killed meanwhile
            return []
        try:
            self._check(self._ray.get(ref, timeout=START_SECONDS))
        except EvaluationError:
            self._kill(actor)
            raise
        except Exception as e:
            self._failed_start = reason(e)
            self._kill(actor)
            return []
        with self._lock:
            self.actors.append(actor)
        return [actor]
