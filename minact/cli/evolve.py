"""`minact evolve`: flags in, minact.jobs.evolve runs the search, the ranking out."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from minact.cli._conflicts import check_models, refuse_conflicts, run_keeps
from minact.cli._live import search_progress
from minact.cli._shared import (
    BACKEND_HELP,
    EXIT_INTERRUPTED,
    MAX_BATCH,
    MAX_SEEDS,
    MAX_THREADS,
    Backend,
    CacheOpt,
    Compile,
    Device,
    RayAddressOpt,
    cache_dir,
    fail,
    note,
    path_value,
    print_ranking,
    workers_count,
)
from minact.errors import MinactError
from minact.search import config as bounds

__all__ = ["evolve"]


class FollowUpRule(str, Enum):
    """When a bad reply is answered (minact.search.followups)."""

    paying = "paying"
    always = "always"


def _api_key() -> str | None:
    # The key is read from the environment only: a flag would show in `ps` and shell history.
    for name in ("MINACT_API_KEY", "OPENAI_API_KEY"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _joined(text: str | None) -> str | None:
    """Returns a comma-separated list without spaces, or None when it is empty."""
    from minact.search.ensemble import split

    return ",".join(split(text)) or None


def evolve(
    ctx: typer.Context,
    budget: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=bounds.MAX_BUDGET,
            show_default="100",
            help="Distinct candidates to evaluate.",
        ),
    ] = None,
    tasks: Annotated[
        Path | None,
        typer.Option(parser=path_value, help="Lab file (default: ./tasks.toml or built-in)."),
    ] = None,
    llm_url: Annotated[
        str | None,
        typer.Option(
            envvar="MINACT_LLM_URL",
            show_envvar=True,
            help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; for an ensemble on "
            "several servers, one URL per --model, comma-separated, in the same order.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            envvar="MINACT_MODEL",
            show_envvar=True,
            help="Model name (default: the server's first). An ensemble: several names, "
            "comma-separated (--model fast,strong); each proposal draws one. The name "
            "'offline' is minact's offline mutator, which takes no URL (--model small,offline).",
        ),
    ] = None,
    model_weights: Annotated[
        str | None,
        typer.Option(
            envvar="MINACT_MODEL_WEIGHTS",
            show_envvar=True,
            show_default="equal",
            help="How often each --model is drawn, comma-separated in the same order, "
            "e.g. 0.8,0.2.",
        ),
    ] = None,
    follow_ups: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=bounds.MAX_FOLLOW_UPS,
            show_default="2",
            help="Times a reply that copies a known function, does not parse or is rejected "
            "is answered, in the same conversation, with the reason; each is an LLM call.",
        ),
    ] = None,
    follow_up_rule: Annotated[
        FollowUpRule | None,
        typer.Option(
            show_default="paying",
            help="When bad replies are answered: paying (while a model's follow-ups can "
            "still yield new valid candidates as often per call as its first requests, "
            "judged from the run so far) or always.",
        ),
    ] = None,
    repair: Annotated[
        bool | None,
        typer.Option(
            "--repair/--no-repair",
            show_default="repair",
            help="Rewrite the slips models make in a reply's code before it is judged: bare "
            "sigmoid(x) for torch.sigmoid(x), torch.gelu for F.gelu, numpy or math on tensors, "
            "Python if/max on a tensor (as torch.where/torch.clamp), the function written "
            "twice. Each change is listed in the run's events and counted in the report.",
        ),
    ] = None,
    context_tokens: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=bounds.MAX_CONTEXT_TOKENS,
            show_default="0: ask the server",
            help="The model's context in tokens, for servers that do not report it "
            "(llama-cpp-python, Ollama); the prompt is cut to fit it.",
        ),
    ] = None,
    offline: Annotated[
        bool, typer.Option(help="Use the offline mutator even if the environment names an LLM.")
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, max=bounds.MAX_CONCURRENCY, show_default="4", help="Proposals in flight at once."
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0, max=bounds.MAX_SEED, show_default="0", help="Seed of all selection randomness."
        ),
    ] = None,
    islands: Annotated[
        int | None,
        typer.Option(min=1, max=bounds.MAX_ISLANDS, show_default="4", help="Sub-populations."),
    ] = None,
    max_calls: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=bounds.MAX_CALLS,
            show_default="4 x budget + concurrency",
            help="Cap on LLM calls, follow-ups included (offline proposals count too).",
        ),
    ] = None,
    prompt_chars: Annotated[
        int | None,
        typer.Option(
            min=500, max=bounds.MAX_PROMPT_CHARS, show_default="8000", help="Prompt size limit."
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=bounds.MAX_TEMPERATURE,
            show_default="0.8",
            help="LLM sampling temperature.",
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            min=16, max=bounds.MAX_REPLY_TOKENS, show_default="1024", help="LLM reply token limit."
        ),
    ] = None,
    llm_retries: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=bounds.MAX_RETRIES,
            show_default="4",
            help="Retries of a failed LLM request (429, 5xx, timeouts).",
        ),
    ] = None,
    llm_timeout: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            max=bounds.MAX_LLM_TIMEOUT,
            show_default="300",
            help="Seconds one LLM request may take, its retries and waits included; the"
            " start-up check of the server (GET /models) gets as long, from 5 to 60 s.",
        ),
    ] = None,
    cache: CacheOpt = None,
    runs_dir: Annotated[
        Path, typer.Option(parser=path_value, help="Where run directories go.")
    ] = Path("runs"),
    run_id: Annotated[str | None, typer.Option(help="Name of the run directory.")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            parser=path_value,
            help="Continue a stopped or killed run with the settings it started with.",
        ),
    ] = None,
    record: Annotated[
        bool, typer.Option(help="Store every LLM exchange in the run directory (llm.jsonl).")
    ] = False,
    replay: Annotated[
        Path | None,
        typer.Option(
            parser=path_value,
            help="Serve LLM replies from a --record file, with the settings of the run that "
            "recorded it (its run.json) where no flag is given.",
        ),
    ] = None,
    device: Annotated[
        Device | None, typer.Option(show_default="auto", help="Where candidates train.")
    ] = None,
    compile_: Annotated[
        Compile | None,
        typer.Option("--compile", show_default="auto", help="torch.compile the training step."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_BATCH, show_default="0: auto", help="Candidates per batch."),
    ] = None,
    workers: Annotated[
        str | None,
        typer.Option(
            show_default="auto",
            help="Worker processes training candidates: N, or auto (one per GPU; on CPU one "
            "single-thread worker per core).",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_THREADS,
            show_default="0: cores / workers",
            help="Torch threads per worker.",
        ),
    ] = None,
    backend: Annotated[
        Backend | None, typer.Option("--backend", show_default="local", help=BACKEND_HELP)
    ] = None,
    ray_address: RayAddressOpt = None,
    validate: Annotated[
        str | None,
        typer.Option(
            metavar="SUITE_OR_FILE",
            help="After the search, score its top --validate-top by lab fitness on this "
            "built-in suite (algorithmic, real, transfer, ...) or tasks file; never shown "
            "to the search. The report shows both fitnesses and a recommended pick.",
        ),
    ] = None,
    validate_top: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=bounds.MAX_BUDGET,
            show_default="5",
            help="How many of the best --validate scores.",
        ),
    ] = None,
    confirm: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=bounds.MAX_BUDGET,
            metavar="K",
            show_default="0: none",
            help="After the search, score the top K new candidates and the best 3 baselines "
            "again with --confirm-seeds seeds per task before naming a winner.",
        ),
    ] = None,
    confirm_seeds: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_SEEDS, show_default="5", help="Seeds per task for --confirm."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the final ranking (JSON).")
    ] = False,
) -> None:
    """Search for activation functions with an LLM or the offline mutator; write a run dir.

    With --resume, the run continues with the settings it was started with; only the
    budget, the call cap, the LLM's address, retries and timeout, recording, where
    candidates train and --confirm may be changed (not --validate).

    Ensembles: --model fast,strong --model-weights 0.8,0.2 draws a model for each
    proposal (reproducibly, from --seed); --llm-url u1,u2 puts them on two servers;
    --model small,offline pairs a model with the offline mutator. API keys come from
    MINACT_API_KEY or OPENAI_API_KEY only.
    """
    from minact.jobs import evolve as job
    from minact.runs.checks import check_text
    from minact.runs.rundir import RUN_ID_RULE, usable_run_id

    whole = resume is None and not offline and replay is None
    if run_id is not None and not usable_run_id(run_id):
        raise typer.BadParameter(f"{run_id!r}: {RUN_ID_RULE}", param_hint="--run-id")
    check_models(ctx, model, model_weights, llm_url, whole, offline)
    refuse_conflicts(ctx)
    given: dict[str, Any] = {
        "budget": budget,
        "tasks": str(tasks) if tasks is not None else None,
        "concurrency": concurrency,
        "seed": seed,
        "islands": islands,
        "max_calls": max_calls,
        "prompt_chars": prompt_chars,
        "offline": True if offline else None,
        "llm_url": _joined(llm_url),
        "model": _joined(model),
        "model_weights": _joined(model_weights),
        "follow_ups": follow_ups,
        "follow_up_rule": follow_up_rule.value if follow_up_rule is not None else None,
        "repair": repair,
        "context_tokens": context_tokens,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "llm_retries": llm_retries,
        "llm_timeout": llm_timeout,
        "replay": str(replay) if replay is not None else None,
        "record": True if record else None,
        "device": device.value if device is not None else None,
        "compile": compile_.value if compile_ is not None else None,
        "batch_size": batch_size,
        "backend": backend.value if backend is not None else None,
        "ray_address": ray_address,  # checked against the run's backend (jobs.options)
        "workers": workers_count(workers) if workers is not None else None,
        "threads": threads,
        "validate": validate,
        "validate_top": validate_top,
        "confirm": confirm,
        "confirm_seeds": confirm_seeds,
    }
    show, live = search_progress(sys.stderr.isatty() and not as_json)
    kept = run_keeps(ctx)
    try:
        result = asyncio.run(
            job.run(
                {k: v for k, v in given.items() if v is not None and k not in kept},
                cache_dir=cache_dir(cache),
                runs_dir=runs_dir,
                run_id=run_id,
                resume=resume,
                api_key=_api_key(),
                hooks=job.Hooks(progress=show, say=note, live=live),
            )
        )
    except MinactError as e:
        fail(e)
    except job.RunStopped as e:  # run.json says what is missing and how to write it
        note(f"interrupted: {e}")
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    for warning in result.warnings:
        note(f"note: {warning}")
    if as_json:
        sys.stdout.write(json.dumps(result.ranking, indent=2) + "\n")
    else:
        print_ranking(result.ranking)
    for line in check_text(result.ranking.get("checks") or {}, result.ranking["lab"]):
        note(line)
    summary = result.summary
    note(f"run {result.directory.name}: {summary.status} — {summary.message}")
    note(f"  {result.directory}/report.html")
    note(f"  {result.directory}/report.md")
    if result.stopped:
        note("stopped once the run had ended and its report was written")
    if summary.status == "interrupted" or result.stopped:
        raise typer.Exit(code=EXIT_INTERRUPTED)
    # A replay that ran to the end of its recording did all it could: nothing failed.
    if summary.status not in ("finished", "replay_ended"):
        raise typer.Exit(code=1)
