"""`minact report`, `show`, `export` and `rescore`: reuse what runs and the cache hold."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from minact.cli._conflicts import refuse_rescore_conflicts
from minact.cli._shared import (
    MAX_SEEDS,
    Backend,
    BackendOpt,
    CacheOpt,
    Device,
    DeviceOpt,
    RayAddressOpt,
    RunsOpt,
    ThreadsOpt,
    WorkersOpt,
    cache_dir,
    evaluation_progress,
    fail,
    note,
    path_value,
    print_ranking,
    status_text,
    stdout,
    workers_count,
)
from minact.cli._shared import ray_address as check_ray_address
from minact.errors import MinactError
from minact.numbers import number_text
from minact.search.config import MAX_BUDGET
from minact.untrusted import printable, printable_lines

__all__ = ["export", "report", "rescore", "show"]

HashArg = Annotated[str, typer.Argument(metavar="HASH", help="Code hash or a prefix (4+ digits).")]
RunOpt = Annotated[Path | None, typer.Option(parser=path_value, help="Only look in this run.")]


def _fmt(v: Any, spec: str) -> str:
    return number_text(v, spec)


def report(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", parser=path_value, help="A run directory.")
    ],
    cache: CacheOpt = None,
    device: Annotated[
        Device, typer.Option(help="Where activation curves the cache lacks are computed.")
    ] = Device.cpu,
) -> None:
    """(Re)write report.md, report.html and ranking.json for a run."""
    from minact.jobs.report import write_report

    try:
        written = write_report(run_dir, cache_dir(cache), device.value)
    except MinactError as e:
        fail(e)
    for path in written:
        note(f"wrote {path}")


def show(
    hash_prefix: HashArg,
    runs_dir: RunsOpt = Path("runs"),
    run: RunOpt = None,
    cache: CacheOpt = None,
) -> None:
    """Show one candidate: code, scores per task, status, lineage."""
    from minact.jobs.candidates import find_candidate, run_lab
    from minact.runs.ranking import fitness_specs

    try:
        found = find_candidate(hash_prefix, runs_dir, run, cache_dir(cache))
    except MinactError as e:
        fail(e)
    out = stdout()
    entry = found.entry
    # The report's digits for the run's fitness kind ("+.3f" printed an MSE of 28.38 as
    # "+28.384"), and its per-task tables' for a task's MSE.
    spec, spread = fitness_specs(run_lab(found))
    if found.run:
        where = f"run {found.run}"
    else:  # only the runs searched are known not to hold it
        where = f"the cache (not in run {run})" if run is not None else "the cache (in no run)"
    # A run's files are anyone's to edit: their text reaches the terminal without controls.
    name = printable(entry["name"]) if entry else ""
    out.print(Text.assemble((found.code_hash, "bold"), f"  {name}  from {printable(where)}"))
    if entry is not None:
        origin, why = entry.get("origin", ""), entry.get("note")
        how = f" ({origin}: {why})" if why else f" ({origin})" if origin else ""
        parent = (entry["parent"] or "—")[:12]
        out.print(printable(f"proposal {entry.get('index')}{how}; parent {parent}"))
        status = status_text(entry["status"], entry["reason"])
        out.print(
            f"status {status}; fitness {_fmt(entry['fitness'], spec)} ± "
            f"{_fmt(entry['fitness_spread'], spread)}; mean OOD MSE "
            f"{_fmt(entry['mean_ood_mse'], '.4g')}; cost {_fmt(entry['cost'], '.1f')}x GELU"
        )
    code = printable_lines(found.source)
    out.print("\n" + code + "\n")
    if entry is not None and entry["tasks"]:
        table = Table("task", "OOD MSE", "ID MSE", "± OOD", "log-ratio vs reference")
        # One seed per task has no spread (ranking.json's ood_spread is then 0): "—", as
        # for the fitness, not a 0 that reads as seeds agreeing.
        one_seed = entry["fitness_spread"] is None
        for task, t in entry["tasks"].items():
            table.add_row(
                printable(task),
                _fmt(t["ood_loss"], ".3g"),
                _fmt(t["id_loss"], ".3g"),
                _fmt(None if one_seed else t["ood_spread"], ".3g"),
                _fmt(t["log_ratio"], "+.3f"),
            )
        out.print(table)
    if found.lineage:
        chain = " ← ".join(
            f"{printable(a['name'])} ({_fmt(a['fitness'], spec)})" for a in found.lineage
        )
        out.print(f"lineage: {name} ← {chain}")
    elif entry is None:
        out.print("no scores recorded in a run; `minact score FILE` scores a saved copy")


def _output_value(value: str | os.PathLike[str]) -> Path:
    """Parses export's -o: a value ending in a slash names a folder, which must exist (as
    for cp); Path() drops that slash, and the module would be written as a file of that name."""
    path = path_value(value)
    text = os.fspath(value)
    if text.endswith(("/", os.sep)) and not path.is_dir():
        raise typer.BadParameter(f"{text}: no such folder; create it, or give a file name")
    return path


def export(
    hash_prefix: HashArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            parser=_output_value,
            help="File to write, or folder to write <function name>.py in (default: .).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Function name (default act_<first 8 hash digits>).")
    ] = None,
    runs_dir: RunsOpt = Path("runs"),
    run: RunOpt = None,
    cache: CacheOpt = None,
    force: Annotated[bool, typer.Option(help="Overwrite the file if it exists.")] = False,
) -> None:
    """Write a standalone module: the function and an nn.Module (needs only torch).

    The module also binds `activation` to the function, so `minact score FILE` scores it.
    An existing file is left alone unless --force is given. A candidate whose evaluation
    failed (too_costly, nonfinite, ...) is exported with a warning and its status in the
    docstring; one that crashed the worker is refused.
    """
    from minact.export import NAME_RULE, valid_name
    from minact.jobs.candidates import export as export_job
    from minact.jobs.candidates import find_candidate

    if name is not None and not valid_name(name):
        raise typer.BadParameter(f"{name!r}: the name must be {NAME_RULE}", param_hint="--name")
    try:
        found = find_candidate(hash_prefix, runs_dir, run, cache_dir(cache))
        done = export_job(found, output, name, cache_dir(cache), force=force)
    except MinactError as e:
        fail(e)
    if done.failed:
        note(
            f"warning: {found.code_hash[:12]} did not pass minact's evaluation "
            f"({done.failed}); exported all the same, and its docstring says so"
        )
    note(f"wrote {done.target} ({done.name} and its nn.Module)")


def rescore(
    ctx: typer.Context,
    hashes: Annotated[
        list[str] | None, typer.Argument(metavar="[HASH]...", help="Candidates to rescore.")
    ] = None,
    tasks: Annotated[
        Path | None, typer.Option(parser=path_value, help="The other tasks file.")
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            help="A built-in suite instead: transfer, algorithmic, real (`minact suites`: all)."
        ),
    ] = None,
    run: Annotated[
        Path | None, typer.Option(parser=path_value, help="Take candidates from this run.")
    ] = None,
    top: Annotated[
        int, typer.Option(min=1, max=MAX_BUDGET, help="How many of the run's best.")
    ] = 5,
    all_cached: Annotated[bool, typer.Option(help="Every candidate in the cache.")] = False,
    runs_dir: RunsOpt = Path("runs"),
    cache: CacheOpt = None,
    device: DeviceOpt = Device.auto,
    workers: WorkersOpt = "auto",
    backend: BackendOpt = Backend.local,
    ray_address: RayAddressOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            parser=path_value,
            help="Folder for ranking.json, report.md and report.html (see the command's help).",
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_SEEDS,
            show_default="the lab's",
            help="Networks per task (overrides the lab's seeds; cached under their own key).",
        ),
    ] = None,
    threads: ThreadsOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Score a run's best (or given, or all cached) candidates and the baselines on other tasks.

    The result goes to RUN_DIR/rescore-<lab>/ for a run's candidates (default: the latest
    run), and to RUNS_DIR/rescore-<lab>/ for hashes or --all-cached, unless --out says;
    to rescore-<lab>-<8 hex digits>/ where that folder holds another lab's rescore.
    It holds ranking.json, report.md and report.html: the rank agreement between the
    original and the new fitness (Kendall tau, Spearman rho), a scatter plot of the two, and
    whether each candidate beats the best baseline beyond noise.
    """
    from minact.jobs.rescore import SUITES
    from minact.jobs.rescore import rescore as rescore_job
    from minact.report.agreement import agreement_text

    refuse_rescore_conflicts(ctx)
    if (tasks is None) == (suite is None):
        # Which lab to score on is a usage question (exit 2), like any flag typer checks.
        raise typer.BadParameter(
            f"give exactly one of --tasks FILE or --suite ({', '.join(SUITES)})",
            param_hint="--tasks / --suite",
        )
    if out is not None and (out / "run.json").exists():
        # Its ranking.json and reports are the run's own: a rescore would replace them.
        raise typer.BadParameter(
            f"{out} is a run directory; give a folder of its own (the default is "
            f"{out / 'rescore-<lab>'})",
            param_hint="--out",
        )
    address = check_ray_address(backend, ray_address)
    n_workers = workers_count(workers)
    # Another suite trains every baseline again: minutes on a CPU, which a bar accounts for.
    update, bar = evaluation_progress(sys.stderr.isatty() and not as_json)
    try:
        with bar:
            result = rescore_job(
                tasks=tasks,
                suite=suite,
                hashes=hashes or [],
                run=run,
                top=top,
                all_cached=all_cached,
                runs_dir=runs_dir,
                cache_dir=cache_dir(cache),
                device=device.value,
                workers=n_workers,
                backend=backend.value,
                ray_address=address,
                out=out,
                network_seeds=seeds,
                threads=threads,
                progress=update,
                say=note,
            )
    except MinactError as e:
        fail(e)
    if as_json:
        sys.stdout.write(json.dumps(result.ranking, indent=2) + "\n")
    else:
        print_ranking(result.ranking)
    for w in result.warnings:
        note(f"warning: {w}")
    note(f"agreement: {agreement_text(result.ranking.get('agreement'))}")
    note(f"rescore report: {result.directory}/report.md and report.html")
