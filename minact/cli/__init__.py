"""The `minact` command line: parse, call a job, render, exit.

The only package that prints, exits or calls asyncio.run; the work itself is in
minact.jobs. Each command module imports what it needs inside the command, so that
`minact --help` stays fast; torch is never imported in this process at all (the
evaluator's worker process owns it).
"""

from __future__ import annotations

import typer

from minact.cli import evolve, runs, score

__all__ = ["app", "main"]

app = typer.Typer(
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
