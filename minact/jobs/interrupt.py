"""Ctrl-C for a job that runs on an asyncio loop: SIGINT cancels the work, the job goes on.

SIGTERM (what `kill`, `timeout` and container stops send) is handled the same way, so a
stopped run is never left marked running and its worker is never orphaned.

From Python 3.11, `asyncio.run` turns SIGINT into a cancellation of its main task; on 3.10
KeyboardInterrupt unwinds the event loop instead, past any code that would write what the
work had done. `until_interrupted` installs its own SIGINT handler for the time the work
runs, so every version behaves the same: the work is cancelled (its `finally` blocks and
`CancelledError` handlers run), and the caller gets the value it chose for an interruption.

Work that runs on the loop's thread without awaiting (the checks after a search) gives
asyncio's handlers no chance to run: `raising_on_stop_signals` makes both signals raise
KeyboardInterrupt there instead, as SIGINT does in plain Python.

Writing what a job has done (a run's report, then run.json saying how it ended) is short,
and a stop in the middle of it would leave the files disagreeing: `deferring_stop_signals`
lets the first signal wait for it (the job then exits as stopped), and a second one stop
it at once.

This module imports nothing but the standard library, so tests can drive it under every
Python version minact supports.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["DeferredStop", "deferring_stop_signals", "raising_on_stop_signals", "until_interrupted"]

T = TypeVar("T")


async def until_interrupted(work: Coroutine[Any, Any, T], interrupted: Callable[[], T]) -> T:
    """Returns what `work` returns; if SIGINT or SIGTERM arrives first, cancels it and
    returns `interrupted()`. Any other cancellation goes on to the caller."""
    task = asyncio.ensure_future(work)
    by_sigint = False

    def interrupt() -> None:
        nonlocal by_sigint
        by_sigint = True
        task.cancel()

    with _on_stop_signals(interrupt):
        try:
            return await task
        except asyncio.CancelledError:
            if not by_sigint:
                raise
    return interrupted()


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _on_stop_signals(handler: Callable[[], None]) -> Iterator[None]:
    """Calls `handler` on the running loop for each SIGINT or SIGTERM while the block runs;
    the handlers from before it are theirs again after it (asyncio's removal leaves SIGTERM
    ending the process, past the caller's own handling)."""
    loop = asyncio.get_running_loop()
    installed: dict[signal.Signals, Any] = {}
    for sig in _SIGNALS:
        try:
            before = signal.getsignal(sig)
            loop.add_signal_handler(sig, handler)
            installed[sig] = before
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            break
    try:
        yield
    finally:
        for sig, before in installed.items():
            loop.remove_signal_handler(sig)
            if before is not None:  # None: set outside Python, not to be set back from here
                signal.signal(sig, before)


@contextlib.contextmanager
def raising_on_stop_signals() -> Iterator[None]:
    """Makes SIGINT and SIGTERM raise KeyboardInterrupt while the block runs (synchronous
    work: SIGTERM would otherwise end the process before it writes what it did)."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with _handling(stop):
        yield


@contextlib.contextmanager
def _handling(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Makes `handler` the handler of SIGINT and SIGTERM while the block runs."""
    previous: dict[signal.Signals, Any] = {}
    for sig in _SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: the caller's own handling stands
            break
    try:
        yield
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)


class DeferredStop:
    """What `deferring_stop_signals` saw: `requested` once a signal came (or the caller
    set it: one had come before the block), `deferred` when a signal was made to wait."""

    def __init__(self, requested: bool = False) -> None:
        self.requested = requested
        self.deferred = False


@contextlib.contextmanager
def deferring_stop_signals(stop: DeferredStop, on_first: Callable[[], None]) -> Iterator[None]:
    """Makes the first SIGINT or SIGTERM while the block runs wait: it is noted in `stop`
    and `on_first` is called (from the signal handler: it must be short). Any further one,
    or the first when `stop.requested` already, raises KeyboardInterrupt."""

    def defer(signum: int, frame: object) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = stop.deferred = True
        with contextlib.suppress(Exception):  # e.g. a write to stderr that it interrupted
            on_first()

    with _handling(defer):
        yield
