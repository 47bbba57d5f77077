"""report.md: a ranking document or a run's ReportData as Markdown (pure: data in, text out).

`render_markdown` renders a ranking document alone (ranking.json's shape, also what `score`
and `rescore` produce); `render_run_markdown` renders a run's full report and links the
figures' files. Candidate and LLM text stays inside fences and table cells, and the whole
page passes `printable_text` once at the end: no control, bidi or zero-width character is
written as it is, whichever field it came in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from minact.claims import best_claim_sentence, claim_text
from minact.report.agreement import agreement_text
from minact.report.checktable import check_table
from minact.report.data import (
    FIGURES,
    MODEL_HEADER,
    ReportData,
    ancestry,
    capped,
    display_name,
    fmt,
    follow_ups,
    latency_text,
    made_by,
    model_rows,
    partner,
    prompt_note,
    run_value,
    screened_text,
    uses_llm,
    wall_time,
)
from minact.runs.checks import check_text
from minact.runs.ranking import (
    RankingDocument,
    RankingEntry,
    difference_spec,
    failed,
    fitness_specs,
    fitness_words,
    original_lab_text,
    task_value,
)
from minact.untrusted import printable, printable_lines, printable_text

__all__ = ["render_markdown", "render_run_markdown"]

MD_REPLY_LINES = 60


def _inline(text: Any) -> str:
    """Returns text that stays on its line and reads as text: its controls escaped (a
    model's text may hold ESC sequences, which `cat report.md` would run), its newlines
    folded (a name must not start a heading of its own), and no HTML or link (a viewer
    renders `<img onerror=...>` and follows `[x](javascript:...)`)."""
    line = printable(" ".join(str(text).split()))
    line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return line.replace("](", "]\\(")


def _cell(text: Any) -> str:
    """Returns text that stays inside one Markdown table cell (`_inline`, pipes escaped)."""
    return _inline(text).replace("|", "\\|")


def _fence(text: str, lang: str = "") -> list[str]:
    """Returns `text` as a fenced block whose fence no backtick run inside can close, each
    line's control characters escaped."""
    text = printable_lines(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + lang, text, fence]


def _counter_lines(counters: Mapping[str, Any], llm: bool) -> list[str]:
    failures = counters.get("failures") or {}
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) or "none"
    proposals = (
        f"- proposals: {counters.get('proposals', 0)} = evaluated {counters.get('evaluated', 0)} "
        f"+ unparsable {counters.get('parse_failures', 0)} + rejected "
        f"{counters.get('rejected', 0)} + duplicates {counters.get('duplicates', 0)}"
    )
    lines = [
        proposals + (f" + LLM errors {counters.get('llm_errors', 0)}" if llm else ""),
        f"- cache hits among the evaluated: {counters.get('cache_hits', 0)}",
        f"- behaviour-hash collisions (trained on their own): {counters.get('collisions', 0)}",
        f"- evaluated candidates that failed, by kind: {by_kind}",
    ]
    if llm:  # an offline run has no calls, tokens or waits worth a line
        tokens = f"{counters.get('prompt_tokens', 0)} prompt + "
        tokens += f"{counters.get('completion_tokens', 0)} completion"
        tokens += " (estimated)" if counters.get("tokens_estimated") else ""
        lines.append(
            f"- LLM: {counters.get('calls', 0)} calls "
            f"({counters.get('follow_ups', 0)} follow-ups, "
            f"{counters.get('repaired', 0)} replies repaired), "
            f"{counters.get('retries', 0)} retries, tokens {tokens}, "
            f"{counters.get('llm_seconds', 0.0):.1f} s waiting"
        )
        lines.append(f"- follow-ups: {follow_ups(counters)}")
    return lines


def _header_lines(doc: RankingDocument, counters: Mapping[str, Any] | None) -> list[str]:
    run: Mapping[str, Any] = doc["run"] or {}
    lab = doc["lab"]
    lab_line = (
        f"- lab: {_inline(lab['path'])} ({len(doc['tasks'])} tasks; fitness "
        f"{_inline(fitness_words(lab))})"
    )
    command = run.get("command")
    if command in ("score", "rescore"):  # a ranking without a search behind it
        lines = [f"# minact {command}", ""]
        if run.get("from"):
            lines.append(f"- candidates from: {_inline(run['from'])}")
        was = original_lab_text(doc)
        lines += [lab_line] + ([f"- {_inline(was)}"] if was else [])
        return [*lines, f"- device: {_inline(run_value(run, 'device'))}", ""]
    if not run:
        return ["# minact ranking", "", lab_line, ""]
    lines = [
        f"# minact run {_inline(run.get('run_id', ''))}".rstrip(),
        "",
        f"- status: **{_inline(run.get('status'))}**"
        + (f" — {_inline(run['message'])}" if run.get("message") else ""),
        f"- proposer: {_inline(run_value(run, 'proposer'))}; budget {run.get('budget')}; "
        f"seed {run.get('seed')}; concurrency {run.get('concurrency')}; wall time "
        f"{wall_time(run, '.0f')}; device {_inline(run_value(run, 'device'))}",
        lab_line,
    ]
    if counters:
        lines += _counter_lines(counters, uses_llm(run))
    if run.get("cascade"):
        lines.append(f"- screened by the cascade: {screened_text(run['cascade'], counters or {})}")
    return [*lines, ""]


def _ranking_lines(doc: RankingDocument, shown: Sequence[RankingEntry]) -> list[str]:
    families = list(doc["lab"]["families"])
    spec, spread = fitness_specs(doc["lab"])
    diff = difference_spec(doc["lab"])
    was_spec, _ = fitness_specs((doc.get("run") or {}).get("from_lab") or doc["lab"])
    # A rescore also shows each candidate's fitness on the lab it came from.
    before = any("original_fitness" in c for c in doc["candidates"])
    claimed = any(c.get("claim") for c in doc["candidates"])  # a column with something in it
    header = ["#", "name", "fitness", *(["was"] if before else []), "± seed sd", *families]
    header += ["mean OOD MSE", *(["beats best baseline"] if claimed else []), "status", "parent"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in shown:
        name = _cell(c["name"]) + (" (baseline)" if c.get("baseline") else "")
        row = [
            str(c["rank"] or "—"),
            name,
            fmt(c["fitness"], spec),
            *([fmt(c.get("original_fitness"), was_spec)] if before else []),
            fmt(c["fitness_spread"], spread),
            *(fmt(c["families"].get(f), spec) for f in families),
            fmt(c["mean_ood_mse"], ".4g"),
            *(
                [_cell("" if c["baseline"] else claim_text(c.get("claim"), diff))]
                if claimed
                else []
            ),
            _cell(
                c["status"] + (f": {c['reason']}" if c["status"] == "ok" and c["reason"] else "")
            ),
            (c.get("parent") or "")[:10],
        ]
        lines.append("| " + " | ".join(row) + " |")
    verdict = best_claim_sentence(doc["candidates"], len(doc["tasks"]), diff)
    return [*lines, "", _inline(verdict)] if verdict else lines


def _failed_lines(rows: Sequence[RankingEntry]) -> list[str]:
    """Returns the "Failed candidates" section for failed ranking rows (none: no lines)."""
    listed, more = capped(rows)
    if not listed:
        return []
    lines = ["", "## Failed candidates", ""]
    lines += [f"- {_cell(c['name'])}: {c['status']} — {_cell(c['reason'])}" for c in listed]
    return lines + ([f"- … and {more} more (ranking.json lists every candidate)"] if more else [])


def render_markdown(doc: RankingDocument, top: int = 30) -> str:
    """Returns report.md for a ranking document (the shape of ranking.json)."""
    run: Mapping[str, Any] = doc["run"] or {}
    lines = _header_lines(doc, run.get("counters"))
    if "agreement" in doc:
        lines += ["## Agreement with the lab the candidates came from", ""]
        lines += [agreement_text(doc.get("agreement")), ""]
    shown = [c for c in doc["candidates"] if c["status"] == "ok"][:top]
    shown += [c for c in doc["candidates"] if c.get("baseline") and c not in shown]
    lines += _ranking_lines(doc, shown)
    best = next(
        (c for c in doc["candidates"] if c["status"] == "ok" and not c.get("baseline")), None
    )
    if best is not None:
        lines += [
            "",
            f"## Best new candidate: {_inline(best['name'])} ({(best['code_hash'] or '')[:10]})",
            "",
            *_fence(best["source"], "python"),
        ]
    # A failed candidate had no line at all (the terminal's table shows it), and a failed
    # baseline's row said its status without the reason.
    lines += _failed_lines(failed(doc["candidates"]))
    return printable_text("\n".join(lines)) + "\n"


def _task_table(data: ReportData, key: str, rows: Sequence[RankingEntry]) -> list[str]:
    tasks = [t["name"] for t in data.ranking["tasks"]]
    lines = ["| name | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
    for c in rows:
        values = [fmt(task_value(c, t, key), ".3g") for t in tasks]
        lines.append(f"| {_cell(c['name'])} | " + " | ".join(values) + " |")
    return lines


def render_run_markdown(data: ReportData, figures: Mapping[str, str]) -> str:
    """Returns report.md for a run; `figures` maps FIGURES names to their files' paths."""
    doc = data.ranking
    lines = _header_lines(doc, data.counters)[:-1]
    if data.latency:
        lines.append(f"- LLM latency per reply: {latency_text(data.latency)}")
    if uses_llm(doc["run"] or {}):
        lines.append(f"- prompt: {prompt_note(doc['run'] or {}, data.counters)}")
    lines += [f"- warning: {_inline(w)}" for w in data.warnings]
    models = model_rows(data)
    if models:
        lines += ["", "## Models", "", "| " + " | ".join(MODEL_HEADER) + " |"]
        lines += ["|---|" + "---:|" * (len(MODEL_HEADER) - 1)]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in models]
    lines += ["", "## Ranking", "", *_ranking_lines(doc, data.shown())]
    if doc.get("checks"):
        header, rows = check_table(doc)
        lines += ["", "## Checks after the search", ""]
        lines += [f"- {_inline(line)}" for line in check_text(doc.get("checks") or {}, doc["lab"])]
        if rows:  # a confirmation skipped for want of new candidates checked no row
            lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"- {FIGURES[k]}: [{p}]({p})" for k, p in figures.items() if k in FIGURES]
    spec, spread = fitness_specs(doc["lab"])
    per_task = data.per_task()
    if per_task:
        lines += ["", "## OOD MSE per task (median over seeds)", ""]
        lines += _task_table(data, "ood_loss", per_task)
        lines += ["", "## ID MSE per task", ""]
        lines += _task_table(data, "id_loss", per_task)
    for i, h in enumerate(data.top, 1):
        c = data.candidate(h)
        if c is None:
            continue
        lin = data.lineage.get(h)
        lines += [
            "",
            f"## {i}. {_inline(c['name'])} ({h[:10]}): fitness {fmt(c['fitness'], spec)} ± "
            f"{fmt(c['fitness_spread'], spread)}",
            "",
            f"- made by: {_inline(made_by(lin))}",
            f"- parent: {_inline(display_name(data, lin.parent if lin else c.get('parent')))}"
            + (f"; {_inline(partner(data, lin))}" if partner(data, lin) else ""),
            f"- ancestry: {' → '.join(_inline(a) for a in ancestry(data, h))}",
            "",
            *_fence(c["source"], "python"),
        ]
        reply_text = data.replies.get(h, "")
        if lin and reply_text and lin.origin != "offline":
            reply = reply_text.splitlines()
            more = len(reply) - MD_REPLY_LINES
            text = "\n".join(reply[:MD_REPLY_LINES])
            text += f"\n… ({more} more lines in report.html)" if more > 0 else ""
            lines += ["", "The reply that made it:", "", *_fence(text, "text")]
    screened = data.screened()
    if screened:
        lines += ["", "## Screened by the cascade (stage 1 only; no fitness on the lab)", ""]
        lines += ["| name | stage-1 fitness | reason |", "|---|---|---|"]
        for c in screened:
            partial = fmt(c.get("partial_fitness"), spec)
            lines.append(f"| {_cell(c['name'])} | {partial} | {_cell(c['reason'])} |")
    lines += _failed_lines(data.failed())
    reasons, more = capped(data.reasons)
    if reasons:
        lines += ["", "## Proposals that did not make a ranked candidate, by reason", ""]
        lines += ["| kind | count | reason |", "|---|---|---|"]
        lines += [f"| {_cell(k)} | {n} | {_cell(r)[:160]} |" for k, r, n in reasons]
        rest = sum(n for _, _, n in data.reasons[len(reasons) :])
        lines += [f"| … | {rest} | {more} other reasons |"] if more else []
    retries, more = capped(data.retries)
    if retries and uses_llm(doc["run"] or {}):
        lines += ["", "## LLM attempts retried, by reason", ""]
        lines += ["| count | reason |", "|---|---|"]
        lines += [f"| {n} | {_cell(r)[:160]} |" for r, n in retries]
        rest = sum(n for _, n in data.retries[len(retries) :])
        lines += [f"| {rest} | {more} other reasons |"] if more else []
    return printable_text("\n".join(lines)) + "\n"
