"""A rescore's rank agreement in words: the same sentence in report.md, report.html and on
the terminal (pure: the agreement dict of ranking.json in, text out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from minact.agreement import MIN_INTERVAL_TASKS, task_names
from minact.report.data import fmt

__all__ = ["agreement_text"]


def _stat(s: Mapping[str, Any]) -> str:
    if s["lo"] is None and s["hi"] is None:
        return fmt(s["value"], "+.2f")
    return f"{fmt(s['value'], '+.2f')} (5-95%: {fmt(s['lo'], '+.2f')}..{fmt(s['hi'], '+.2f')})"


def _measured(agreement: Mapping[str, Any]) -> str:
    """Returns "Kendall tau ... and Spearman rho ...; <how the intervals were made>"."""
    tau, rho = _stat(agreement["kendall_tau"]), _stat(agreement["spearman_rho"])
    tasks = agreement["tasks"]
    # Too few tasks to resample has no interval (minact.agreement): say so, not "[v, v]".
    how = (
        f"no interval: {tasks} task{'s' if tasks != 1 else ''} here, too few to resample"
        if tasks < MIN_INTERVAL_TASKS
        else f"intervals over the {tasks} tasks here, resampled {agreement['resamples']} times"
    )
    return f"Kendall tau {tau} and Spearman rho {rho}; {how}"


def _shared_text(agreement: Mapping[str, Any]) -> str:
    """Returns what the tasks this lab shares with the candidates' own lab do to the
    agreement ("" when it shares none, or when that lab is not known)."""
    shared: Sequence[str] = agreement.get("shared_tasks") or []
    if not shared:
        return ""
    n = agreement["tasks"]
    # A task of the lab the candidates were ranked (and picked) on counts in both rankings
    # with the very same numbers: it agrees with itself, whatever other tasks would say.
    # Trained again with other networks (--seeds), it is still that task, which decides
    # far more than the networks' seeds do.
    are, they = ("is a task", "it agrees") if len(shared) == 1 else ("are tasks", "they agree")
    how, much = "scored alike there", ""
    if agreement.get("reseeded_tasks"):
        how, much = "here trained with other networks (--seeds)", " largely"
    said = (
        f"; {len(shared)} of the {n} tasks here ({task_names(shared)}) {are} of the lab the "
        f"candidates came from, {how}, so {they} with it{much} by construction"
    )
    held_out = agreement.get("held_out")
    if len(shared) >= n:
        return f"{said}: this says nothing about how the ranking holds on other tasks"
    if not held_out:
        return f"{said}; too few candidates to measure the agreement on the other tasks alone"
    rest = held_out["tasks"]
    other = "the other task" if rest == 1 else f"the other {rest} tasks"
    return f"{said}; on {other} alone: {_measured(held_out)}"


def agreement_text(agreement: Mapping[str, Any] | None) -> str:
    """Returns the rank agreement of a rescore in one sentence (or why there is none), and
    what the tasks it shares with the candidates' own lab do to it."""
    if not agreement:
        return (
            "not measured: fewer than 3 candidates have a fitness on the lab they came from "
            "(rescore a run's candidates to see it)"
        )
    return (
        f"over {agreement['candidates']} candidates (baselines included), the ranking by "
        f"original fitness and the ranking here agree with {_measured(agreement)}"
        + _shared_text(agreement)
    )
