"""`minact show`, `minact export` and `minact rescore`: reuse what runs and the cache hold.

Part of the command line (it prints and exits); cli.py registers these commands.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from minact.errors import ConfigError, MinactError

if TYPE_CHECKING:
    from minact.cache import FitnessCache
    from minact.candidate import Candidate
    from minact.catalog import Found

err = Console(stderr=True, highlight=False)

RunsOpt = Annotated[Path, typer.Option(help="Where run directories are.")]
CacheOpt = Annotated[
    Path | None, typer.Option(help="Fitness cache (default $MINACT_CACHE_DIR or ./cache).")
]


def _fail(e: MinactError) -> None:
    err.print(f"[red]error:[/red] {e}", soft_wrap=True)
    raise typer.Exit(code=e.exit_code)


def _find(prefix: str, runs_dir: Path, run: Path | None, cache_dir: Path | None) -> Found:
    from minact.cache import FitnessCache
    from minact.catalog import all_runs, find
    from minact.cli import _cache_dir
    from minact.evaluate import EVALUATOR_VERSION

    runs = [run] if run is not None else all_runs(runs_dir)
    directory = _cache_dir(cache_dir)
    if not directory.exists():
        return find(prefix, runs)
    with FitnessCache(directory, EVALUATOR_VERSION) as cache:
        return find(prefix, runs, list(cache.sources()))


def _fmt(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def show(
    hash_prefix: Annotated[str, typer.Argument(metavar="HASH", help="Code hash or a prefix.")],
    runs_dir: RunsOpt = Path("runs"),
    run: Annotated[Path | None, typer.Option(help="Only look in this run.")] = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Show one candidate: code, scores per task, status, lineage."""
    try:
        found = _find(hash_prefix, runs_dir, run, cache_dir)
    except MinactError as e:
        _fail(e)
        return
    out = Console(highlight=False, soft_wrap=True)
    entry = found.entry
    where = f"run {found.run}" if found.run else "the cache (in no run)"
    out.print(f"[bold]{found.code_hash}[/bold]  {entry.get('name', '')}  from {where}")
    if entry:
        origin = entry.get("origin", "")
        note = f" ({origin}: {entry.get('note')})" if entry.get("note") else f" ({origin})"
        out.print(
            f"proposal {entry.get('index')}{note if origin else ''}; "
            f"parent {(entry.get('parent') or '—')[:12]}"
        )
        status = (
            entry["status"] if entry["status"] == "ok" else f"{entry['status']}: {entry['reason']}"
        )
        out.print(
            f"status {status}; fitness {_fmt(entry.get('fitness'), '+.3f')} ± "
            f"{_fmt(entry.get('fitness_spread'), '.3f')}; mean OOD MSE "
            f"{_fmt(entry.get('mean_ood_mse'), '.4g')}; cost {_fmt(entry.get('cost'), '.1f')}x GELU"
        )
    out.print("\n" + found.source.rstrip() + "\n")
    if entry.get("tasks"):
        table = Table("task", "OOD MSE", "ID MSE", "± OOD", "log-ratio vs reference")
        for name, t in entry["tasks"].items():
            table.add_row(
                name,
                _fmt(t.get("ood_loss"), ".4g"),
                _fmt(t.get("id_loss"), ".4g"),
                _fmt(t.get("ood_spread"), ".3g"),
                _fmt(t.get("log_ratio"), "+.3f"),
            )
        out.print(table)
    if found.lineage:
        chain = " ← ".join(
            f"{a.get('name')} ({_fmt(a.get('fitness'), '+.3f')})" for a in found.lineage
        )
        out.print(f"lineage: {entry.get('name')} ← {chain}")
    elif not entry:
        out.print("no scores recorded in a run; `minact score FILE` scores a saved copy")


def export(
    hash_prefix: Annotated[str, typer.Argument(metavar="HASH", help="Code hash or a prefix.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
    name: Annotated[str | None, typer.Option(help="Function name (default act_<hash8>).")] = None,
    runs_dir: RunsOpt = Path("runs"),
    run: Annotated[Path | None, typer.Option(help="Only look in this run.")] = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Write a standalone module: the function and an nn.Module (needs only torch)."""
    from minact.export import module_text, valid_name

    try:
        found = _find(hash_prefix, runs_dir, run, cache_dir)
        fname = name or f"act_{found.code_hash[:8]}"
        if not valid_name(fname):
            raise typer.BadParameter(f"{fname!r} is not a usable Python name", param_hint="--name")
        target = output or Path(f"{fname}.py")
        text = module_text(found.source, fname, _docstring(found, fname))
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write {target}: {e.strerror or e}") from None
    except MinactError as e:
        _fail(e)
        return
    err.print(f"wrote {target} ({fname} and its nn.Module)")


def _docstring(found: Found, name: str) -> str:
    e = found.entry
    lines = [f"{name}: an activation function found by minact.", ""]
    if e.get("fitness") is not None:
        lines.append(
            f"Fitness {e['fitness']:+.4f} ± {e.get('fitness_spread') or 0:.4f} "
            "(mean log OOD-MSE ratio to the reference; lower is better, 0 = reference)"
        )
    if found.run is not None:
        lines.append(
            f"Origin: run {found.run}, proposal {e.get('index')} ({e.get('origin')}"
            + (f": {e['note']}" if e.get("note") else "")
            + ")"
        )
        if e.get("parent"):
            lines.append(f"Parent: {e['parent']}")
    lines.append(f"Code hash: {found.code_hash}")
    return "\n".join(lines)


def rescore(
    hashes: Annotated[
        list[str] | None, typer.Argument(metavar="[HASH]...", help="Candidates to rescore.")
    ] = None,
    tasks: Annotated[Path | None, typer.Option(help="The other tasks file.")] = None,
    suite: Annotated[str | None, typer.Option(help="A built-in suite instead: transfer.")] = None,
    run: Annotated[Path | None, typer.Option(help="Take candidates from this run.")] = None,
    top: Annotated[int, typer.Option(min=1, help="How many of the run's best.")] = 5,
    all_cached: Annotated[bool, typer.Option(help="Every candidate in the cache.")] = False,
    runs_dir: RunsOpt = Path("runs"),
    cache_dir: CacheOpt = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Score a run's best (or given, or all cached) candidates and the baselines on other tasks."""
    from minact.cli import DEVICES, _cache_dir, _choice, _print_ranking

    _choice(device, DEVICES, "--device")
    try:
        doc, out_dir = _rescore(
            hashes or [],
            tasks,
            suite,
            run,
            top,
            all_cached,
            runs_dir,
            _cache_dir(cache_dir),
            device,
        )
    except MinactError as e:
        _fail(e)
        return
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print_ranking(doc)
    err.print(f"rescore report: {out_dir}/report.md")


def _rescore(
    hashes: list[str],
    tasks: Path | None,
    suite: str | None,
    run: Path | None,
    top: int,
    all_cached: bool,
    runs_dir: Path,
    cache_dir: Path,
    device: str,
) -> tuple[dict[str, Any], Path]:
    from minact.cache import FitnessCache
    from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
    from minact.labfile import load_lab, transfer_suite_path
    from minact.ranking import ranking_document
    from minact.report import render_markdown
    from minact.runlog import write_atomic

    if (tasks is None) == (suite is None):
        raise ConfigError("give exactly one of --tasks FILE or --suite transfer")
    if suite is not None and suite != "transfer":
        raise ConfigError(f"--suite {suite!r}: the built-in suites are: transfer")
    lab = load_lab(tasks if tasks is not None else transfer_suite_path())
    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        chosen, original, origin = _choose(hashes, run, top, all_cached, runs_dir, cache)
        with Evaluator(lab, cache, EvaluatorConfig(device=device)) as evaluator:
            scores = evaluator.score([*_baselines(), *chosen])
    extra = {
        s.code_hash: {"original_fitness": original.get(s.code_hash or "")}
        for s in scores
        if s.code_hash
    }
    meta = {
        "command": "rescore",
        "from": origin,
        "time": time.time(),
        "device": evaluator.info.get("device"),
    }
    doc = ranking_document(scores, lab, meta, extra)
    base = run if run is not None else (Path(origin) if Path(origin).is_dir() else Path("."))
    out_dir = base / f"rescore-{lab.path.stem}"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "ranking.json", json.dumps(doc, indent=2) + "\n")
    write_atomic(out_dir / "report.md", render_markdown(doc))
    return doc, out_dir


def _baselines() -> list[Candidate]:
    from minact.candidate import Candidate
    from minact.seeds import SEEDS, seed_source
    from minact.validate import validate

    out = [validate(seed_source(n), name=n) for n in SEEDS]
    return [c for c in out if isinstance(c, Candidate)]


def _choose(
    hashes: list[str],
    run: Path | None,
    top: int,
    all_cached: bool,
    runs_dir: Path,
    cache: FitnessCache,
) -> tuple[list[Candidate], dict[str, float | None], str]:
    """Returns the candidates to rescore, their original fitness, and where they came from."""
    from minact.candidate import Candidate
    from minact.catalog import all_runs, find, latest_run, run_candidates
    from minact.validate import validate

    picked: list[tuple[str, str, str, float | None]] = []  # hash, name, source, fitness
    baseline_fitness: dict[str, float | None] = {}
    if hashes:
        sources = list(cache.sources())
        for h in hashes:
            f = find(h, [run] if run else all_runs(runs_dir), sources)
            picked.append((f.code_hash, f.entry.get("name", ""), f.source, f.entry.get("fitness")))
        origin = "hashes"
    elif all_cached:
        picked = [(h, "", src, None) for h, src in cache.sources()]
        origin = "cache"
    else:
        source_run = run if run is not None else latest_run(runs_dir)
        doc = run_candidates(source_run)
        best = [c for c in doc["candidates"] if c["status"] == "ok" and not c.get("baseline")]
        picked = [(c["code_hash"], c["name"], c["source"], c["fitness"]) for c in best[:top]]
        origin = str(source_run)
        # The baselines' fitness on the run's lab too, so the table shows whether rankings hold.
        baseline_fitness = {
            c["code_hash"]: c["fitness"] for c in doc["candidates"] if c.get("baseline")
        }
    cands: list[Candidate] = []
    original: dict[str, float | None] = dict(baseline_fitness)
    for h, name, source, fitness in picked:
        c = validate(source, name=name or h[:10])
        if isinstance(c, Candidate):
            cands.append(c)
            original[c.code_hash] = fitness
    if not cands and not all_cached:
        raise ConfigError(f"no candidates to rescore from {origin}")
    return cands, original, origin
