"""A run's checks after the search: held-out validation and confirmation with more seeds.

`evolve --validate SUITE_OR_FILE` scores the run's top K by lab fitness on a validation lab
that the search never sees (nothing of it reaches a prompt or the population), and
`evolve --confirm K` scores the top K new candidates and the best baselines again with more
seeds per task. Each check is one event in events.jsonl ("validation", "confirmation")
holding the check's lab summary and the Score of every candidate it scored, so `report`
rebuilds it from the log like everything else; the latest event of each kind wins (one of
the wrong shape is skipped: runs.events decodes it).

`attach` adds to a ranking document, per candidate that was checked, a `validation` block
(its fitness there, its fitness on the held-out tasks there, its rank among the validated
by that, and `flag`: it beats the reference on the lab but loses to it on the held-out
tasks, each judged against the reference's fitness there) and a `confirmation` block
(fitness with more seeds, and whether it beats the best confirmed baseline beyond noise),
plus a document-level `checks` block naming the recommended pick (best held-out fitness
among the validated top K) and the confirmed winner. Pure: events in, JSON data out.

A validation task that is also a task of the run's lab (the same digest:
minact.agreement.shared_tasks, the rule `rescore` starts from) is no held-out task: the
search picked its candidates on those very numbers. The summary names such tasks
(`shared_tasks`), and the held-out fitness, the rank, the flags and the pick rest on the
other tasks alone; with none left, nothing is held out, and there is no pick and no flag.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from minact.agreement import shared_tasks, task_names
from minact.claims import MEASURES, claim_text, picked_among, selection_note
from minact.fitness import task_fitness
from minact.numbers import number_text
from minact.runs import events as decode
from minact.runs.ranking import (
    RankingDocument,
    RankingEntry,
    difference_spec,
    fitness_kind,
    fitness_specs,
    ranking_document,
    reference_fitness,
)
from minact.score import Score

__all__ = ["BASELINES_CONFIRMED", "attach", "check_event", "check_text"]

BASELINES_CONFIRMED = 3  # the best baselines by lab fitness, confirmed beside the top K


def check_event(
    kind: str, summary: Mapping[str, Any], scores: Iterable[Score], **facts: Any
) -> dict[str, Any]:
    """Returns the events.jsonl line of a check ("validation" or "confirmation")."""
    return {
        "event": kind,
        "lab_summary": dict(summary),
        "scores": [s.to_dict() for s in scores],
        **facts,
    }


@dataclass(frozen=True, slots=True)
class _Check:
    event: Mapping[str, Any]
    ranking: RankingDocument  # of the scores the check made, on its lab
    scores: Sequence[Score]
    summary: Mapping[str, Any]  # the check's lab summary


def _latest(events: Iterable[Mapping[str, Any]], kind: str) -> _Check | None:
    """Returns the latest event of `kind` that has the shape of one (others are skipped:
    runs.history counts them), ranked."""
    found = None
    for e in events:
        if e.get("event") == kind:
            try:
                found = (e, *decode.check(e))
            except decode.MalformedEvent:
                continue
    if found is None:
        return None
    event, scores, summary = found
    return _Check(event, ranking_document(scores, summary), scores, summary)


def _on_tasks(s: Score, names: Collection[str], fitness: str) -> Score:
    """Returns a successful Score restricted to the tasks `names`, its fitness and mean OOD
    MSE taken over them (its seed spread is not known there: None); a failure as it is."""
    if not s.ok:
        return s
    tasks = {n: t for n, t in s.tasks.items() if n in names}
    if not tasks:
        return replace(s, tasks={}, fitness=None, fitness_spread=None, mean_ood_mse=None)
    kind = fitness if fitness in MEASURES else "mean_log_ratio"
    value, mean_ood = task_fitness(tasks, kind)
    return replace(s, tasks=tasks, fitness=value, fitness_spread=None, mean_ood_mse=mean_ood)


def _held_out(check: _Check, shared: Sequence[str]) -> RankingDocument | None:
    """Returns the check's ranking on its tasks that are not `shared` (the whole ranking
    when none is), or None when every task is shared."""
    if not shared:
        return check.ranking
    tasks = [t for t in check.summary["tasks"] if t["name"] not in shared]
    if not tasks:
        return None
    names = {str(t["name"]) for t in tasks}
    lab = dict(check.summary["lab"])
    lab["families"] = list(dict.fromkeys(t["family"] for t in tasks))
    scores = [_on_tasks(s, names, fitness_kind(lab)) for s in check.scores]
    return ranking_document(scores, {"lab": lab, "tasks": tasks})


def _beats(fitness: float | None, other: float | None) -> bool:
    """Returns whether `fitness` is known and lower (better) than a known `other`."""
    return fitness is not None and other is not None and fitness < other


def _validation(doc: RankingDocument, check: _Check) -> tuple[dict[str, Any], RankingDocument]:
    """Returns the validation summary and `doc` with a `validation` block per checked row."""
    event = check.event
    shared = shared_tasks(check.ranking["tasks"], {str(t["digest"]) for t in doc["tasks"]})
    held_out = _held_out(check, shared)
    checked = {c["code_hash"]: c for c in check.ranking["candidates"] if c["code_hash"]}
    held = {c["code_hash"]: c for c in (held_out or {"candidates": []})["candidates"]}
    # The reference's fitness on each (0 under the mean log-ratio; under the mean OOD MSE its
    # own, where it was scored): "beats the reference" is "fitness < 0" under the first only.
    ref_lab = reference_fitness(doc)
    ref_there = reference_fitness(held_out) if held_out is not None else None
    rows: list[RankingEntry] = []
    for c in doc["candidates"]:
        v = checked.get(c["code_hash"]) if c["code_hash"] else None
        if v is None:
            rows.append(c)
            continue
        h = held.get(v["code_hash"])
        lab, there = c["fitness"], h["fitness"] if h else None
        # Losing on tasks the search was picked on is no held-out verdict: none there.
        flag = (
            h is not None and _beats(lab, ref_lab) and (there is None or _beats(ref_there, there))
        )
        block = {
            "suite": event.get("suite"),
            "fitness": v["fitness"],
            "fitness_spread": v["fitness_spread"],
            "held_out_fitness": there,
            "rank": h["rank"] if h else None,
            "status": v["status"],
            "flag": flag,
        }
        rows.append(cast(RankingEntry, {**c, "validation": block}))
    doc = cast(RankingDocument, {**doc, "candidates": rows})
    validated = [c for c in rows if "validation" in c and c["status"] == "ok"]
    scored = [c for c in validated if c["validation"]["held_out_fitness"] is not None]
    pick = min(scored, key=lambda c: c["validation"]["held_out_fitness"], default=None)
    return {
        "suite": event.get("suite"),
        "path": check.ranking["lab"]["path"],
        "tasks": len(check.ranking["tasks"]),
        "shared_tasks": shared,
        "held_out_tasks": len(check.ranking["tasks"]) - len(shared),
        "top": event.get("top"),
        "seconds": event.get("seconds"),
        "candidates": len(validated),
        "flagged": [c["name"] for c in validated if c["validation"]["flag"]],
        "recommended": None
        if pick is None
        else {
            "name": pick["name"],
            "code_hash": pick["code_hash"],
            "fitness": pick["fitness"],
            "validation_fitness": pick["validation"]["fitness"],
            "held_out_fitness": pick["validation"]["held_out_fitness"],
        },
    }, doc


def _confirmation(doc: RankingDocument, check: _Check) -> dict[str, Any]:
    """Returns the confirmation summary; adds a `confirmation` block to each checked row of
    `doc` (a copy the caller owns)."""
    event, checked = check.event, check.ranking
    # The confirmed were picked from all of the run's new candidates on these same tasks
    # (more seeds, same tasks): that is the choice their claims are optimistic about.
    pool = picked_among(doc["candidates"])

    def picked(claim: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if claim is None:
            return None
        return {**claim, "compared": max(int(claim.get("compared") or 1), pool)}

    by_hash = {c["code_hash"]: c for c in checked["candidates"] if c["code_hash"]}
    rows: list[RankingEntry] = []
    for c in doc["candidates"]:
        v = by_hash.get(c["code_hash"]) if c["code_hash"] else None
        if v is None:
            rows.append(c)
            continue
        block = {
            "seeds": event.get("seeds"),
            "fitness": v["fitness"],
            "fitness_spread": v["fitness_spread"],
            "rank": v["rank"],
            "status": v["status"],
            "claim": picked(v.get("claim")),
        }
        rows.append(cast(RankingEntry, {**c, "confirmation": block}))
    doc["candidates"] = rows
    new = [c for c in checked["candidates"] if not c["baseline"] and c["status"] == "ok"]
    winner = new[0] if new else None  # the ranking is best first
    skipped = event.get("skipped")
    return {
        "seeds": event.get("seeds"),
        "candidates": len(checked["candidates"]),
        "seconds": event.get("seconds"),
        # Why nothing was scored (no new candidate ranked in full), or None: the check ran.
        "skipped": skipped if isinstance(skipped, str) else None,
        "winner": None
        if winner is None
        else {
            "name": winner["name"],
            "code_hash": winner["code_hash"],
            "fitness": winner["fitness"],
            "fitness_spread": winner["fitness_spread"],
            "claim": picked(winner.get("claim")),
        },
    }


def attach(doc: RankingDocument, events: Iterable[Mapping[str, Any]]) -> RankingDocument:
    """Returns `doc` with the blocks of the latest validation and confirmation in `events`
    (unchanged when the run made neither)."""
    events = list(events)
    validation, confirmation = _latest(events, "validation"), _latest(events, "confirmation")
    if validation is None and confirmation is None:
        return doc
    checks: dict[str, Any] = {}
    if validation is not None:
        summary, doc = _validation(doc, validation)
        checks["validation"] = summary
    if confirmation is not None:
        doc = cast(RankingDocument, {**doc})
        checks["confirmation"] = _confirmation(doc, confirmation)
    return {**doc, "checks": checks}


def check_text(checks: Mapping[str, Any], lab: Mapping[str, Any]) -> list[str]:
    """Returns the sentences that say what a run's checks found, for reports and the CLI;
    numbers take the digits of the fitness kind of `lab` (the run's lab summary)."""
    lines: list[str] = []
    # Under "mean_ood_mse" a log-ratio's "+.3f" printed an MSE of 28.38 as "+28.384".
    spec, _ = fitness_specs(lab)

    def _signed(v: float | None) -> str:
        return number_text(v, spec)

    v = checks.get("validation")
    if v:
        pick = v.get("recommended")
        lines.append(_validation_text(v))
        if pick and v.get("shared_tasks"):
            lines.append(
                f"recommended pick: {pick['name']} (best fitness among them on the held-out "
                f"{_tasks(v['held_out_tasks'])}: {_signed(pick['held_out_fitness'])}; on all of "
                f"{v['suite']}: {_signed(pick['validation_fitness'])}; lab fitness "
                f"{_signed(pick['fitness'])})"
            )
        elif pick:
            lines.append(
                f"recommended pick: {pick['name']} (best validation fitness among them: "
                f"{_signed(pick['validation_fitness'])}; lab fitness {_signed(pick['fitness'])})"
            )
        if v.get("flagged"):
            held = int(v.get("held_out_tasks") or 0)
            out = "held-out task" if held == 1 else f"{held} held-out tasks"
            lose = f"validation's {out}" if v.get("shared_tasks") else "validation"
            lines.append(
                f"win the lab (fitness below the reference's) but lose {lose} (fitness above "
                "the reference's): " + ", ".join(v["flagged"])
            )
    c = checks.get("confirmation")
    if c:
        w = c.get("winner")
        if c.get("skipped"):
            lines.append(f"confirmation with {c['seeds']} seeds per task skipped: {c['skipped']}")
        elif w:
            claim = w.get("claim")
            against = f" ({claim['against']})" if claim else ""
            caveat = selection_note(claim)
            lines.append(
                f"confirmed with {c['seeds']} seeds per task: best new candidate {w['name']} at "
                f"{_signed(w['fitness'])}; beats best baseline{against}: "
                f"{claim_text(claim, difference_spec(lab))}" + (f" ({caveat})" if caveat else "")
            )
        else:
            lines.append(f"confirmed with {c['seeds']} seeds per task: no new candidate ranked")
    return lines


def _tasks(n: int) -> str:
    return "task" if n == 1 else f"{n} tasks"


def _validation_text(v: Mapping[str, Any]) -> str:
    """Returns what a validation scored, and which of its tasks are the run's lab's."""
    said = (
        f"validation on {v['suite']} ({v['tasks']} tasks), never shown to the search: "
        f"{v['candidates']} of the top {v['top']} by lab fitness scored"
    )
    shared: Sequence[str] = v.get("shared_tasks") or []
    if not shared:
        return said
    # A task of the run's lab (the same digest) was scored alike in the search, which
    # picked the candidates on it: it cannot tell whether the pick holds elsewhere.
    said = (
        f"validation on {v['suite']} ({v['tasks']} tasks): {v['candidates']} of the top "
        f"{v['top']} by lab fitness scored; {len(shared)} of its tasks ({task_names(shared)}) "
        f"{'is a task' if len(shared) == 1 else 'are tasks'} of the run's lab (the same data "
        "and settings), which the search picked its candidates on"
    )
    held = int(v.get("held_out_tasks") or 0)
    if held <= 0:
        return f"{said}, so none is held out: no pick is recommended and none is flagged"
    other = "the other task" if held == 1 else f"the other {held} tasks"
    return f"{said}, so the pick and the flags rest on {other} alone, never shown to the search"
