"""The table of a run's checks: lab fitness beside validation and confirmed fitness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minact.claims import claim_text
from minact.report.data import fmt
from minact.runs.ranking import difference_spec, fitness_specs

__all__ = ["check_table"]


def check_table(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Returns the header and rows of a run's checks table: lab fitness beside validation
    fitness and confirmed fitness, per checked candidate in lab order."""
    # The digits of the run's fitness kind ("+.3f" printed an MSE of 28.38 as "+28.384").
    spec, spread = fitness_specs(doc["lab"])
    diff = difference_spec(doc["lab"])
    checks = doc.get("checks") or {}
    validation, confirmation = checks.get("validation"), checks.get("confirmation")
    if confirmation and confirmation.get("skipped"):
        confirmation = None  # it scored nothing: no column to show (check_text says why)
    header = ["#", "name", "lab fitness"]
    # Beside the fitness on all of the validation tasks, the one the verdict rests on when
    # some of them are the lab's (runs.checks): on the others alone.
    held = int(validation.get("held_out_tasks") or 0) if validation else 0
    split = bool(validation and validation.get("shared_tasks")) and held > 0
    if validation:
        header.append(f"validation ({validation['suite']})")
        header += [f"held out ({held} task{'s' if held != 1 else ''})"] if split else []
        header.append("wins lab, loses validation")
    if confirmation:
        header += [f"confirmed ({confirmation['seeds']} seeds)", "beats best baseline"]
    rows: list[list[str]] = []
    for c in doc["candidates"]:
        v, k = c.get("validation"), c.get("confirmation")
        if v is None and k is None:
            continue
        row = [str(c["rank"] or "—"), c["name"] + (" (baseline)" if c["baseline"] else "")]
        row.append(fmt(c["fitness"], spec))
        if validation:
            row.append(fmt(v and v["fitness"], spec))
            row += [fmt(v and v.get("held_out_fitness"), spec)] if split else []
            row.append("yes" if v and v["flag"] else "")
        if confirmation:
            row.append(
                f"{fmt(k['fitness'], spec)} ± {fmt(k['fitness_spread'], spread)}" if k else "—"
            )
            row.append("" if c["baseline"] or not k else claim_text(k.get("claim"), diff))
        rows.append(row)
    return header, rows
