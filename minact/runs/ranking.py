"""The ranking document (ranking.json, `score --json`): scores in, plain JSON data out.

Field names are a contract (README.md lists them): keep them stable once landed. Successful
candidates come first, best fitness first, equal fitness sharing a rank; failures
follow with `rank` null, `status` naming the failure kind and `reason` saying why. Between
them, with `rank` null too, come the candidates the evaluation cascade screened out after
stage 1 (`status` "screened", `fitness` null, their stage-1 fitness in `partial_fitness`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, cast

import minact
from minact.candidate import Hash, Rejection
from minact.claims import claims
from minact.fitness import family_means
from minact.lab.task import Lab
from minact.score import Score, TaskScore

__all__ = [
    "RankingDocument",
    "RankingEntry",
    "TaskEntry",
    "cache_state",
    "difference_spec",
    "failed",
    "fitness_kind",
    "fitness_specs",
    "fitness_words",
    "lab_summary",
    "original_lab_text",
    "ranked",
    "ranking_document",
    "reference_fitness",
    "rejection_score",
    "shown",
    "task_value",
]


class TaskEntry(TypedDict):
    """A candidate's numbers on one task (medians over seeds; standardised targets)."""

    ood_loss: float | None
    id_loss: float | None
    ood_spread: float | None
    log_ratio: float | None


class _Entry(TypedDict):
    rank: int | None
    name: str
    code_hash: str | None
    behaviour_hash: str | None
    source: str
    status: str
    reason: str
    fitness: float | None
    fitness_spread: float | None
    mean_ood_mse: float | None
    families: dict[str, float | None]
    tasks: dict[str, TaskEntry]
    cost: float | None
    baseline: bool
    parent: str | None
    cached: bool
    seconds: float


class RankingEntry(_Entry, total=False):
    """One row of ranking.json (the field names are a contract: README.md lists them).

    The required fields come from the candidate's Score; a run adds its lineage (index,
    origin, island, note) and a rescore the fitness on the lab it came from. `collision`
    names the behaviour hash the candidate shared with code that trains differently (its
    results are then its own, under its code hash), else null. `claim`: does a new
    candidate beat the ranking's best baseline beyond noise (minact.claims); null for
    baselines and failures, and where no claim can be made (no baseline, too few tasks).
    `validation` and `confirmation`: its scores on a run's held-out suite
    and with more seeds (minact.runs.checks), when the run made those checks.
    `partial_fitness` is a screened candidate's fitness on the cascade's stage-1 tasks,
    else null. `cached` is true when no training ran for the candidate in the call that
    scored it; `cached_tasks` counts its tasks whose results came from the cache (null
    where no task was scored, or in a log of an older minact): `cache_state` says both.
    """

    index: int
    origin: str
    island: int | None
    note: str
    original_fitness: float | None
    collision: str | None
    claim: dict[str, Any] | None
    validation: dict[str, Any]
    confirmation: dict[str, Any]
    partial_fitness: float | None
    cached_tasks: int | None


class _Document(TypedDict):
    minact: str
    run: dict[str, Any] | None
    lab: dict[str, Any]
    tasks: list[dict[str, Any]]
    candidates: list[RankingEntry]


class RankingDocument(_Document, total=False):
    """ranking.json, `score --json` and `rescore --json`: the lab, its tasks, and the rows.

    `agreement` (rescore): rank agreement between the candidates' original and new fitness.
    `checks` (a run with --validate or --confirm): what was checked, and the recommended pick.
    """

    agreement: dict[str, Any] | None
    checks: dict[str, Any]


def ranked(scores: Sequence[Score]) -> list[tuple[int | None, Score]]:
    """Returns (rank, score) pairs: ok scores by fitness (ties share a rank), then ok scores
    without a finite fitness (unranked: there is nothing to compare), then screened scores
    by their stage-1 fitness, then failures."""

    def finite(s: Score) -> bool:
        return s.fitness is not None and math.isfinite(s.fitness)

    ok = sorted(
        (s for s in scores if s.ok and finite(s)),
        key=lambda s: (s.fitness, s.name, s.code_hash or ""),
    )
    out: list[tuple[int | None, Score]] = []
    for i, s in enumerate(ok):
        tie = i > 0 and ok[i - 1].fitness == s.fitness
        out.append((out[-1][0] if tie else i + 1, s))
    unranked = sorted(
        (s for s in scores if s.ok and not finite(s)), key=lambda s: (s.name, s.code_hash or "")
    )
    screened = sorted(
        (s for s in scores if s.status == "screened"),
        key=lambda s: (s.partial_fitness if s.partial_fitness is not None else math.inf, s.name),
    )
    failed = sorted(
        (s for s in scores if not s.ok and s.status != "screened"), key=lambda s: (s.status, s.name)
    )
    out.extend((None, s) for s in [*unranked, *screened, *failed])
    return out


def shown(candidates: Sequence[RankingEntry], top: int = 30) -> list[RankingEntry]:
    """Returns the rows a ranking table shows: the best `top` new candidates and every
    baseline, in rank order."""
    out: list[RankingEntry] = []
    new = 0
    for c in candidates:
        if c["status"] == "ok" and (c["baseline"] or new < top):
            out.append(c)
            new += not c["baseline"]
    return out


def failed(candidates: Sequence[RankingEntry]) -> list[RankingEntry]:
    """Returns the rows of candidates that failed (neither ranked nor screened), in order."""
    return [c for c in candidates if c["status"] not in ("ok", "screened")]


def cache_state(entry: Mapping[str, Any]) -> str:
    """Returns where a ranking row's results came from: "hit" (all from the cache, no
    training), "part" (some tasks from the cache, the others trained), "new" (all trained),
    or "—" when that is not known (no task scored, or a log of an older minact)."""
    if entry.get("cached"):
        return "hit"
    if not isinstance(n := entry.get("cached_tasks"), int):
        return "—"
    return "part" if n > 0 else "new"


def fitness_kind(lab: Mapping[str, Any]) -> str:
    """Returns a lab summary's fitness kind: "mean_log_ratio" where it names none."""
    kind = lab.get("fitness")
    return kind if isinstance(kind, str) and kind else "mean_log_ratio"


def fitness_words(lab: Mapping[str, Any]) -> str:
    """Returns what a ranking's fitness is, as its headers say it: the kind, that lower is
    better and, for the mean log-ratio, that the reference scores 0. Under "mean_ood_mse"
    the reference has no fixed score (relu's is its own mean OOD MSE, 37.7 on a lab where
    the headers said "relu = 0"), so none is claimed."""
    kind = fitness_kind(lab)
    words = f"{kind}, lower is better"
    return f"{words}, {lab.get('reference')} = 0" if kind == "mean_log_ratio" else words


def fitness_specs(lab: Mapping[str, Any]) -> tuple[str, str]:
    """Returns the format specs of a fitness (and a family's column) and of its seed spread:
    a signed log-ratio to 3 decimals, or under "mean_ood_mse" an MSE to 4 significant digits,
    as the mean OOD MSE column prints the same number (its "+.3f" printed 28.384 beside
    28.38, and an MSE under 0.0005 as "+0.000")."""
    if fitness_kind(lab) == "mean_ood_mse":
        return ".4g", ".4g"
    return "+.3f", ".3f"


def difference_spec(lab: Mapping[str, Any]) -> str:
    """Returns the format spec of a difference of two fitnesses (a claim's interval ends):
    the fitness's own digits, always signed (a difference of MSEs is "+.4g")."""
    spec, _ = fitness_specs(lab)
    return spec if spec.startswith("+") else f"+{spec}"


def original_lab_text(doc: Mapping[str, Any]) -> str | None:
    """Returns what a rescore's "was" column holds (fitness on the lab the candidates came
    from, named with its kind) beside the lab every other number is on, or None for a
    ranking without that column."""
    if not any("original_fitness" in c for c in doc["candidates"]):
        return None
    here = doc["lab"]
    there = (doc.get("run") or {}).get("from_lab") or {}
    where = f"{there['path']} ({fitness_words(there)})" if there.get("path") else "not recorded"
    text = f'"was": fitness on the lab the candidates came from, {where}; every other number: '
    text += f"on {here['path']} ({fitness_words(here)})"
    if there.get("path") and fitness_kind(there) != fitness_kind(here):
        # A log-ratio beside an MSE: the two columns are not one measure.
        text += "; the two fitness kinds differ, so compare ranks, not values"
    return text


def reference_fitness(doc: Mapping[str, Any]) -> float | None:
    """Returns the reference activation's fitness in a ranking document: 0 under the mean
    log-ratio (by definition), else the reference baseline's own fitness, None when the
    ranking has none."""
    lab = doc["lab"]
    if fitness_kind(lab) == "mean_log_ratio":
        return 0.0
    ref = lab.get("reference")
    rows = [c for c in doc["candidates"] if c["baseline"] and c["name"] == ref]
    fitness = rows[0]["fitness"] if rows else None
    return float(fitness) if fitness is not None else None


def task_value(entry: RankingEntry, task: str, key: str) -> float | None:
    """Returns one number of a candidate's task entry ("ood_loss", ...), None when missing."""
    numbers = cast(Mapping[str, float | None], entry["tasks"].get(task) or {})
    return numbers.get(key)


def _num(v: float | None) -> float | None:
    # JSON has no NaN/inf; a missing number is null.
    return v if v is not None and math.isfinite(v) else None


def _known(s: Score, families: Mapping[str, str]) -> Mapping[str, TaskScore]:
    # A hand-edited run.json can name fewer tasks than a score holds: a task of no known
    # family has no family to count towards.
    return {name: t for name, t in s.tasks.items() if name in families}


def _in_lab_order(
    tasks: Mapping[str, TaskScore], families: Mapping[str, str]
) -> list[tuple[str, TaskScore]]:
    """Returns a score's tasks in the lab's order, those it does not name last: a score read
    back from the cache holds them in the cache's (alphabetical) order."""
    where = {name: i for i, name in enumerate(families)}
    return sorted(tasks.items(), key=lambda item: where.get(item[0], len(where)))


def _entry(
    rank: int | None, s: Score, families: Mapping[str, str], kind: str = "mean_log_ratio"
) -> RankingEntry:
    return {
        "rank": rank,
        "name": s.name,
        "code_hash": s.code_hash,
        "behaviour_hash": s.behaviour_hash,
        "source": s.source,
        "status": s.status,
        "reason": s.reason,
        "fitness": _num(s.fitness),
        "fitness_spread": _num(s.fitness_spread),
        "mean_ood_mse": _num(s.mean_ood_mse),
        "families": {
            f: _num(v) for f, v in family_means(_known(s, families), families, kind).items()
        },
        "tasks": {
            name: {
                "ood_loss": _num(t.ood_loss),
                "id_loss": _num(t.id_loss),
                "ood_spread": _num(t.ood_spread),
                "log_ratio": _num(t.log_ratio),
            }
            for name, t in _in_lab_order(s.tasks, families)
        },
        "cost": s.cost,
        "baseline": s.baseline,
        "parent": s.parent,
        "cached": s.cached,
        "cached_tasks": s.cached_tasks,
        "seconds": round(s.seconds, 3),
        "collision": s.collision,
        "partial_fitness": _num(s.partial_fitness),
    }


def rejection_score(r: Rejection, source: str) -> Score:
    """Returns a Score recording a candidate that static validation refused: nothing of it
    came from the cache (its cache column is "—", not "hit")."""
    return Score(
        name=r.name, code_hash=None, source=source, status=r.status, reason=r.reason, cached=False
    )


def lab_summary(lab: Lab) -> dict[str, Any]:
    """Returns what a ranking needs to know of a lab: {"lab": {...}, "tasks": [...]}."""
    return {
        "lab": {
            "path": str(lab.path),
            "digest": lab.digest(),
            "reference": lab.reference,
            "fitness": lab.fitness,
            "families": list(lab.families()),
        },
        "tasks": [
            {
                "name": t.name,
                "family": t.family,
                "kind": t.kind,
                "target": t.target.source if t.target is not None else t.describe(),
                "variables": list(t.variables),
                "digest": t.digest(),
                **({"aggregate": t.sets.aggregate} if t.sets is not None else {}),
            }
            for t in lab.tasks
        ],
    }


def ranking_document(
    scores: Sequence[Score],
    lab: Lab | Mapping[str, Any],
    run: Mapping[str, Any] | None = None,
    extra: Mapping[Hash, Mapping[str, Any]] | None = None,
) -> RankingDocument:
    """Returns the ranking as JSON-ready data, best first; `extra` adds fields by code hash.

    `lab` is a Lab, or its `lab_summary` (so a run can be re-ranked without its tasks file).
    """
    summary = lab_summary(lab) if isinstance(lab, Lab) else lab
    families = {t["name"]: t["family"] for t in summary["tasks"]}
    extra = extra or {}
    fitness = fitness_kind(summary["lab"])
    rows = [
        cast(
            RankingEntry,
            {
                **_entry(rank, s, families, fitness),
                **(extra.get(s.code_hash, {}) if s.code_hash else {}),
            },
        )
        for rank, s in ranked(scores)
    ]
    # Every ranking says whether its new candidates beat its best baseline beyond noise.
    found = claims(rows, [t["name"] for t in summary["tasks"]], fitness=fitness)
    for row in rows:  # every row has the key (null: a baseline, a failure, too few tasks)
        c = found.get(row["code_hash"]) if row["code_hash"] else None
        row["claim"] = c.to_dict() if c is not None else None
    return {
        "minact": minact.__version__,
        "run": dict(run) if run is not None else None,
        "lab": dict(summary["lab"]),
        "tasks": [dict(t) for t in summary["tasks"]],
        "candidates": rows,
    }
