"""What the evaluator needs from whatever runs its candidates: the `Workers` protocol.

`WorkerClient` (one sandboxed worker process) is the reference implementation; a pool of
local workers or a cluster backend implements the same requests with the same results and
the same rule for failures (only the culprit of a failed batch gets the failure), so the
evaluator, the cache and the numbers never depend on which one ran a candidate.
This module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from minact.sandbox.client import TrainItem, VerifyItem
from minact.score import Admission, TaskResult

__all__ = ["Workers"]


class Workers(Protocol):
    """Typed requests to the process(es) that run candidate code."""

    @property
    def info(self) -> dict[str, Any]:
        """What the worker(s) said of themselves at start (device, torch...); {} before."""
        ...

    @property
    def size(self) -> int:
        """How many candidates it trains at once (workers, devices): callers bring this many
        per request to keep them all busy."""
        ...

    @property
    def running(self) -> bool:
        """Whether at least one worker is alive."""
        ...

    def start(self) -> dict[str, Any]:
        """Starts the worker(s) and returns `info`; raises EvaluationError."""
        ...

    def interrupt(self) -> None:
        """Kills every worker from any thread; later requests raise EvaluationError."""
        ...

    def kill(self) -> None:
        """Kills every worker now."""
        ...

    def stop(self) -> None:
        """Asks every worker to exit (and kills those that do not)."""
        ...

    def admit(
        self,
        sources: Sequence[str],
        probe: tuple[float, float],
        max_cost: float,
        deadline: float,
        seed: int = 0,
    ) -> list[Admission]:
        """Returns the admission verdict of each source, in order."""
        ...

    def train(
        self, items: Sequence[TrainItem], deadline: Callable[[int], float]
    ) -> list[list[TaskResult]]:
        """Returns each item's results, one per task, in order."""
        ...

    def verify(self, items: Sequence[VerifyItem], deadline: float) -> list[tuple[bool, str]]:
        """Returns (match, reason) per item, in order."""
        ...

    def curves(
        self, sources: Sequence[str], grid: tuple[float, float, int], deadline: float
    ) -> list[dict[str, Any] | None]:
        """Returns f and f' data (or {"error": ...}) per source; None where none could be had."""
        ...
