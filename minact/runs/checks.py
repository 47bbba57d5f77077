"""A run's checks after the search: held-out validation and confirmation with more seeds.

`evolve --validate SUITE_OR_FILE` scores the run's top K by lab fitness on a validation lab
that the search never sees (nothing of it reaches a prompt or the population), and
`evolve --confirm K` scores the top K new candidates and the best baselines again with more
seeds per task. Each check is one event in events.jsonl ("validation", "confirmation")
holding the check's lab summary and the Score of every candidate it scored, so `report`
rebuilds it from the log like everything else; the latest event of each kind wins (one of
the wrong shape is skipped: runs.events decodes it).

`attach` adds to a ranking document, per candidate that was checked, a `validation` block
(its fitness there, its rank among the validated, and `flag`: it beats the reference on
the lab but loses to it on validation) and a `confirmation` block (fitness with more seeds,
and whether it beats the best confirmed baseline beyond noise), plus a document-level
`checks` block naming the recommended pick (best validation fitness among the validated
top K) and the confirmed winner. Pure: events in, JSON data out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from minact.claims import claim_text, selection_note
from minact.runs import events as decode
from minact.runs.ranking import RankingDocument, RankingEntry, ranking_document
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
    return _Check(event, ranking_document(scores, summary))


def _validation(doc: RankingDocument, check: _Check) -> tuple[dict[str, Any], RankingDocument]:
    """Returns the validation summary and `doc` with a `validation` block per checked row."""
    event = check.event
    checked = {c["code_hash"]: c for c in check.ranking["candidates"] if c["code_hash"]}
    rows: list[RankingEntry] = []
    for c in doc["candidates"]:
        v = checked.get(c["code_hash"]) if c["code_hash"] else None
        if v is None:
            rows.append(c)
            continue
        lab, held = c["fitness"], v["fitness"]
        block = {
            "suite": event.get("suite"),
            "fitness": held,
            "fitness_spread": v["fitness_spread"],
            "rank": v["rank"],
            "status": v["status"],
            "flag": lab is not None and lab < 0 and (held is None or held > 0),
        }
        rows.append(cast(RankingEntry, {**c, "validation": block}))
    doc = cast(RankingDocument, {**doc, "candidates": rows})
    validated = [c for c in rows if "validation" in c and c["status"] == "ok"]
    scored = [c for c in validated if c["validation"]["fitness"] is not None]
    pick = min(scored, key=lambda c: c["validation"]["fitness"], default=None)
    return {
        "suite": event.get("suite"),
        "path": check.ranking["lab"]["path"],
        "tasks": len(check.ranking["tasks"]),
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
        },
    }, doc


def _confirmation(doc: RankingDocument, check: _Check) -> dict[str, Any]:
    """Returns the confirmation summary; adds a `confirmation` block to each checked row of
    `doc` (a copy the caller owns)."""
    event, checked = check.event, check.ranking
    # The confirmed were picked from all of the run's new candidates on these same tasks
    # (more seeds, same tasks): that is the choice their claims are optimistic about.
    pool = sum(1 for c in doc["candidates"] if c["status"] == "ok" and not c["baseline"])

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


def check_text(checks: Mapping[str, Any]) -> list[str]:
    """Returns the sentences that say what a run's checks found, for reports and the CLI."""
    lines: list[str] = []
    v = checks.get("validation")
    if v:
        pick = v.get("recommended")
        lines.append(
            f"validation on {v['suite']} ({v['tasks']} tasks), never shown to the search: "
            f"{v['candidates']} of the top {v['top']} by lab fitness scored"
        )
        if pick:
            lines.append(
                f"recommended pick: {pick['name']} (best validation fitness among them: "
                f"{pick['validation_fitness']:+.3f}; lab fitness {pick['fitness']:+.3f})"
            )
        if v.get("flagged"):
            lines.append(
                "win the lab (fitness < 0) but lose validation (fitness > 0): "
                + ", ".join(v["flagged"])
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
                f"confirmed with {c['seeds']} seeds per task: winner {w['name']} at "
                f"{w['fitness']:+.3f}; beats best baseline{against}: {claim_text(claim)}"
                + (f" ({caveat})" if caveat else "")
            )
        else:
            lines.append(f"confirmed with {c['seeds']} seeds per task: no new candidate ranked")
    return lines
