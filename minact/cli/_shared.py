"""What the commands share: consoles, error output, option types, the ranking table.

Private to minact.cli: the command modules import from here, never from each other.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from minact.errors import MinactError, UsageError
from minact.jobs.preflight import in_the_way
from minact.numbers import number_text
from minact.untrusted import printable, printable_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from minact.agreement import LabAgreement
    from minact.runs.ranking import RankingDocument

# Messages carry user text ("[lab]", "[[task]]", "[lo, hi]"): never read it as rich markup.
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)

EXIT_INTERRUPTED = 130
MAX_SEEDS = 100  # networks per task a flag may ask: as many as a lab file (lab.checks)


class Device(str, Enum):
    """Where candidates train."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Compile(str, Enum):
    """Whether the training step runs under torch.compile."""

    auto = "auto"
    on = "on"
    off = "off"


class Backend(str, Enum):
    """What runs the worker processes."""

    local = "local"
    ray = "ray"


BACKEND_HELP = (
    "Where candidates run: local (a worker process on this machine) or ray (one per Ray "
    "actor on a cluster; needs minact's extra ray)."
)
RAY_ADDRESS_HELP = (
    "With --backend ray: the cluster to join (auto: the one started here by `ray start`; "
    "default: $RAY_ADDRESS, else a new local cluster)."
)
BackendOpt = Annotated[Backend, typer.Option("--backend", help=BACKEND_HELP)]
RayAddressOpt = Annotated[str | None, typer.Option("--ray-address", help=RAY_ADDRESS_HELP)]


def ray_address(backend: Backend | None, address: str | None) -> str | None:
    """Returns --ray-address; a usage error (exit 2) when it comes without --backend ray."""
    if address is not None and backend is not Backend.ray:
        raise typer.BadParameter("needs --backend ray", param_hint="--ray-address")
    return address


def path_value(value: str | os.PathLike[str]) -> Path:
    """Parses a file or folder option: an empty value is a usage error, not the current
    folder (Path("") is "."; `--runs-dir ""` would write runs among the user's files)."""
    if isinstance(value, os.PathLike):  # a default, already a Path
        return Path(value)
    if not value.strip():
        raise typer.BadParameter("an empty path; give a file or folder name")
    if "\0" in value:
        raise typer.BadParameter(f"{value!r} holds a NUL character, which no path can")
    return Path(value)


TasksOpt = Annotated[
    Path | None,
    typer.Option(
        "--tasks",
        parser=path_value,
        help="Lab file (default: ./tasks.toml, else the built-in lab).",
    ),
]
DeviceOpt = Annotated[
    Device, typer.Option("--device", help="Where candidates train (auto: CUDA when available).")
]
CompileOpt = Annotated[
    Compile, typer.Option("--compile", help="torch.compile the training step (auto: CUDA only).")
]


def not_a_folder(path: Path) -> str | None:
    """Returns why `path` can never be a folder (it, or a folder above it, is a file or
    another thing that is not a directory), else None; permissions are not judged here."""
    p = in_the_way(path)
    if p is None:
        return None
    what = "is a file, not a directory" if p.is_file() else "is not a directory"
    return f"{path} {what}" if p == path else f"{path}: {p} {what}"


def cache_value(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Checks --cache-dir as it is parsed: a path that can never be a folder is a usage
    error naming the flag, or MINACT_CACHE_DIR when the value came from there."""
    problem = not_a_folder(value) if value is not None else None
    if problem is not None:
        # By name: typer carries a click of its own, whose ParameterSource is not click's.
        source = ctx.get_parameter_source(param.name or "")
        env = getattr(source, "name", None) == "ENVIRONMENT"
        hint = "MINACT_CACHE_DIR" if env else "'--cache-dir'"
        raise typer.BadParameter(f"{problem}; give a folder for the cache", param_hint=hint)
    return value


CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        parser=path_value,
        callback=cache_value,
        envvar="MINACT_CACHE_DIR",
        show_envvar=True,
        help="Fitness cache folder (default: ./cache).",
    ),
]
RunsOpt = Annotated[
    Path, typer.Option("--runs-dir", parser=path_value, help="Where run directories are.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
WorkersOpt = Annotated[
    str,
    typer.Option(
        "--workers",
        help="Worker processes training candidates: N, or auto (one per GPU; on CPU one "
        "single-thread worker per core).",
    ),
]
# Torch threads per worker: more than any machine's cores only oversubscribes them, and
# 100000 made the worker fail to start with a bare MemoryError.
MAX_THREADS = 256
MAX_BATCH = 4096  # candidates trained together: a GPU's batch is tens; more is a slip of the keys
ThreadsOpt = Annotated[
    int,
    typer.Option(
        "--threads",
        min=0,
        max=MAX_THREADS,
        help="Torch threads per worker (0: all cores for one worker, else cores / workers).",
    ),
]


MAX_WORKERS = 256  # processes, each holding torch (about 300 MB): more is a slip of the keys


def workers_count(value: str) -> int:
    """Returns --workers as a number of processes (0 for auto); a usage error otherwise."""
    text = value.strip().lower()
    if text == "auto":
        return 0
    # isdecimal, not isdigit: int() refuses the digits that are not decimal ("²"), and a
    # few characters more than MAX_WORKERS needs keep int() from 4,300-digit numbers.
    if text.isdecimal() and len(text) <= 8 and 1 <= int(text) <= MAX_WORKERS:
        return int(text)
    raise typer.BadParameter(f"{value!r}: give a number of workers (1 to {MAX_WORKERS}) or auto",
                             param_hint="--workers")  # fmt: skip


def fail(e: MinactError) -> NoReturn:
    """Prints `error: <message>` to stderr, as plain text, and exits with the error's code;
    a UsageError (exit code 2) is shown as typer shows the flags it refuses."""
    if isinstance(e, UsageError):
        raise typer.BadParameter(printable_text(str(e)), param_hint=e.param) from None
    err.print(Text.assemble(("error: ", "red"), printable_text(str(e))))
    raise typer.Exit(code=e.exit_code)


def fail_os(e: OSError) -> NoReturn:
    """The last resort for a file operation that failed where no command expected it (a
    read-only run folder, a full disk, a folder where a file should be): prints
    `error: <reason>: <path>` like `fail` and exits with code 1, not a traceback. The path
    is the error's; `standard output` when that is what cannot be written."""
    paths = [
        os.fsdecode(f) if isinstance(f, (str, bytes, os.PathLike)) else str(f)
        for f in (e.filename, e.filename2)
        if f is not None
    ]
    if not paths and _stdout_broken():
        paths = ["standard output"]
    reason = e.strerror or str(e) or type(e).__name__
    fail(MinactError(f"{reason}: {' -> '.join(paths)}" if paths else reason))


def _stdout_broken() -> bool:
    """Returns whether standard output cannot be written; if so, points it at the null
    device, so that what is still buffered for it does not fail again at exit (Python then
    prints a traceback of its own)."""
    out = sys.stdout
    if out is None:
        return False
    broken = False
    try:
        out.flush()
    except OSError:
        broken = True
    try:
        fd = out.fileno()
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to probe
        return broken
    try:
        os.write(fd, b"")  # writes nothing where it can, fails where it cannot (/dev/full)
    except OSError:
        broken = True
    if broken:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except OSError:
            pass
    return broken


def note(text: str) -> None:
    """Prints one line to stderr, as plain text: what it quotes from files and servers (a
    path, a run's name) with its control, bidi and zero-width characters escaped, line
    breaks included (a line break in a file's name must not print a line of its own)."""
    err.print(printable(text))


def cache_dir(flag: Path | None) -> Path:
    """Returns the cache folder: the flag (or $MINACT_CACHE_DIR, both checked as parsed),
    else ./cache; a usage error when ./cache can never be a folder."""
    if flag is not None and str(flag):
        return flag
    problem = not_a_folder(Path("cache"))
    if problem is not None:
        raise typer.BadParameter(
            f"{problem}; ./cache is the default cache folder: give another",
            param_hint="'--cache-dir'",
        )
    return Path("cache")


def stdout() -> Console:
    """Returns the console for results on stdout."""
    # Piped output gets a wide table rather than rich's 80-column default.
    return Console(markup=False) if sys.stdout.isatty() else Console(width=180, markup=False)


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return number_text(v, spec)


def status_text(status: str, reason: str) -> str:
    """Returns a candidate's status with its reason ("error: ...", or a scored candidate's
    note: "ok: flat: ..."), for the terminal."""
    if not reason:
        return printable(status)
    # Some reasons open with their status ("screened after stage 1: ..."): say it once.
    return printable(reason if reason.startswith(status) else f"{status}: {reason}")


ROWS = 60  # a longer ranking prints the rows its report's table shows
TOP_ROWS = 30  # new candidates among them (and every baseline)


def print_ranking(doc: RankingDocument) -> None:
    """Prints a ranking document as a table that fits the terminal (for a long one, the
    best new candidates and the baselines, and how many rows are left out)."""
    lab = doc["lab"]
    console = stdout()
    # On a narrow terminal, columns go (code, then families) so the numbers keep their room.
    wide = console.width >= 120
    families = list(lab["families"]) if console.width >= 100 else []
    from minact.claims import best_claim_sentence
    from minact.runs.ranking import (
        cache_state,
        difference_spec,
        fitness_specs,
        fitness_words,
        original_lab_text,
        shown,
    )

    table = Table(
        title=printable(
            f"ranking on {lab['path']} ({len(doc['tasks'])} tasks; {fitness_words(lab)})"
        )
    )
    number: dict[str, Any] = {"justify": "right", "no_wrap": True, "min_width": 6}
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=8)
    table.add_column("fitness", **number)
    before = any("original_fitness" in c for c in doc["candidates"])
    if before:  # a rescore: the fitness on the lab the candidates came from
        table.add_column("was", **number)
    table.add_column("±sd", **number)
    for f in families:
        table.add_column(f if wide else f[:4], **number)
    table.add_column("mean OOD MSE" if wide else "OOD MSE", **number)
    table.add_column("status", overflow="fold")
    table.add_column("cache", no_wrap=True)
    if wide:
        table.add_column("code", no_wrap=True)
    # A run of 2000 candidates printed 2000 rows (3 s of layout) above its summary;
    # ranking.json holds every candidate.
    spec, spread = fitness_specs(lab)
    was_spec, _ = fitness_specs((doc.get("run") or {}).get("from_lab") or lab)
    rows = doc["candidates"]
    if len(rows) > ROWS:
        rows = shown(rows, TOP_ROWS)
    for c in rows:
        # Names and reasons come from run files and replies: no controls reach the terminal.
        status = status_text(c["status"], c["reason"])
        # A screened row's families are means over its stage-1 tasks alone (5 of a family's
        # 25 on the default lab), not the family's mean the column names: its status says
        # its stage-1 fitness instead.
        ranked = c["status"] == "ok"
        row = [
            str(c["rank"] or "—"),
            # Marked as report.md and report.html mark them.
            printable(c["name"] or "?") + (" (baseline)" if c["baseline"] else ""),
            _fmt(c["fitness"], spec),
            *([_fmt(c.get("original_fitness"), was_spec)] if before else []),
            _fmt(c["fitness_spread"], spread),
            *(_fmt(c["families"].get(f) if ranked else None, spec) for f in families),
            _fmt(c["mean_ood_mse"], ".4g"),
            status,
            cache_state(c),
        ]
        table.add_row(*row, *([(c["code_hash"] or "")[:10]] if wide else []))
    console.print(table)
    was = original_lab_text(doc)
    if was:  # a rescore: which lab each fitness column is on
        console.print(printable(was))
    if len(rows) < len(doc["candidates"]):
        console.print(
            f"{len(doc['candidates']) - len(rows)} more candidates not shown (the table holds "
            f"the best {TOP_ROWS} new ones and the baselines); ranking.json lists every one"
        )
    # The sentence report.md and report.html write under their ranking, escaped as every
    # name from a candidate or a run file is before it reaches the terminal.
    verdict = best_claim_sentence(doc["candidates"], len(doc["tasks"]), difference_spec(lab))
    if verdict:
        console.print(printable(verdict))


def print_agreement(agreement: LabAgreement) -> None:
    """Prints a lab's self-agreement under a ranking: split-half verdict, then per family."""
    console = stdout()
    console.print(f"ranking stability: {agreement.verdict}")
    if agreement.families:
        parts = ", ".join(
            f"{f} {_fmt(t if t == t else None, '+.2f')}" for f, t in agreement.families.items()
        )
        console.print(f"each family alone against the other tasks (Kendall tau): {parts}")


def evaluation_progress(enabled: bool) -> tuple[Callable[[str, int, int], None], Any]:
    """Returns a progress callback for the evaluator and the bar to hold open around it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not enabled,
    )
    ids: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if total == 0:
            return
        if stage not in ids:
            label = {"admit": "probing", "train": "training"}.get(stage, stage)
            ids[stage] = bar.add_task(label, total=total)
        bar.update(ids[stage], completed=done, total=total)

    return update, bar
