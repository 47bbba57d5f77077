"""`minact evolve`: set up a run (or resume one), run the search, write its outputs.

Part of the command line (it prints, exits and calls asyncio.run); cli.py registers it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.live import Live

from minact.errors import ConfigError, MinactError

if TYPE_CHECKING:
    from minact.proposers import Proposer
    from minact.runlog import RunLog
    from minact.search import History, Loop, Summary
    from minact.tasks import Lab

err = Console(stderr=True, highlight=False)

EXIT_INTERRUPTED = 130


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _api_key() -> str | None:
    return _env("MINACT_API_KEY") or _env("OPENAI_API_KEY")


def _lab_for(tasks: Path | None, run: dict[str, Any] | None) -> Lab:
    from minact.labfile import default_tasks_path, load_lab

    if tasks is None and run is not None:
        tasks = Path(run["tasks"])
    lab = load_lab(tasks if tasks is not None else default_tasks_path())
    if run is not None and lab.digest() != run.get("lab_digest"):
        raise ConfigError(f"{lab.path}: the lab differs from the one the run started with")
    if run is not None and [t.digest() for t in lab.tasks] != run.get("task_digests"):
        raise ConfigError(f"{lab.path}: the tasks differ from the ones the run started with")
    return lab


@asynccontextmanager
async def _proposer(
    llm_url: str | None,
    model: str | None,
    offline: bool,
    replay: Path | None,
    record: Path | None,
    llm_options: dict[str, Any],
) -> AsyncIterator[tuple[Proposer, dict[str, Any]]]:
    """Yields the proposer and its description for run.json; closes its HTTP client after."""
    from minact.proposers import (
        LLMProposer,
        OfflineProposer,
        RecordingProposer,
        ReplayProposer,
        load_replay,
    )

    if replay is not None:
        yield ReplayProposer(load_replay(replay)), {"proposer": "replay", "replay": str(replay)}
        return
    url = llm_url or _env("MINACT_LLM_URL")
    if offline or url is None:
        yield OfflineProposer(), {"proposer": "offline"}
        return
    from minact import llm

    host = urlsplit(url).hostname or ""
    local = host in ("localhost", "::1") or host.startswith("127.")
    async with llm.http_client(use_proxy_env=not local) as http:
        config = llm.LLMConfig(
            url=url.rstrip("/"),
            model=model or _env("MINACT_MODEL") or "",
            api_key=_api_key(),
            **llm_options,
        )
        if not config.model:
            config = replace(config, model=await llm.server_model(http, config))
        inner: Proposer = LLMProposer(llm.LLMClient(http, config))
        if record is not None:
            inner = RecordingProposer(inner, record)
        yield inner, {"proposer": "llm", "llm": {"url": config.url, "model": config.model}}


def _progress(enabled_live: bool) -> tuple[Callable[[Loop], None], AbstractContextManager[Any]]:
    live = Live(console=err, refresh_per_second=4, transient=True) if enabled_live else None
    last = [0.0]

    def show(loop: Loop) -> None:
        c = loop.counters
        best = loop.population.ranked()
        new = [m for m in best if m.origin != "seed"]
        elapsed = time.monotonic() - loop.started
        rate = c.evaluated / elapsed * 60 if elapsed > 0 else 0.0
        fails = ", ".join(f"{k} {v}" for k, v in sorted(c.failures.items())) or "none"
        text = (
            f"evaluated {c.evaluated}/{loop.config.budget} ({rate:.1f}/min, {c.cache_hits} cached)"
            f" · best {best[0].score.fitness:+.3f} ({best[0].score.name})"
            if best
            else ""
        )
        text += (
            f" · best new {new[0].score.fitness:+.3f}"
            if new and new[0].score.fitness is not None
            else ""
        )
        text += (
            f" · in flight {loop.in_flight}, evaluating {loop.waiting_for_evaluation}"
            f" · unparsable {c.parse_failures}, rejected {c.rejected}, duplicates {c.duplicates},"
            f" LLM errors {c.llm_errors} · failed: {fails}"
            f" · tokens {c.prompt_tokens}+{c.completion_tokens}"
        )
        if live is not None:
            live.update(text)
        elif time.monotonic() - last[0] > 10 or c.evaluated == loop.config.budget:
            last[0] = time.monotonic()
            err.print(f"[{elapsed:6.0f}s] {text}", soft_wrap=True)

    return show, live if live is not None else nullcontext()


def evolve(
    budget: Annotated[
        int | None, typer.Option(min=1, help="Distinct candidates to evaluate.")
    ] = None,
    tasks: Annotated[
        Path | None, typer.Option(help="Lab file (default: ./tasks.toml or built-in).")
    ] = None,
    llm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL ($MINACT_LLM_URL).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model name ($MINACT_MODEL; default: the server's first).")
    ] = None,
    offline: Annotated[
        bool, typer.Option(help="Use the offline mutator even if an LLM is configured.")
    ] = False,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Proposals in flight at once.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of all selection randomness.")] = None,
    islands: Annotated[int | None, typer.Option(min=1, help="Sub-populations.")] = None,
    max_calls: Annotated[
        int | None, typer.Option(min=1, help="Cap on proposals (default 4 x budget).")
    ] = None,
    prompt_chars: Annotated[
        int, typer.Option(min=500, help="Prompt size limit in characters.")
    ] = 8000,
    temperature: Annotated[float, typer.Option(min=0.0, help="LLM sampling temperature.")] = 0.8,
    max_tokens: Annotated[int, typer.Option(min=16, help="LLM reply token limit.")] = 1024,
    llm_retries: Annotated[
        int, typer.Option(min=0, help="Retries of a failed LLM request (429, 5xx, timeouts).")
    ] = 4,
    llm_timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds one LLM request may take in all.")
    ] = 300.0,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Fitness cache (default $MINACT_CACHE_DIR or ./cache).")
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    run_id: Annotated[str | None, typer.Option(help="Name of the run directory.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue a stopped or killed run.")] = None,
    record: Annotated[
        bool, typer.Option(help="Store every LLM exchange in the run directory.")
    ] = False,
    replay: Annotated[
        Path | None, typer.Option(help="Serve LLM replies from a --record file.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    compile_: Annotated[str, typer.Option("--compile", help="auto, on or off.")] = "auto",
    batch_size: Annotated[
        int, typer.Option(min=0, help="Candidates per training batch (0: auto).")
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the final ranking (JSON).")
    ] = False,
) -> None:
    """Search for activation functions with an LLM or the offline mutator; write a run dir."""
    from minact.cli import COMPILE_MODES, DEVICES, _cache_dir, _choice, _print_ranking

    _choice(device, DEVICES, "--device")
    _choice(compile_, COMPILE_MODES, "--compile")
    try:
        summary, doc = _evolve(
            budget,
            tasks,
            llm_url,
            model,
            offline,
            concurrency,
            seed,
            islands,
            max_calls,
            prompt_chars,
            {
                "temperature": temperature,
                "max_tokens": max_tokens,
                "retries": llm_retries,
                "deadline": llm_timeout,
            },
            _cache_dir(cache_dir),
            runs_dir,
            run_id,
            resume,
            record,
            replay,
            device,
            compile_,
            batch_size,
        )
    except MinactError as e:
        err.print(f"[red]error:[/red] {e}", soft_wrap=True)
        raise typer.Exit(code=e.exit_code) from None
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print_ranking(doc)
    done = f"run {doc['run']['run_id']}: {summary.status} — {summary.message}"
    where = doc["run"]["directory"]
    err.print(done + f"\n  {where}/report.html\n  {where}/report.md", soft_wrap=True)
    if summary.status == "interrupted":
        raise typer.Exit(code=EXIT_INTERRUPTED)
    if summary.status != "finished":
        raise typer.Exit(code=1)


def _evolve(
    budget: int | None,
    tasks: Path | None,
    llm_url: str | None,
    model: str | None,
    offline: bool,
    concurrency: int | None,
    seed: int | None,
    islands: int | None,
    max_calls: int | None,
    prompt_chars: int,
    llm_options: dict[str, Any],
    cache_dir: Path,
    runs_dir: Path,
    run_id: str | None,
    resume: Path | None,
    record: bool,
    replay: Path | None,
    device: str,
    compile_: str,
    batch_size: int,
) -> tuple[Summary, dict[str, Any]]:
    from minact import runreport, search
    from minact.cache import FitnessCache
    from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
    from minact.ranking import lab_summary
    from minact.runlog import RunLog

    log: RunLog
    previous: dict[str, Any] | None = None
    history: History | None = None
    if resume is not None:
        log = RunLog.open(resume)
        previous = log.read_run()
        history = search.History.from_events(list(log.events()))
    lab = _lab_for(tasks, previous)
    prev = previous or {}
    config = search.SearchConfig(
        budget=budget or int(prev.get("budget", 100)),
        concurrency=concurrency or int(prev.get("concurrency", 4)),
        seed=seed if seed is not None else int(prev.get("seed", 0)),
        islands=islands or int(prev.get("islands", 4)),
        max_calls=max_calls or 0,
        prompt_chars=prompt_chars,
    )
    if resume is None:
        log = _create_log(runs_dir, run_id, config.seed)
    run: dict[str, Any] = {
        **prev,
        "run_id": log.directory.name,
        "directory": str(log.directory),
        "minact": _version(),
        "created": prev.get("created", time.time()),
        "status": "running",
        "message": "",
        "budget": config.budget,
        "concurrency": config.concurrency,
        "seed": config.seed,
        "islands": config.islands,
        "max_calls": config.call_cap,
        "tasks": str(lab.path),
        "lab_digest": lab.digest(),
        "task_digests": [t.digest() for t in lab.tasks],
        "lab_summary": lab_summary(lab),
    }
    log.write_run(run)
    record_path = log.directory / "llm.jsonl" if record else None
    show, live = _progress(sys.stderr.isatty())
    evaluator_config = EvaluatorConfig(device=device, compile=compile_, batch_size=batch_size)

    async def main(evaluator: Evaluator) -> Summary:
        async with _proposer(llm_url, model, offline, replay, record_path, llm_options) as (
            proposer,
            described,
        ):
            run.update(described)
            err.print(_describe(described))
            log.append({"event": "resume" if resume else "start", "time": time.time(), **described})
            with live:
                return await search.run(config, lab, proposer, evaluator, log.append, show, history)

    with FitnessCache(cache_dir, EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, evaluator_config) as evaluator:
            summary = asyncio.run(main(evaluator))
            run.update(
                status=summary.status,
                message=summary.message,
                counters=summary.counters.to_dict(),
                seconds=prev.get("seconds", 0.0) + summary.seconds,
                device=evaluator.info.get("device") or prev.get("device"),
                worker=evaluator.info or prev.get("worker"),
            )
            log.append({"event": "end", "time": time.time(), "status": summary.status})
            log.close()
            log.write_run(run)
            # The report's curves come from the worker that is already warm.
            data = runreport.build(log.directory, lambda: nullcontext(evaluator))
    runreport.write(log.directory, data)
    for warning in data.warnings:
        err.print(f"note: {warning}", soft_wrap=True)
    return summary, data.ranking


def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory.")],
    cache_dir: Annotated[
        Path | None, typer.Option(help="Fitness cache (default $MINACT_CACHE_DIR or ./cache).")
    ] = None,
    device: Annotated[str, typer.Option(help="Where activation curves are computed.")] = "cpu",
) -> None:
    """(Re)write report.md, report.html and ranking.json for a run."""
    from minact import runreport
    from minact.cli import DEVICES, _cache_dir, _choice

    _choice(device, DEVICES, "--device")
    try:
        factory = runreport.evaluator_factory(run_dir, _cache_dir(cache_dir), device)
        written = runreport.write(run_dir, runreport.build(run_dir, factory))
    except MinactError as e:
        err.print(f"[red]error:[/red] {e}", soft_wrap=True)
        raise typer.Exit(code=e.exit_code) from None
    for path in written:
        err.print(f"wrote {path}", soft_wrap=True)


def _create_log(runs_dir: Path, run_id: str | None, seed: int) -> RunLog:
    from minact.runlog import RunLog, new_run_id

    if run_id is not None:
        return RunLog.create(runs_dir, run_id)
    base = new_run_id(time.time(), seed)
    for n in range(1, 100):
        try:
            return RunLog.create(runs_dir, base if n == 1 else f"{base}-{n}")
        except ConfigError:
            continue
    raise ConfigError(f"cannot create a run directory under {runs_dir}")


def _describe(described: dict[str, Any]) -> str:
    kind = described["proposer"]
    if kind == "offline":
        return (
            "proposer: the offline mutator (no LLM configured; set --llm-url or "
            "MINACT_LLM_URL to use one)"
        )
    if kind == "replay":
        return f"proposer: replies replayed from {described['replay']}"
    return f"proposer: LLM {described['llm']['model']} at {described['llm']['url']}"


def _version() -> str:
    import minact

    return minact.__version__
