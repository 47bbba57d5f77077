"""What a candidate costs, relative to GELU: counted elementwise operations and measured time.

The lab's `max_cost` bounds both. `count` adds up the elements every (non-view) aten op
produces for one call, divided by the input's size; GELU counts 1, `x * torch.sigmoid(x)`
counts 2. Counting alone does not bound time: one `torch.special.i1` counts 1 and takes
~22x GELU's time, so a chain of them sits under the cap at hundreds of times GELU. So
`time_ratio` also times the candidate's forward and backward pass (what training runs)
against GELU's on the same float32 tensor, interleaved, keeping the fastest of a few
repeats (one thread's CPU time, on CPU), and admission refuses a candidate slower than
TIME_FACTOR x max_cost x GELU.
Measured on a 2-core CPU, forward and backward: the 14 built-ins take 0.4-4x GELU, 60
offline-mutator children at most 6.2x, `torch.special.i0` 10x, `i1` 22x. The factor leaves
room for noise on a shared machine. Admission runs on CPU on every device, so the verdict
does not depend on whether the worker trains on CUDA.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from minact.sandbox.loader import Activation
from minact.sandbox.probe import call, value_and_slope

__all__ = ["TIME_FACTOR", "count", "time_ratio"]

TIME_FACTOR = 2.0
TIME_SHAPE = (8, 256, 32)  # 65536 elements, laid out like a batch of hidden layers
TIME_REPEATS = 5


class _CostCounter(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts elements produced by every non-view aten op, and the largest one."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.elements = 0
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False):
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.elements += t.numel()
                    self.largest = max(self.largest, t.numel())
        return out


def count(fn: Activation, x: torch.Tensor) -> tuple[float, int]:
    """Returns (elements produced per input element, largest single output) of fn(x)."""
    counter = _CostCounter()
    with torch.no_grad(), counter:
        # Guarded like every other call of the candidate: an op that fails only under the
        # counting mode, or a candidate whose result changed since, is its failure, with a
        # reason (CandidateError), never an exception out of admission.
        call(fn, x, "x, counting its operations")
    return counter.elements / x.numel(), counter.largest


def _seconds(fn: Activation, x: torch.Tensor) -> float:
    # This thread's CPU time (torch runs one thread while timing): time spent descheduled on
    # a busy machine, tens of milliseconds at a stretch on a shared 2-core box, is not the
    # candidate's, nor is a sibling thread spinning while it waits.
    start = time.thread_time()
    value_and_slope(fn, x, "x")
    return time.thread_time() - start


def time_ratio(
    fn: Activation, lo: float, hi: float, limit: float, repeats: int = TIME_REPEATS
) -> float:
    """Returns fn's forward+backward time over GELU's on float32 CPU points of [lo, hi],
    the fastest of `repeats` interleaved timings of each.

    Stops early once the candidate is clearly over `limit` (a ratio): a slow candidate
    is not timed five times over.
    """
    n = TIME_SHAPE[0] * TIME_SHAPE[1] * TIME_SHAPE[2]
    x = torch.linspace(lo, hi, n, dtype=torch.float32).reshape(TIME_SHAPE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _seconds(fn, x)  # warm up: first calls allocate and initialise kernels
        _seconds(F.gelu, x)
        ours, gelu = float("inf"), float("inf")
        for i in range(repeats):
            ours = min(ours, _seconds(fn, x))
            gelu = min(gelu, _seconds(F.gelu, x))
            if i >= 1 and ours > 4 * limit * gelu:
                break
    finally:
        torch.set_num_threads(threads)
    return ours / gelu
