"""The `minact` command line: parse, call a job, render, exit.

The only package that prints, exits or calls asyncio.run; the work itself is in
minact.jobs. Each command module imports what it needs inside the command, so that
`minact --help` stays fast; torch is never imported in this process at all (the
evaluator's worker process owns it).

Errors: a command turns minact's own errors into one `error:` line and exit code 1
(`_shared.fail`), and a UsageError (a HASH of the wrong form) into typer's usage error,
exit code 2, as for a flag typer refuses. An OSError no command expected (a file that
cannot be written, standard output on a full disk) gets the same one line, with its path
and reason, from the group below, whichever way the commands run (the `minact` script,
`python -m minact`, a test's CliRunner); a closed pipe is left to click, which exits
quietly. Any other exception is a bug and keeps its traceback.

SIGTERM (`kill`, `timeout`, a container stopping) is taken as Ctrl-C: the command unwinds,
so its worker processes are stopped and a run is marked interrupted, not left running.
"""

from __future__ import annotations

import errno
import signal
import sys
import threading
from types import FrameType
from typing import Any

import typer
from typer.core import TyperGroup

from minact.cli import evolve, runs, score
from minact.cli._shared import EXIT_INTERRUPTED, fail_os, note

__all__ = ["app", "main"]


class _Commands(TyperGroup):
    """minact's commands, with the last resort for OSErrors (see the module's docstring)."""

    def invoke(self, ctx: Any) -> Any:
        _tolerant_output()
        main = threading.current_thread() is threading.main_thread()
        before = signal.getsignal(signal.SIGTERM)
        if main:
            signal.signal(signal.SIGTERM, _terminated)
        try:
            result = super().invoke(ctx)
            if sys.stdout is not None:
                sys.stdout.flush()  # so that output that cannot be written fails here
            return result
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise  # `minact ... | head`: click exits 1 without a message
            fail_os(e)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM in a command that keeps nothing
            note("interrupted")
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        finally:
            if main:
                signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


def _tolerant_output() -> None:
    """Lets standard output and error replace what their encoding cannot write (±, —, ←
    under PYTHONIOENCODING=ascii or a Latin-1 locale) instead of failing the command."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # a test's capture may lack it
        if reconfigure is not None and "utf" not in (getattr(stream, "encoding", "") or "").lower():
            reconfigure(errors="replace")


def _terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM's handler while a command runs: unwinds it as Ctrl-C does."""
    raise KeyboardInterrupt


app = typer.Typer(
    cls=_Commands,
    help="Mine activation functions that generalise out of distribution.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for command in (
    evolve.evolve,
    score.score,
    score.seeds,
    score.suites,
    runs.report,
    runs.show,
    runs.rescore,
    runs.export,
):
    app.command()(command)


def main() -> None:
    """Runs the app (for `python -m minact`)."""
    app()
