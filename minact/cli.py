"""The `minact` command line: parse, call, render, exit.

The only module that prints or exits. Heavy modules are imported inside the commands
so that `minact --help` stays fast; torch is never imported in this process at all
(the evaluator's worker process owns it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from minact.errors import MinactError

if TYPE_CHECKING:
    from minact.candidate import Candidate, Score
    from minact.evaluate import Progress
    from minact.tasks import Lab

app = typer.Typer(
    help="Mine activation functions that generalise out of distribution.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

DEVICES = ("auto", "cpu", "cuda")
COMPILE_MODES = ("auto", "on", "off")

TasksOpt = Annotated[
    Path | None,
    typer.Option("--tasks", help="Lab file (default: ./tasks.toml, else the built-in lab)."),
]
DeviceOpt = Annotated[str, typer.Option(help="Where candidates train: auto, cpu or cuda.")]
CompileOpt = Annotated[
    str,
    typer.Option("--compile", help="torch.compile the training step: auto (CUDA only), on, off."),
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="Fitness cache folder (default: $MINACT_CACHE_DIR or ./cache)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _fail(e: MinactError) -> NoReturn:
    err.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code=e.exit_code)


def _choice(value: str, allowed: tuple[str, ...], flag: str) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=flag)
    return value


def _load_lab(path: Path | None) -> Lab:
    from minact.labfile import default_tasks_path, load_lab

    return load_lab(path if path is not None else default_tasks_path())


def _cache_dir(flag: Path | None) -> Path:
    if flag is not None:
        return flag
    return Path(os.environ.get("MINACT_CACHE_DIR") or "cache")


@app.command()
def seeds() -> None:
    """List the built-in reference activations with their formulas."""
    from minact.seeds import REFERENCE, SEEDS

    table = Table(title="built-in activations (use their names as SRC)")
    for col in ("name", "formula", "source", "note"):
        table.add_column(col)
    for s in SEEDS.values():
        note = s.note + (
            " (reference)" if s.name == REFERENCE and "reference" not in s.note else ""
        )
        table.add_row(s.name, s.formula, s.body, note)
    _stdout().print(table)


def _read_sources(srcs: list[str]) -> tuple[list[Candidate], list[Score]]:
    """Returns validated candidates and the rejections (as scores) for SRC arguments."""
    from minact.candidate import Candidate
    from minact.errors import ConfigError
    from minact.ranking import rejection_score
    from minact.seeds import SEEDS, get_seed, seed_source
    from minact.validate import decode_source, validate

    candidates: list[Candidate] = []
    rejected: list[Score] = []
    for src in srcs:
        path = Path(src)
        if path.suffix == ".py" or path.exists():
            try:
                data = path.read_bytes()
            except OSError as e:
                raise ConfigError(f"cannot read candidate file {src}: {e.strerror or e}") from None
            name, text = path.stem, decode_source(data)
        else:
            try:
                name = get_seed(src).name
            except KeyError:
                raise ConfigError(
                    f"SRC {src!r} is neither a .py file nor a built-in ({', '.join(SEEDS)})"
                ) from None
            text = seed_source(name)
        result = validate(text, name=name) if isinstance(text, str) else text
        if isinstance(result, Candidate):
            candidates.append(result)
        else:
            shown = text if isinstance(text, str) else ""
            rejected.append(rejection_score(type(result)(result.reason, name=name), shown))
    return candidates, rejected


def _progress(enabled: bool) -> tuple[Progress, Any]:
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


@app.command()
def score(
    srcs: Annotated[
        list[str], typer.Argument(metavar="SRC...", help="Built-in names or .py files.")
    ],
    tasks: TasksOpt = None,
    device: DeviceOpt = "auto",
    compile_: CompileOpt = "auto",
    cache_dir: CacheOpt = None,
    batch_size: Annotated[
        int, typer.Option(min=0, help="Candidates trained together (0: 1 on CPU, 32 on CUDA).")
    ] = 0,
    threads: Annotated[int, typer.Option(min=0, help="Worker torch threads (0: all cores).")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Score activations on the lab and print them ranked (ReLU is the reference, fitness 0)."""
    from minact.cache import FitnessCache
    from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
    from minact.ranking import ranking_document

    _choice(device, DEVICES, "--device")
    _choice(compile_, COMPILE_MODES, "--compile")
    try:
        lab = _load_lab(tasks)
        candidates, rejected = _read_sources(srcs)
        config = EvaluatorConfig(
            device=device, compile=compile_, batch_size=batch_size, threads=threads
        )
        update, bar = _progress(sys.stderr.isatty() and not as_json)
        with FitnessCache(_cache_dir(cache_dir), EVALUATOR_VERSION) as cache:
            with Evaluator(lab, cache, config, progress=update) as evaluator, bar:
                scores = evaluator.score(candidates)
            info = evaluator.info
            warnings = list(cache.warnings)
    except MinactError as e:
        _fail(e)
    for w in warnings:
        err.print(f"warning: {w}", highlight=False)
    run = {"command": "score", "device": info.get("device"), "worker": info or None}
    doc = ranking_document([*scores, *rejected], lab, run)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    _print_ranking(doc)


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _print_ranking(doc: dict[str, Any]) -> None:
    lab = doc["lab"]
    console = _stdout()
    # On a narrow terminal, columns go (code, then families) so the numbers keep their room.
    wide = console.width >= 120
    families = list(lab["families"]) if console.width >= 100 else []
    table = Table(
        title=f"ranking on {lab['path']} ({len(doc['tasks'])} tasks; {lab['fitness']}, "
        f"lower is better, {lab['reference']} = 0)"
    )
    number = {"justify": "right", "no_wrap": True, "min_width": 6}
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=8)
    table.add_column("fitness", **number)  # type: ignore[arg-type]
    before = any("original_fitness" in c for c in doc["candidates"])
    if before:  # a rescore: the fitness on the lab the candidates came from
        table.add_column("was", **number)  # type: ignore[arg-type]
    table.add_column("±sd", **number)  # type: ignore[arg-type]
    for f in families:
        table.add_column(f if wide else f[:4], **number)  # type: ignore[arg-type]
    table.add_column("mean OOD MSE" if wide else "OOD MSE", **number)  # type: ignore[arg-type]
    table.add_column("status", overflow="fold")
    table.add_column("cache", no_wrap=True)
    if wide:
        table.add_column("code", no_wrap=True)
    for c in doc["candidates"]:
        status = c["status"] if c["status"] == "ok" else f"{c['status']}: {c['reason']}"
        row = [
            str(c["rank"] or "—"),
            c["name"] or "?",
            _fmt(c["fitness"], "+.3f"),
            *([_fmt(c.get("original_fitness"), "+.3f")] if before else []),
            _fmt(c["fitness_spread"]),
            *(_fmt(c["families"].get(f), "+.3f") for f in families),
            _fmt(c["mean_ood_mse"], ".4g"),
            status,
            "hit" if c["cached"] else "new",
        ]
        table.add_row(*row, *([(c["code_hash"] or "")[:10]] if wide else []))
    console.print(table)


def _stdout() -> Console:
    # Piped output gets a wide table rather than rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=180)


def main() -> None:
    """Runs the app (for `python -m minact`)."""
    app()


def _register() -> None:
    # The evolve command lives in its own module to keep this one small.
    from minact.cli_evolve import evolve, report
    from minact.cli_tools import export, rescore, show

    for command in (evolve, report, show, rescore, export):
        app.command()(command)


_register()
