"""The main process's side of the worker protocol: typed requests, one rule for failures.

`WorkerClient` starts a worker (process.py), says hello, and sends it batches of
candidates to probe, train or draw. One rule covers every request: when the worker fails
on a batch (past its deadline, crashed, or answered something malformed), it is killed
and restarted, and the batch is asked again one item at a time, so only the culprit gets
the failure (`_each_alone`). This module does not import torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from minact.candidate import Status
from minact.curves import parse_curve
from minact.errors import EvaluationError
from minact.lab.task import Task
from minact.sandbox.process import (
    OUT_OF_MEMORY,
    STOPPED,
    WorkerCrashed,
    WorkerProcess,
    WorkerTimeout,
)
from minact.score import Admission, TaskResult

__all__ = ["START_SECONDS", "TrainItem", "VerifyItem", "WorkerClient", "WorkerSettings"]

START_SECONDS = 300.0  # interpreter start, torch import and CUDA initialisation

T = TypeVar("T")
R = TypeVar("R")


class _Refused(Exception):
    """The worker answered {"ok": false} to a request it should have served; `memory`: it
    said memory ran out (no verdict on the code, which a later call retries); `broken`: its
    CUDA context can no longer run anything, and it was replaced."""

    def __init__(self, message: str, memory: bool = False, broken: bool = False) -> None:
        super().__init__(message)
        self.memory = memory
        self.broken = broken


# What makes a batch worth asking again item by item.
_BATCH_FAILURES = (WorkerTimeout, WorkerCrashed, _Refused, KeyError, TypeError, ValueError)


def _default_memory_bytes() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
    return max(4 << 30, total // 2)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker process runs.

    Attributes:
        device: "auto" (CUDA when available), "cpu" or "cuda".
        compile: "auto" (torch.compile on CUDA only), "on" or "off".
        threads: torch threads in the worker (0: torch's default, all cores).
        memory_bytes: address-space cap of a CPU worker (0: half the machine's memory).
        visible_devices: CUDA_VISIBLE_DEVICES of the worker (None: the parent's).
    """

    device: str = "auto"
    compile: str = "auto"
    threads: int = 0
    memory_bytes: int = field(default_factory=_default_memory_bytes)
    visible_devices: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyItem:
    """A candidate source to check against the reference source at training's pre-activations."""

    source: str
    reference: str
    points: tuple[float, ...]
    seed: int = 0  # from the cache's salt: places the dense check (minact.sandbox.verify)


@dataclass(frozen=True, slots=True)
class TrainItem:
    """One candidate source to train on some tasks (all seeds of each)."""

    source: str
    tasks: tuple[Task, ...]


class WorkerClient:
    """Typed requests to one worker process, restarted as needed."""

    def __init__(self, home: Path, settings: WorkerSettings) -> None:
        self.settings = settings
        self.info: dict[str, Any] = {}  # what the worker said of itself at hello
        self._process = WorkerProcess(home, settings.threads, devices=settings.visible_devices)
        self._interrupted = False

    @property
    def size(self) -> int:
        """Returns how many candidates it trains at once: one worker, one request."""
        return 1

    @property
    def running(self) -> bool:
        """Returns whether the worker process is alive."""
        return self._process.running

    def interrupt(self) -> None:
        """Kills the worker from any thread; later requests raise EvaluationError."""
        self._interrupted = True
        self._process.kill()

    def kill(self) -> None:
        """Kills the worker process now."""
        self._process.kill()

    def stop(self) -> None:
        """Asks the worker to exit (and kills it if it does not)."""
        self._process.stop()

    def start(self) -> dict[str, Any]:
        """Starts a worker and returns what it says of itself; raises EvaluationError."""
        if self._interrupted:
            raise EvaluationError("evaluation interrupted")
        s = self.settings
        hello = {
            "op": "hello",
            "device": s.device,
            "compile": s.compile,
            "threads": s.threads,
            "memory_bytes": s.memory_bytes,
        }
        try:
            self._process.start()
            if self._interrupted:
                # interrupt() came (from another thread) while this process was started,
                # and may have killed the previous one instead: no process outlives it.
                self._process.kill()
                raise EvaluationError("evaluation interrupted")
            reply = self._process.request(hello, START_SECONDS)
        except (WorkerTimeout, WorkerCrashed) as e:
            tail = self._process.stderr_tail()
            raise EvaluationError(f"the evaluation worker did not start: {e}\n{tail}") from None
        if not reply.get("ok"):
            self._process.kill()
            raise EvaluationError(f"the evaluation worker refused to start: {reply.get('error')}")
        self.info = {
            k: reply.get(k) for k in ("device", "device_name", "compile", "torch", "threads")
        }
        return self.info

    # requests ------------------------------------------------------------------------

    def admit(
        self,
        sources: Sequence[str],
        probe: tuple[float, float],
        max_cost: float,
        deadline: float,
        seed: int = 0,
    ) -> list[Admission]:
        """Returns the admission verdict of each source (a failure for a batch's culprit).

        `seed` places the probe points no source can predict (derived from the cache's salt).
        """

        def ask(batch: list[str]) -> list[Admission]:
            msg = {"op": "admit", "probe": list(probe), "max_cost": max_cost, "seed": seed}
            reply = self._ask({**msg, "items": [{"source": s} for s in batch]}, deadline)
            return _exactly(batch, [Admission.from_dict(d) for d in reply["results"]])

        def failed(_: str, e: Exception) -> Admission:
            kind: Status = "timeout" if isinstance(e, WorkerTimeout) else "crashed"
            return Admission(kind, f"probing the activation: {e}")

        return _each_alone(list(sources), ask, failed)

    def train(
        self, items: Sequence[TrainItem], deadline: Callable[[int], float]
    ) -> list[list[TaskResult]]:
        """Returns each item's results, one per task; a culprit's tasks all get its failure.

        `deadline(n)` is the wall-clock limit of a request that trains n (item, task) pairs.
        """

        def ask(batch: list[TrainItem]) -> list[list[TaskResult]]:
            msg = {
                "op": "train",
                "items": [
                    {"source": i.source, "tasks": [t.to_dict() for t in i.tasks]} for i in batch
                ],
            }
            reply = self._ask(msg, deadline(sum(len(i.tasks) for i in batch)))
            results = _exactly(batch, reply["results"])
            out = [[TaskResult.from_dict(d) for d in item] for item in results]
            for item, got in zip(batch, out, strict=True):
                _exactly(list(item.tasks), got)  # a missing result would misalign the rest
            return out

        def failed(item: TrainItem, e: Exception) -> list[TaskResult]:
            if isinstance(e, WorkerTimeout):
                limit = deadline(len(item.tasks))
                why = f": {STOPPED}" if STOPPED in str(e) else ""
                failure = TaskResult(
                    "timeout", f"training did not finish within {limit:.3g} s{why}"
                )
            elif isinstance(e, _Refused) and e.memory:
                failure = TaskResult("crashed", f"training {OUT_OF_MEMORY}: {e}"[:500])
            elif isinstance(e, _Refused) and e.broken:
                # Alone, in a fresh worker, it broke the context again: its own doing.
                failure = TaskResult("crashed", f"training: {e}"[:500])
            elif isinstance(e, _Refused):
                failure = TaskResult("error", str(e)[:500])
            else:
                failure = TaskResult("crashed", f"training: {e}")
            return [failure for _ in item.tasks]

        return _each_alone(list(items), ask, failed)

    def verify(self, items: Sequence[VerifyItem], deadline: float) -> list[tuple[bool, str]]:
        """Returns (match, reason) per item: does its source compute its reference's f and f'
        at the trace points? A candidate the worker fails on does not match."""

        def ask(batch: list[VerifyItem]) -> list[tuple[bool, str]]:
            msg = {
                "op": "verify",
                "items": [
                    {
                        "source": i.source,
                        "reference": i.reference,
                        "points": list(i.points),
                        "seed": i.seed,
                    }
                    for i in batch
                ],
            }
            results = _exactly(batch, self._ask(msg, deadline)["results"])
            return [(bool(d["match"]), str(d.get("reason", ""))) for d in results]

        def failed(_: VerifyItem, e: Exception) -> tuple[bool, str]:
            kind = "timed out" if isinstance(e, WorkerTimeout) else "failed"
            return False, f"verification {kind}: {e}"[:500]

        return _each_alone(list(items), ask, failed)

    def curves(
        self, sources: Sequence[str], grid: tuple[float, float, int], deadline: float
    ) -> list[dict[str, Any] | None]:
        """Returns f and f' data (or {"error": ...}) per source; None where none could be had."""
        lo, hi, n = grid

        def ask(batch: list[str]) -> list[dict[str, Any] | None]:
            msg = {"op": "curves", "lo": lo, "hi": hi, "n": n}
            reply = self._ask({**msg, "items": [{"source": s} for s in batch]}, deadline)
            results = _exactly(batch, reply["results"])
            for d in results:  # check now, so that nothing malformed is cached
                if not isinstance(d, dict) or ("error" not in d and parse_curve(d) is None):
                    raise ValueError("malformed curve")
            return [dict(d) for d in results]

        return _each_alone(list(sources), ask, lambda _, __: None)

    def _ask(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self._interrupted:
            raise EvaluationError("evaluation interrupted")
        if not self._process.running:
            self.start()
        try:
            reply = self._process.request(msg, timeout)
        except (WorkerTimeout, WorkerCrashed):
            # Killed by interrupt(): no verdict on the candidates, so none may be cached as
            # a crash (a second Ctrl-C on the same candidate would make it final) or as a
            # failed verification (a collision, for good).
            if self._interrupted:
                raise EvaluationError("evaluation interrupted") from None
            raise
        if not reply.get("ok"):
            broken = reply.get("broken") is True
            if broken:
                # The worker exits after saying so; reaped now, so that the next request
                # starts a fresh one instead of finding the old one on its way out.
                self._process.kill()
            error = f"the worker refused the request: {reply.get('error')}"
            raise _Refused(error, memory=reply.get("memory") is True, broken=broken)
        return reply


def _exactly(items: Sequence[Any], results: Any) -> list[Any]:
    """Returns `results` as a list with one entry per item; raises ValueError otherwise."""
    if not isinstance(results, list) or len(results) != len(items):
        got = len(results) if isinstance(results, list) else "no"
        raise ValueError(f"the worker answered {got} results for {len(items)} items")
    return results


def _each_alone(
    items: list[T], ask: Callable[[list[T]], list[R]], failed: Callable[[T, Exception], R]
) -> list[R]:
    """Returns `ask(items)`; if the worker fails on the batch, asks for each item alone, so
    that only the item it fails on alone gets `failed(item, error)`."""
    try:
        return ask(items)
    except _BATCH_FAILURES as e:
        if len(items) == 1:
            return [failed(items[0], e)]
    return [r for item in items for r in _each_alone([item], ask, failed)]
