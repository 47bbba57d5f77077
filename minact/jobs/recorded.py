"""The models a `--replay` recording was made with, against the `--model` list given.

An ensemble draws each proposal's model from its list and weights (reproducibly, from the
seed), and a proposal drawn for the offline mutator is built otherwise than one drawn for
a server. A replay given another list or other weights would draw other models, so the
recorded replies, served by proposal number, would answer other proposals than they did:
it is refused. A single model under another name draws nothing: that is only said.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from minact.errors import ConfigError
from minact.jobs.options import EvolveOptions
from minact.runs.rundir import RunLog
from minact.search.ensemble import PlanError, split, weigh

__all__ = ["check_models"]

Plan = tuple[tuple[str, ...], tuple[float, ...]]  # model names, and their shares (an ensemble)


def check_models(given: Mapping[str, Any]) -> str | None:
    """Returns a warning when the `--model` given to a replay (`given["replay"]`) names its
    single model otherwise than the recording's run.json does, else None; raises
    ConfigError naming both lists when the given list or weights would draw other models.

    A recording with no readable run.json beside it is not judged here (see
    minact.jobs.options.replayed, which says what is wrong with it).
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
