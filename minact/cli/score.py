"""`minact score` and `minact seeds`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from minact.cli._shared import (
    MAX_BATCH,
    Backend,
    BackendOpt,
    CacheOpt,
    Compile,
    CompileOpt,
    Device,
    DeviceOpt,
    JsonOpt,
    RayAddressOpt,
    TasksOpt,
    ThreadsOpt,
    WorkersOpt,
    cache_dir,
    evaluation_progress,
    fail,
    note,
    print_agreement,
    print_ranking,
    stdout,
    workers_count,
)
from minact.cli._shared import ray_address as check_ray_address
from minact.errors import MinactError

__all__ = ["score", "seeds", "suites"]


def seeds() -> None:
    """List the built-in reference activations with their formulas."""
    from minact.seeds import REFERENCE, SEEDS

    table = Table(title="built-in activations (use their names as SRC)")
    for col in ("name", "formula", "source", "note"):
        table.add_column(col)
    for s in SEEDS.values():
        reference = s.name == REFERENCE and "reference" not in s.note
        table.add_row(s.name, s.formula, s.body, s.note + (" (reference)" if reference else ""))
    stdout().print(table)


def suites() -> None:
    """List the built-in labs and suites (names for --tasks and --suite) with size and cost."""
    from minact.jobs.suites import list_suites

    table = Table(title="built-in labs and suites (use their names for --tasks or --suite)")
    for col in ("name", "tasks", "networks", "s / candidate", "kinds", "families", "what"):
        table.add_column(col, justify="right" if col in ("tasks", "networks") else "left")
    for row in list_suites():
        cost = "—" if row.cpu_seconds is None else f"~{row.cpu_seconds:g} (CPU)"
        what = row.summary if not row.problem else f"{row.summary}. {row.problem}"
        table.add_row(
            row.name,
            "—" if row.tasks is None else str(row.tasks),
            "—" if row.networks is None else str(row.networks),
            cost,
            ", ".join(row.kinds),
            ", ".join(row.families),
            what,
        )
    stdout().print(table)
    note(
        "s / candidate: the 14 built-in activations on a shared, loaded 2-core CPU with one "
        "worker thread (bench/RESULTS.md); a GPU trains each candidate's networks as one batch"
    )


def score(
    srcs: Annotated[
        list[str], typer.Argument(metavar="SRC...", help="Built-in names or .py files.")
    ],
    tasks: TasksOpt = None,
    device: DeviceOpt = Device.auto,
    compile_: CompileOpt = Compile.auto,
    cache: CacheOpt = None,
    batch_size: Annotated[
        int,
        typer.Option(
            min=0, max=MAX_BATCH, help="Candidates trained together (0: 1 on CPU, 32 on CUDA)."
        ),
    ] = 0,
    workers: WorkersOpt = "auto",
    threads: ThreadsOpt = 0,
    backend: BackendOpt = Backend.local,
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score activations on the lab and print them ranked (ReLU is the reference, fitness 0)."""
    from minact.evaluate import EvaluatorConfig
    from minact.jobs import score as job

    config = EvaluatorConfig(
        device=device.value,
        compile=compile_.value,
        batch_size=batch_size,
        threads=threads,
        workers=workers_count(workers),
        backend=backend.value,
        ray_address=check_ray_address(backend, ray_address),
    )
    update, bar = evaluation_progress(sys.stderr.isatty() and not as_json)
    try:
        with bar:
            doc, warnings = job.score(
                srcs, tasks=tasks, cache_dir=cache_dir(cache), config=config, progress=update
            )
    except MinactError as e:
        fail(e)
    for w in warnings:
        note(f"warning: {w}")
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    print_ranking(doc)
    print_agreement(job.agreement(doc))
