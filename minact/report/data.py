"""What a run's report shows (ReportData): build.py assembles it, markdown.py and html.py
render it. The helpers here word lineage and numbers the same way in both."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from minact.numbers import number_text
from minact.runs.history import Lineage
from minact.runs.index import Stamp
from minact.runs.ranking import RankingDocument, RankingEntry, failed, fitness_words, shown

__all__ = [
    "FIGURES",
    "LIST_ROWS",
    "ReportData",
    "ancestry",
    "capped",
    "display_name",
    "fmt",
    "latency_text",
    "made_by",
    "partner",
    "run_facts",
    "run_value",
    "screened_text",
    "uses_llm",
    "wall_time",
]

T = TypeVar("T")

# Rows of a report's lists (failed candidates, reasons, retries); the rest are counted. A run of
# thousands of proposals has as many distinct reasons (a duplicate's names the copied function).
LIST_ROWS = 50


def capped(rows: Sequence[T], limit: int = LIST_ROWS) -> tuple[list[T], int]:
    """Returns the first `limit` rows and how many are left out."""
    return list(rows[:limit]), max(0, len(rows) - limit)


# figure name (plots/<name>.svg): caption, in the order reports show them.
FIGURES = {
    "activations": "f and f′ of the top candidates (solid) and baselines (grey, dashed)",
    "tasks": "log-ratio of OOD loss to the reference's, per task (blue beats the reference)",
    "fitness": "fitness over the run: best and median so far (lower is better; dashed: the "
    "reference's fitness)",
}


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a run's report shows (build.build assembles it).

    Attributes:
        ranking: the ranking document (ranking.json); its "run" is run.json.
        top: code hashes of the best new candidates, best first: their code, lineage
            and curves are shown.
        baselines: code hashes of the baselines whose curves are drawn beside them.
        lineage: {code hash: Lineage} for every seed and evaluated candidate.
        replies: {code hash: the reply or mutation text that made it}.
        progress: (candidates evaluated so far, fitness or None for a failure), in order.
        counters: the run's counters (outcome.Counters.to_dict()).
        reasons: (kind, reason, count) for proposals that did not become a ranked
            candidate and for evaluated candidates that failed, most frequent first.
        latency: seconds per LLM reply: {"mean", "median", "max"} and, where the replies
            carried it, "first_token_median"; empty without an LLM.
        retries: (reason, count) of the LLM attempts that failed and were retried within
            a call that then got its reply, most frequent first.
        curves: {code hash: (x, f, df)}; candidates without one are not plotted.
        tasks: the lab's tasks as `Task.to_dict` gives them, when the lab file was
            readable; else the ranking's task summaries.
        warnings: what the report could not show, and why.
        stamp: run.json and events.jsonl as the ranking was built from them, and
            skipped: the events it skipped for their shape (both for the ranking's index).
    """

    ranking: RankingDocument
    top: list[str]
    baselines: list[str]
    lineage: dict[str, Lineage]
    replies: dict[str, str]
    progress: list[tuple[int, float | None]]
    counters: dict[str, Any]
    reasons: list[tuple[str, str, int]] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    retries: list[tuple[str, int]] = field(default_factory=list)
    curves: dict[str, tuple[list[float], list[float], list[float]]] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stamp: Stamp | None = None
    skipped: int = 0

    def candidate(self, code_hash: str | None) -> RankingEntry | None:
        """Returns the ranking entry with `code_hash`, or None."""
        return next((c for c in self.ranking["candidates"] if c["code_hash"] == code_hash), None)

    def shown(self, top: int = 30) -> list[RankingEntry]:
        """Returns the ranking rows a report table shows: the best `top` new ones and every
        baseline, in rank order."""
        return shown(self.ranking["candidates"], top)

    def per_task(self) -> list[RankingEntry]:
        """Returns the rows of the per-task tables: the best new candidates, the baselines
        whose curves are drawn, then the best baseline (the one the claims compare against)
        and the reference where those are not among them."""
        from minact.claims import best_baseline

        docs = self.ranking["candidates"]
        reference = self.ranking["lab"].get("reference")
        best = best_baseline(docs)
        # A fixed set of baselines left sigmoid out when it was the best: a claim's other
        # side, and the reference every log-ratio divides by, are always shown.
        extra = [best["code_hash"] if best else None]
        extra += [c["code_hash"] for c in docs if c["baseline"] and c["name"] == reference][:1]
        hashes = [*self.top, *self.baselines]
        hashes += [h for h in extra if h and h not in hashes]
        return [c for h in dict.fromkeys(hashes) if (c := self.candidate(h))]

    def failed(self) -> list[RankingEntry]:
        """Returns the ranking rows of candidates that failed."""
        return failed(self.ranking["candidates"])

    def screened(self) -> list[RankingEntry]:
        """Returns the ranking rows of candidates the cascade screened out, best stage 1 first."""
        return [c for c in self.ranking["candidates"] if c["status"] == "screened"]


def screened_text(cascade: Mapping[str, Any], counters: Mapping[str, Any]) -> str:
    """Returns how many evaluated candidates the cascade screened out, and its settings."""
    n, evaluated = counters.get("screened", 0), counters.get("evaluated", 0)
    share = f" ({100 * n / evaluated:.0f}%)" if evaluated else ""
    return (
        f"{n} of {evaluated}{share}: stage 1 trains {cascade['tasks']} of the lab's tasks; "
        f"a candidate goes on while its stage-1 fitness is at most the run's #{cascade['top']} "
        f"fitness + {cascade['margin']:g}"
    )


def fmt(v: Any, spec: str) -> str:
    """Returns `v` formatted with `spec`, or an em dash for a missing or non-finite number
    (never "-0.000": `number_text`)."""
    return number_text(v, spec)


def display_name(data: ReportData, code_hash: str | None) -> str:
    """Returns "name (hash prefix)" of a candidate of the run, or the bare prefix."""
    c = data.candidate(code_hash)
    return f"{c['name']} ({str(code_hash)[:10]})" if c else str(code_hash or "—")[:10]


def ancestry(data: ReportData, code_hash: str) -> list[str]:
    """Returns the names from the oldest known ancestor down to `code_hash`."""
    chain: list[str] = []
    seen: set[str] = set()
    h: str | None = code_hash
    while h is not None and h not in seen and len(chain) < 12:
        seen.add(h)
        c = data.candidate(h)
        chain.append(c["name"] if c else h[:10])
        lin = data.lineage.get(h)
        h = lin.parent if lin else None
    return chain[::-1]


def partner(data: ReportData, lin: Lineage | None) -> str:
    """Returns the line naming a crossover partner, or "" when there was none."""
    # The offline mutator is handed a second parent for crossover; an LLM's prompt is not.
    if lin is None or lin.origin != "offline" or not lin.other:
        return ""
    return f"crossover partner offered: {display_name(data, lin.other)}"


def made_by(lin: Lineage | None) -> str:
    """Returns how a candidate was made: its proposal, proposer, island and note."""
    if lin is None or lin.origin == "seed":
        return "built-in seed"
    how = {"offline": "offline mutator", "llm": "LLM", "replay": "replayed reply"}
    text = f"proposal {lin.index} ({how.get(lin.origin, lin.origin)}"
    text += f", island {lin.island})" if lin.island is not None else ")"
    return text + (f": {lin.note}" if lin.note else "")


def latency_text(latency: Mapping[str, float]) -> str:
    """Returns the seconds per LLM reply, and to its first token where known, as one line."""
    if not latency:
        return "—"
    text = (
        f"mean {latency['mean']:.2f} s, median {latency['median']:.2f} s, "
        f"max {latency['max']:.2f} s"
    )
    if "first_token_median" in latency:
        text += f"; first token after {latency['first_token_median']:.2f} s (median)"
    return text


def run_value(run: Mapping[str, Any], key: str) -> str:
    """Returns a run.json value as text, or what its absence means: a run still running
    records its proposer, device and time only as it ends."""
    value = run.get(key)
    if value is not None and value != "":
        return str(value)
    return "not yet recorded (running)" if run.get("status") == "running" else "unknown"


def wall_time(run: Mapping[str, Any], spec: str = ".1f") -> str:
    """Returns a run's wall time: the seconds run.json records, and for a running run that
    they are earlier sessions' only (none for a first session)."""
    seconds = run.get("seconds")
    known = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if run.get("status") == "running":
        return f"running (earlier sessions: {seconds:{spec}} s)" if known else "running"
    return f"{seconds:{spec}} s" if known else "unknown"


def uses_llm(run: Mapping[str, Any]) -> bool:
    """Returns whether a run's proposals came from a language model (its own, or replayed)."""
    return run.get("proposer") in ("llm", "replay")


def follow_ups(c: Mapping[str, Any]) -> str:
    """Returns how many replies were answered with a follow-up and why, and how often a
    follow-up and a first request gave a new valid candidate (what the follow-up rule
    weighs; runs from before it was counted show the follow-ups alone)."""
    reasons = c.get("follow_up_reasons") or {}
    why = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(reasons.items()))
    sent = int(c.get("follow_ups", 0))
    text = f"{sent}" + (f" ({why})" if why else "")
    if "first_new" not in c:
        return text
    first = int(c.get("calls", 0)) - sent
    rates = [_rate("follow-ups", int(c.get("follow_up_new", 0)), sent)]
    rates.append(_rate("first requests", int(c.get("first_new", 0)), first))
    return f"{text}; new valid candidates from {', from '.join(rates)}"


def _rate(what: str, new: int, calls: int) -> str:
    return f"{what} {new} of {calls}" + (f" ({new / calls:.2f} per call)" if calls > 0 else "")


def prompt_note(run: Mapping[str, Any], c: Mapping[str, Any]) -> str:
    """Returns the prompt's budget, why, and what the budget left out of the prompts."""
    note = str((run.get("prompt") or {}).get("note") or "—")
    cuts = c.get("prompt_cuts") or {}
    if cuts:
        left = ", ".join(f"{n} {section}" for section, n in sorted(cuts.items()))
        note += f"; left out over the run: {left}"
    return note


def model_rows(data: ReportData) -> list[tuple[str, ...]]:
    """Returns (model, weight, calls, tokens, mean latency, new valid, yield, best new
    fitness) per model; the calls say how many failed (a model whose server is down)."""
    run: Mapping[str, Any] = data.ranking["run"] or {}
    per = data.counters.get("models") or {}
    weights = {m.get("name"): m.get("weight") for m in run.get("models") or []}
    total = sum(float(w) for w in weights.values() if w is not None) or 1.0
    rows: list[tuple[str, ...]] = []
    for name, m in per.items():
        calls = int(m.get("calls", 0))
        w = weights.get(name)
        rows.append(
            (
                str(name),
                f"{float(w) / total:.0%}" if w is not None else "—",
                f"{calls} ({failed} failed)" if (failed := int(m.get("errors", 0))) else str(calls),
                f"{int(m.get('prompt_tokens', 0))} + {int(m.get('completion_tokens', 0))}",
                f"{m.get('seconds', 0.0) / calls:.1f} s" if calls else "—",
                str(int(m.get("new_valid", 0))),
                f"{m.get('new_valid', 0) / calls:.2f}" if calls else "—",
                number_text(m.get("best"), "+.3f"),
            )
        )
    return rows


MODEL_HEADER = (
    "model", "weight", "calls", "tokens", "latency", "new valid", "yield / call", "best new",
)  # fmt: skip


def _when(created: Any) -> str:
    """Returns a run's start time as UTC text; "—" when unknown, the value itself when it
    is no time (run.json's reader checks its type, not its range)."""
    if not created:
        return "—"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created))
    except (OverflowError, OSError, TypeError, ValueError):
        return str(created)


def run_facts(data: ReportData) -> list[tuple[str, str]]:
    """Returns (label, value) rows describing how the run went, for both reports.

    A run without a language model gets no LLM rows: calls, tokens and latency would be
    zeros that say nothing.
    """
    run: Mapping[str, Any] = data.ranking["run"] or {}
    c = data.counters
    lab = data.ranking["lab"]
    created = run.get("created")
    worker = run.get("worker") or {}
    llm = run.get("llm") or {}
    proposer = " ".join(str(v) for v in (run.get("proposer"), *llm.values()) if v)
    facts: list[tuple[str, str]] = [
        ("status", f"{run.get('status')}" + (f" — {run['message']}" if run.get("message") else "")),
        ("proposer", proposer or run_value(run, "proposer")),
        ("budget", f"{run.get('budget')} candidates; proposals capped at {run.get('max_calls')}"),
        ("proposals", str(c.get("proposals", 0))),
        ("evaluated", str(c.get("evaluated", 0))),
        ("cache hits (among the evaluated)", str(c.get("cache_hits", 0))),
        ("behaviour-hash collisions (trained on their own)", str(c.get("collisions", 0))),
        ("duplicates", str(c.get("duplicates", 0))),
        ("unparsable replies", str(c.get("parse_failures", 0))),
        ("rejected by validation", str(c.get("rejected", 0))),
        ("evaluated but failed", str(sum((c.get("failures") or {}).values()))),
    ]
    if run.get("cascade"):
        facts.append(("screened by the cascade", screened_text(run["cascade"], c)))
    if uses_llm(run):
        tokens = f"{c.get('prompt_tokens', 0)} prompt + {c.get('completion_tokens', 0)} completion"
        facts += [
            ("LLM errors", str(c.get("llm_errors", 0))),
            ("LLM calls", f"{c.get('calls', 0)} ({c.get('retries', 0)} retries)"),
            ("follow-ups (bad replies answered with the reason)", follow_ups(c)),
            ("replies whose code was repaired", str(c.get("repaired", 0))),
            ("prompt", prompt_note(run, c)),
            ("tokens", tokens + (" (estimated)" if c.get("tokens_estimated") else "")),
            ("LLM waiting", f"{c.get('llm_seconds', 0.0):.1f} s"),
            ("LLM latency per reply", latency_text(data.latency)),
        ]
    device = " ".join(str(worker.get(k) or "") for k in ("device_name", "torch")).strip()
    facts += [
        ("wall time", wall_time(run)),
        ("started", _when(created)),
        ("device", device or run_value(run, "device")),
        (
            "seed / concurrency / islands",
            f"{run.get('seed')} / {run.get('concurrency')} / {run.get('islands')}",
        ),
        ("lab", f"{lab['path']} (digest {str(lab['digest'])[:12]})"),
        ("fitness", fitness_words(lab)),
        ("minact", f"{run.get('minact')} (report by {data.ranking['minact']})"),
    ]
    return facts
