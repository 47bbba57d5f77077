"""What a `--replay` recording was made with: the settings a replay takes from its run
(`replayed`), and the models it drew, against the `--model` list given (`check_models`).

An ensemble draws each proposal's model from its list and weights (reproducibly, from the
seed), and a proposal drawn for the offline mutator is built otherwise than one drawn for
a server. A replay given another list or other weights would draw other models, so the
recorded replies, served by proposal number, would answer other proposals than they did:
it is refused. A single model under another name draws nothing: that is only said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from minact.errors import ConfigError
from minact.jobs.options import EvolveOptions, check_option, flag_name, started_with
from minact.runs.rundir import RunLog
from minact.runs.schema import BadValue
from minact.search.ensemble import PlanError, split, weigh

__all__ = ["check_models", "replayed"]

Plan = tuple[tuple[str, ...], tuple[float, ...]]  # model names, and their shares (an ensemble)


def check_models(given: Mapping[str, Any]) -> str | None:
    """Returns a warning when the `--model` given to a replay (`given["replay"]`) names its
    single model otherwise than the recording's run.json does, else None; raises
    ConfigError naming both lists when the given list or weights would draw other models.

    A recording with no readable run.json beside it is not judged here (see
    `replayed`, which says what is wrong with it).
    """
    if "model" not in given and "model_weights" not in given:
        return None  # the replay takes the recorded run's list and weights
    recording = Path(given["replay"])
    try:
        run = RunLog(recording.parent).read_run()
        started = EvolveOptions.from_run(run)
    except (ConfigError, TypeError, ValueError):
        return None
    llm = run.get("llm") if isinstance(run.get("llm"), dict) else {}
    # A run that named no model used the server's first, which its run.json names.
    recorded_model = started.model or (llm or {}).get("model")
    if not isinstance(recorded_model, str) or not split(recorded_model):
        return None
    if not isinstance(started.model_weights, (str, type(None))):  # `replayed` refuses it
        return None
    model = given.get("model", recorded_model)
    weights = given.get("model_weights", started.model_weights)
    recorded = _plan(recorded_model, started.model_weights)
    asked = _plan(model, weights)
    if asked == recorded:
        return None
    if recorded is not None and asked is not None and len(recorded[0]) == len(asked[0]) == 1:
        return (
            f"--model {model!r}: the recording was made with --model {recorded_model!r}; "
            "its replies are served as recorded"
        )
    was = _shown(recorded_model, started.model_weights, recorded)
    now = _shown(model, weights, asked)
    raise ConfigError(
        f"--replay {recording}: recorded with --model {was}, replayed with --model {now}: "
        "each proposal would draw another model than it did, and the recorded replies "
        "would answer other proposals; leave out --model and --model-weights to replay "
        "with the recorded ones"
    )


def _plan(model: str, weights: str | None) -> Plan | None:
    """Returns what decides the draws of `model` with `weights` (None: weights that do not
    fit the list, which can draw nothing as recorded)."""
    names = tuple(split(model))
    if len(names) < 2:
        return names, ()
    try:
        values = weigh(list(names), weights, f"--model {model}")
    except PlanError:
        return None
    total = sum(values)
    return names, tuple(round(v / total, 12) for v in values)  # 3,1 draws as 0.75,0.25


def _shown(model: str, weights: str | None, plan: Plan | None) -> str:
    """Returns a model list as the user writes it, with its weights when it has several."""
    if plan is not None and len(plan[0]) < 2:
        return repr(model)
    return f"{model!r} (weights {','.join(split(weights)) or 'equal'})"


# What a replay takes from the recorded run unless given: the settings that decide which
# proposal is asked what (and so which recorded reply answers it), the context that cut
# its prompts and follow-ups, and where it stopped (past it, no reply was recorded). The
# lab stays the user's (--tasks), as in any run.
_REPLAYED = (
    "budget",
    "max_calls",
    "seed",
    "concurrency",
    "islands",
    "prompt_chars",
    "model",
    "model_weights",
    "follow_ups",
    "follow_up_rule",
    "repair",
    "max_tokens",
    "context_tokens",
)


def replayed(given: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Returns `given` with the settings of the run that recorded `given["replay"]` (its
    run.json, beside the file) where the user gave none, and a line saying what was taken
    (None when nothing was: no run.json there, or every setting given).

    Raises ConfigError naming the file when that run.json is unreadable or holds a value
    its flag would refuse.
    """
    recorded = Path(given["replay"]).parent / "run.json"
    if not recorded.is_file():
        return dict(given), None
    try:
        run = RunLog(recorded.parent).read_run()
        others = {f.name for f in fields(EvolveOptions)} - set(_REPLAYED)
        # Only the settings a replay takes are checked: the others are not its concern.
        started = started_with(run, {**dict.fromkeys(others), **given}, recorded)
        taken = {k: getattr(started, k) for k in _REPLAYED if k not in given}
        context = (run.get("prompt") or {}).get("context")
        if "context_tokens" in taken and not taken["context_tokens"] and context is not None:
            # The server reported the context: the run was fitted to it, so the replay is.
            check_option("prompt.context", "context_tokens", context, 0)
            taken["context_tokens"] = context
    except BadValue as e:
        raise ConfigError(
            f"--replay {given['replay']}: the recorded run's {recorded}: {e}"
        ) from None
    except ConfigError as e:
        raise ConfigError(f"--replay {given['replay']}: the recorded run's {e}") from None
    default = EvolveOptions()
    taken = {k: v for k, v in taken.items() if v != getattr(default, k)}
    if not taken:
        return dict(given), None
    said = ", ".join(
        (flag_name(k) if v else f"--no-{k}") if isinstance(v, bool) else f"{flag_name(k)} {v}"
        for k, v in taken.items()
    )
    return {**given, **taken}, f"replaying with the recorded run's settings: {said}"
