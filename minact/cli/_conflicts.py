"""Flags of `minact evolve` and `minact rescore` that contradict each other, or lists
(models, weights, URLs) that do not fit together: a usage error naming the flags.

Only flags given on the command line conflict. A setting from the environment is a
default that a flag overrides: MINACT_LLM_URL or MINACT_MODEL left set while
`--offline` is given is not an error, `--offline` wins.
"""

from __future__ import annotations

import typer

__all__ = ["check_models", "refuse_conflicts", "refuse_rescore_conflicts", "run_keeps"]

# Flags that pick where candidates come from, which --offline replaces by the mutator.
_PROPOSER_FLAGS = (("llm_url", "--llm-url"), ("model", "--model"),
                   ("model_weights", "--model-weights"), ("replay", "--replay"))  # fmt: skip


def refuse_conflicts(ctx: typer.Context) -> None:
    """Fails with a usage error (exit code 2) naming the first two flags given on the
    command line that do not go together."""
    given = {name: value for name, value in ctx.params.items() if _typed(ctx, name)}
    if given.get("offline"):
        for name, flag in _PROPOSER_FLAGS:
            if name in given:
                ctx.fail(
                    f"--offline and {flag} do not go together: --offline proposes with the "
                    "offline mutator and asks no model; give one of them"
                )
    if given.get("resume") is not None and "run_id" in given:
        ctx.fail(
            "--resume and --run-id do not go together: a resumed run keeps its folder and "
            "its id; leave --run-id out, or start a new run without --resume"
        )


def refuse_rescore_conflicts(ctx: typer.Context) -> None:
    """Fails with a usage error (exit code 2) naming two ways of choosing `rescore`'s
    candidates given together: HASH, --all-cached and a run's --top best are one each, and
    --run only narrows where a HASH is looked for, or whose best are taken. Each was
    silently dropped for another."""
    given = {name: value for name, value in ctx.params.items() if _typed(ctx, name)}
    hashes, every = bool(given.get("hashes")), bool(given.get("all_cached"))
    if hashes and every:
        ctx.fail(
            "HASH and --all-cached do not go together: --all-cached rescores every candidate "
            "in the cache; give hashes or --all-cached"
        )
    chooser = "HASH" if hashes else "--all-cached" if every else None
    if chooser is not None and "top" in given:
        what = "the hashes named" if hashes else "every candidate in the cache"
        ctx.fail(
            f"{chooser} and --top do not go together: --top takes a run's best candidates, "
            f"{chooser} {what}; leave one out"
        )
    if every and "run" in given:
        ctx.fail(
            "--all-cached and --run do not go together: --all-cached takes the candidates of "
            "every run and of the cache; leave --run out, or give --top instead"
        )


def run_keeps(ctx: typer.Context) -> set[str]:
    """Returns the settings of a `--resume` that the environment gave (MINACT_MODEL,
    MINACT_MODEL_WEIGHTS left set) and the resumed run keeps as it started: a default is
    not the user's word to change them, and naming the flag in a refusal misled."""
    if ctx.params.get("resume") is None:
        return set()
    return {n for n in ("model", "model_weights") if _source(ctx, n) == "ENVIRONMENT"}


def _source(ctx: typer.Context, name: str) -> str | None:
    source = ctx.get_parameter_source(name)
    return None if source is None else source.name


def _typed(ctx: typer.Context, name: str) -> bool:
    """Returns whether the parameter `name` was given on the command line (typer's own
    copy of click names its sources; an environment variable or a default is not)."""
    return _source(ctx, name) == "COMMANDLINE"


# The environment variables that give the lists, by flag: an error names the one it read.
_ENVIRONMENT = {"--model": "MINACT_MODEL", "--model-weights": "MINACT_MODEL_WEIGHTS",
                "--llm-url": "MINACT_LLM_URL"}  # fmt: skip


def check_models(
    ctx: typer.Context,
    model: str | None,
    weights: str | None,
    url: str | None,
    whole: bool,
    offline: bool,
) -> None:
    """Raises a usage error naming the flag (or the environment variable that gave the
    value) when the weights, models and URLs do not fit.

    `whole`: the flags describe the whole ensemble (not a resume, which keeps its own).
    `offline`: no server is asked, so a MINACT_LLM_URL left in the environment is not judged.
    """
    from minact.search.ensemble import (
        PlanError,
        check_list,
        check_urls,
        parse_weights,
        plan,
        split,
        weigh,
    )

    try:
        for flag, text in (("--model", model), ("--model-weights", weights), ("--llm-url", url)):
            check_list(text, flag)
        if url:  # a resume may give another address: checked all the same
            check_urls(url, form=not offline)
        if weights:
            parse_weights(weights)
        if whole and url:
            plan(model, weights, url)
        elif whole and model and weights:  # no server: the models go unasked, the lists must fit
            names = split(model)
            weigh(names, weights, f"--model {','.join(names)}")
    except PlanError as e:
        hint = e.flag
        if _source(ctx, e.flag.removeprefix("--").replace("-", "_")) == "ENVIRONMENT":
            hint = f"{_ENVIRONMENT[e.flag]} (the environment's {e.flag})"
        raise typer.BadParameter(e.message, param_hint=hint) from None
