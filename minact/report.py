"""Run reports: Markdown and self-contained HTML (pure: data in, text out).

`render_markdown` renders a ranking document alone (ranking.json's shape, also what
`score` and `rescore` produce). A run's full report takes a `ReportData`, which
runreport.py assembles from the run directory, and the figures as SVG text (plots.py);
`render_run_markdown` links the figures' files, `render_run_html` inlines them. All
candidate and LLM text is escaped: a reply may hold anything, `<script>` included.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Lineage", "ReportData", "render_markdown", "render_run_html", "render_run_markdown"]

# figure name (plots/<name>.svg): caption, in the order reports show them.
FIGURES = {
    "activations": "f and f′ of the top candidates (solid) and baselines (grey, dashed)",
    "tasks": "log-ratio of OOD loss to the reference's, per task (blue beats the reference)",
    "fitness": "fitness over the run: best and median so far (lower is better, reference = 0)",
}
MD_REPLY_LINES = 60


@dataclass(frozen=True, slots=True)
class Lineage:
    """How an evaluated candidate was made.

    Attributes:
        index: the proposal that made it (-1 for a seed).  origin: "seed", "offline",
        "llm" or "replay".  island: the island it joined.  parent, other: code hashes of
        the parent and of the second parent of a crossover.  note: the mutation, or the
        LLM's finish reason.  reply: the proposer's full reply text.
    """

    index: int
    origin: str
    island: int | None = None
    parent: str | None = None
    other: str | None = None
    note: str = ""
    reply: str = ""


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a run's report shows (runreport.build assembles it).

    Attributes:
        ranking: the ranking document (ranking.json); its "run" is run.json.
        top: code hashes of the best new candidates, best first: their code, lineage
            and curves are shown.
        baselines: code hashes of the baselines whose curves are drawn beside them.
        lineage: {code hash: Lineage} for every evaluated candidate.
        progress: (candidates evaluated so far, fitness or None for a failure), in order.
        counters: the run's counters (see outcome.Counters).
        reasons: (kind, reason, count) for proposals that did not become a ranked
            candidate and for evaluated candidates that failed, most frequent first.
        latency: seconds per LLM reply: {"mean", "median", "max"}; empty without an LLM.
        curves: {code hash: (x, f, df)}; candidates without one are not plotted.
        tasks: the lab's tasks as `Task.to_dict` gives them, when the lab file was
            readable; else the ranking's task summaries.
        warnings: what the report could not show, and why.
    """

    ranking: dict[str, Any]
    top: list[str]
    baselines: list[str]
    lineage: dict[str, Lineage]
    progress: list[tuple[int, float | None]]
    counters: dict[str, Any]
    reasons: list[tuple[str, str, int]] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[list[float], list[float], list[float]]] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def candidate(self, code_hash: str | None) -> dict[str, Any] | None:
        """Returns the ranking entry with `code_hash`, or None."""
        return next((c for c in self.ranking["candidates"] if c["code_hash"] == code_hash), None)

    def shown(self, top: int = 30) -> list[dict[str, Any]]:
        """Returns the ranking rows a report table shows: the best `top` new ones and every
        baseline, in rank order."""
        out: list[dict[str, Any]] = []
        new = 0
        for c in self.ranking["candidates"]:
            if c["status"] == "ok" and (c.get("baseline") or new < top):
                out.append(c)
                new += not c.get("baseline")
        return out

    def failed(self) -> list[dict[str, Any]]:
        """Returns the ranking rows of candidates that failed."""
        return [c for c in self.ranking["candidates"] if c["status"] != "ok"]


# Markdown ---------------------------------------------------------------------------


def _num(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def _cell(text: Any) -> str:
    """Returns text that stays inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _fence(text: str, lang: str = "") -> list[str]:
    """Returns `text` as a fenced block whose fence no backtick run inside can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + lang, text.rstrip(), fence]


def _counter_lines(counters: Mapping[str, Any]) -> list[str]:
    failures = counters.get("failures") or {}
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) or "none"
    tokens = f"{counters.get('prompt_tokens', 0)} prompt + {counters.get('completion_tokens', 0)} "
    tokens += "completion" + (" (estimated)" if counters.get("tokens_estimated") else "")
    return [
        f"- proposals: {counters.get('proposals', 0)} = evaluated {counters.get('evaluated', 0)} "
        f"+ unparsable {counters.get('parse_failures', 0)} + rejected "
        f"{counters.get('rejected', 0)} + duplicates {counters.get('duplicates', 0)} + LLM "
        f"errors {counters.get('llm_errors', 0)}",
        f"- cache hits among the evaluated: {counters.get('cache_hits', 0)}",
        f"- evaluated candidates that failed, by kind: {by_kind}",
        f"- LLM: {counters.get('calls', 0)} calls, {counters.get('retries', 0)} retries, "
        f"tokens {tokens}, {counters.get('llm_seconds', 0.0):.1f} s waiting",
    ]


def _header_lines(doc: Mapping[str, Any], counters: Mapping[str, Any] | None) -> list[str]:
    run = doc.get("run") or {}
    lab = doc["lab"]
    lines = [f"# minact run {run.get('run_id', '')}".rstrip(), ""]
    if run:
        lines += [
            f"- status: **{run.get('status')}** — {run.get('message', '')}",
            f"- proposer: {run.get('proposer')}; budget {run.get('budget')}; seed "
            f"{run.get('seed')}; concurrency {run.get('concurrency')}; wall time "
            f"{run.get('seconds', 0.0):.0f} s; device {run.get('device')}",
            f"- lab: {lab['path']} ({len(doc['tasks'])} tasks; fitness {lab['fitness']}, lower is "
            f"better, {lab['reference']} = 0)",
        ]
        if counters:
            lines += _counter_lines(counters)
        lines.append("")
    return lines


def _ranking_lines(doc: Mapping[str, Any], shown: Sequence[Mapping[str, Any]]) -> list[str]:
    families = list(doc["lab"]["families"])
    # A rescore also shows each candidate's fitness on the lab it came from.
    before = any("original_fitness" in c for c in doc["candidates"])
    header = ["#", "name", "fitness", *(["was"] if before else []), "± seed sd", *families]
    header += ["mean OOD MSE", "status", "parent"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in shown:
        name = _cell(c["name"]) + (" (baseline)" if c.get("baseline") else "")
        row = [
            str(c["rank"] or "—"),
            name,
            _num(c["fitness"], "+.3f"),
            *([_num(c.get("original_fitness"), "+.3f")] if before else []),
            _num(c["fitness_spread"], ".3f"),
            *(_num(c["families"].get(f), "+.3f") for f in families),
            _num(c["mean_ood_mse"], ".4g"),
            _cell(c["status"]),
            (c.get("parent") or "")[:10],
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def render_markdown(doc: Mapping[str, Any], top: int = 30) -> str:
    """Returns report.md for a ranking document (the shape of ranking.json)."""
    run = doc.get("run") or {}
    lines = _header_lines(doc, run.get("counters"))
    shown = [c for c in doc["candidates"] if c["status"] == "ok"][:top]
    shown += [c for c in doc["candidates"] if c.get("baseline") and c not in shown]
    lines += _ranking_lines(doc, shown)
    best = next(
        (c for c in doc["candidates"] if c["status"] == "ok" and not c.get("baseline")), None
    )
    if best is not None:
        lines += [
            "",
            f"## Best new candidate: {best['name']} ({best['code_hash'][:10]})",
            "",
            *_fence(best["source"], "python"),
        ]
    return "\n".join(lines) + "\n"


def _name(data: ReportData, code_hash: str | None) -> str:
    c = data.candidate(code_hash)
    return f"{c['name']} ({str(code_hash)[:10]})" if c else str(code_hash or "—")[:10]


def _ancestry(data: ReportData, code_hash: str) -> list[str]:
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


def _partner(data: ReportData, lin: Lineage | None) -> str:
    # The offline mutator is handed a second parent for crossover; an LLM's prompt is not.
    if lin is None or lin.origin != "offline" or not lin.other:
        return ""
    return f"crossover partner offered: {_name(data, lin.other)}"


def _made_by(lin: Lineage | None) -> str:
    if lin is None or lin.origin == "seed":
        return "built-in seed"
    how = {"offline": "offline mutator", "llm": "LLM", "replay": "replayed reply"}
    text = f"proposal {lin.index} ({how.get(lin.origin, lin.origin)}"
    text += f", island {lin.island})" if lin.island is not None else ")"
    return text + (f": {lin.note}" if lin.note else "")


def _task_table(data: ReportData, key: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    tasks = [t["name"] for t in data.ranking["tasks"]]
    lines = ["| name | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
    for c in rows:
        values = [_num((c["tasks"].get(t) or {}).get(key), ".3g") for t in tasks]
        lines.append(f"| {_cell(c['name'])} | " + " | ".join(values) + " |")
    return lines


def render_run_markdown(data: ReportData, figures: Mapping[str, str]) -> str:
    """Returns report.md for a run; `figures` maps FIGURES names to their files' paths."""
    doc = data.ranking
    lines = _header_lines(doc, data.counters)[:-1]
    if data.latency:
        lat = data.latency
        lines.append(
            f"- LLM latency per reply: mean {lat['mean']:.1f} s, median {lat['median']:.1f} s, "
            f"max {lat['max']:.1f} s"
        )
    lines += [f"- warning: {w}" for w in data.warnings]
    lines += ["", "## Ranking", "", *_ranking_lines(doc, data.shown())]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"- {FIGURES[k]}: [{p}]({p})" for k, p in figures.items() if k in FIGURES]
    per_task = [c for h in [*data.top, *data.baselines] if (c := data.candidate(h))]
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
            f"## {i}. {c['name']} ({h[:10]}): fitness {_num(c['fitness'], '+.3f')} ± "
            f"{_num(c['fitness_spread'], '.3f')}",
            "",
            f"- made by: {_made_by(lin)}",
            f"- parent: {_name(data, lin.parent if lin else c.get('parent'))}"
            + (f"; {_partner(data, lin)}" if _partner(data, lin) else ""),
            f"- ancestry: {' → '.join(_ancestry(data, h))}",
            "",
            *_fence(c["source"], "python"),
        ]
        if lin and lin.reply and lin.origin != "offline":
            reply = lin.reply.splitlines()
            more = len(reply) - MD_REPLY_LINES
            text = "\n".join(reply[:MD_REPLY_LINES])
            text += f"\n… ({more} more lines in report.html)" if more > 0 else ""
            lines += ["", "The reply that made it:", "", *_fence(text, "text")]
    failed = data.failed()
    if failed:
        lines += ["", "## Failed candidates", ""]
        lines += [f"- {_cell(c['name'])}: {c['status']} — {_cell(c['reason'])}" for c in failed]
    if data.reasons:
        lines += ["", "## Proposals that did not make a ranked candidate, by reason", ""]
        lines += ["| kind | count | reason |", "|---|---|---|"]
        lines += [f"| {_cell(k)} | {n} | {_cell(r)[:160]} |" for k, r, n in data.reasons]
    return "\n".join(lines) + "\n"


# HTML -------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;
max-width:1200px;padding:0 20px 40px;color:#1d1d1f}
h1{margin:18px 0 4px}h2{border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:32px}
nav a{margin-right:14px}table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid #e5e5e5;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f7;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.baseline td{color:#666;font-style:italic}.scroll{overflow-x:auto}
pre{background:#f6f8fa;padding:8px 10px;overflow-x:auto;font-size:12.5px;white-space:pre-wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:4px 14px 10px;margin:14px 0}
.muted{color:#666}.warn{color:#a15c00}svg{max-width:100%;height:auto}
details summary{cursor:pointer;color:#0b5cad}.ok{color:#1a7f37}.bad{color:#b42318}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _td(v: Any, spec: str = "", cls: str = "n") -> str:
    text = _num(v, spec) if spec else ("—" if v is None else str(v))
    return f'<td class="{cls}">{_e(text)}</td>'


def _table(header: Sequence[str], rows: Sequence[str]) -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "\n".join(rows)
    return f'<div class="scroll"><table>{head}\n{body}</table></div>'


def _html_ranking(data: ReportData) -> str:
    families = list(data.ranking["lab"]["families"])
    header = ["#", "name", "fitness ± seed sd", *families, "mean OOD MSE", "cost", "status"]
    header += ["cache", "parent"]
    rows = []
    for c in data.shown():
        spread = _num(c["fitness_spread"], ".3f")
        rows.append(
            f'<tr class="{"baseline" if c.get("baseline") else ""}">'
            + _td(c["rank"] or "—")
            + f"<td>{_e(c['name'])}{' (baseline)' if c.get('baseline') else ''}</td>"
            + f'<td class="n">{_e(_num(c["fitness"], "+.3f"))} ± {_e(spread)}</td>'
            + "".join(_td(c["families"].get(f), "+.3f") for f in families)
            + _td(c["mean_ood_mse"], ".4g")
            + _td(c.get("cost"), ".1f")
            + f'<td class="ok">{_e(c["status"])}</td>'
            + _td("hit" if c.get("cached") else "new", cls="")
            + _td(_name(data, c.get("parent")) if c.get("parent") else "", cls="")
            + "</tr>"
        )
    out = _table(header, rows)
    failed = data.failed()
    if failed:
        rows = [
            f"<tr><td>{_e(c['name'])}</td><td class='bad'>{_e(c['status'])}</td>"
            f"<td>{_e(c['reason'])}</td><td><details><summary>code</summary>"
            f"<pre>{_e(c['source'])}</pre></details></td></tr>"
            for c in failed
        ]
        out += f"<h3>Failed candidates ({len(failed)})</h3>" + _table(
            ["name", "status", "reason", "code"], rows
        )
    return out


def _html_per_task(data: ReportData) -> str:
    tasks = [t["name"] for t in data.ranking["tasks"]]
    rows = []
    for h in [*data.top, *data.baselines]:
        c = data.candidate(h)
        if c is None:
            continue
        cells = "".join(
            f'<td class="n">{_e(_num((c["tasks"].get(t) or {}).get("ood_loss"), ".3g"))}'
            f' <span class="muted">/ {_e(_num((c["tasks"].get(t) or {}).get("id_loss"), ".3g"))}'
            "</span></td>"
            for t in tasks
        )
        cls = "baseline" if c.get("baseline") else ""
        rows.append(f'<tr class="{cls}"><td>{_e(c["name"])}</td>{cells}</tr>')
    return _table(["name", *tasks], rows)


def _html_candidates(data: ReportData) -> str:
    parts = []
    for i, h in enumerate(data.top, 1):
        c = data.candidate(h)
        if c is None:
            continue
        lin = data.lineage.get(h)
        other = f"; {_e(_partner(data, lin))}" if _partner(data, lin) else ""
        reply = ""
        if lin and lin.reply:
            what = "mutation" if lin.origin == "offline" else "reply"
            reply = (
                f"<details><summary>the {what} that made it</summary>"
                f"<pre>{_e(lin.reply)}</pre></details>"
            )
        parts.append(
            f'<div class="card" id="c-{_e(h[:12])}"><h3>{i}. {_e(c["name"])} '
            f'<span class="muted">{_e(h[:12])}</span></h3>'
            f"<p>fitness <b>{_e(_num(c['fitness'], '+.3f'))}</b> ± "
            f"{_e(_num(c['fitness_spread'], '.3f'))}; cost {_e(_num(c.get('cost'), '.1f'))}× "
            f"GELU<br>made by {_e(_made_by(lin))}<br>"
            f"parent {_e(_name(data, lin.parent if lin else c.get('parent')))}{other}<br>"
            f"ancestry {_e(' → '.join(_ancestry(data, h)))}</p>"
            f"<pre>{_e(c['source'])}</pre>{reply}</div>"
        )
    baselines = [c for h in data.baselines if (c := data.candidate(h))]
    if baselines:
        code = "".join(f"<h4>{_e(c['name'])}</h4><pre>{_e(c['source'])}</pre>" for c in baselines)
        parts.append(f"<details><summary>code of the baselines plotted</summary>{code}</details>")
    return "\n".join(parts)


def _html_run(data: ReportData) -> str:
    run = data.ranking.get("run") or {}
    c = data.counters
    lab = data.ranking["lab"]
    lat = data.latency
    created = run.get("created")
    tokens = f"{c.get('prompt_tokens', 0)} prompt + {c.get('completion_tokens', 0)} completion"
    llm = run.get("llm") or {}
    worker = run.get("worker") or {}
    facts: list[tuple[str, Any]] = [
        ("status", f"{run.get('status')} — {run.get('message', '')}"),
        ("proposer", " ".join(str(v) for v in (run.get("proposer"), *llm.values()) if v)),
        ("budget", f"{run.get('budget')} candidates; proposals capped at {run.get('max_calls')}"),
        ("proposals", c.get("proposals", 0)),
        ("evaluated", c.get("evaluated", 0)),
        ("cache hits (among the evaluated)", c.get("cache_hits", 0)),
        ("duplicates", c.get("duplicates", 0)),
        ("unparsable replies", c.get("parse_failures", 0)),
        ("rejected by validation", c.get("rejected", 0)),
        ("LLM errors", c.get("llm_errors", 0)),
        ("evaluated but failed", sum((c.get("failures") or {}).values())),
        ("LLM calls", f"{c.get('calls', 0)} ({c.get('retries', 0)} retries)"),
        ("tokens", tokens + (" (estimated)" if c.get("tokens_estimated") else "")),
        ("LLM waiting", f"{c.get('llm_seconds', 0.0):.1f} s"),
        (
            "LLM latency per reply",
            f"mean {lat['mean']:.2f} s, median {lat['median']:.2f} s, max {lat['max']:.2f} s"
            if lat
            else "—",
        ),
        ("wall time", f"{run.get('seconds', 0.0):.1f} s"),
        (
            "started",
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created)) if created else "—",
        ),
        (
            "device",
            " ".join(str(worker.get(k) or "") for k in ("device_name", "torch")).strip()
            or run.get("device"),
        ),
        (
            "seed / concurrency / islands",
            f"{run.get('seed')} / {run.get('concurrency')} / {run.get('islands')}",
        ),
        ("lab", f"{lab['path']} (digest {str(lab['digest'])[:12]})"),
        ("fitness", f"{lab['fitness']}, lower is better; {lab['reference']} = 0"),
        ("minact", f"{run.get('minact')} (report by {data.ranking.get('minact')})"),
    ]
    out = _table([], [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts])
    if data.reasons:
        rows = [f"<tr><td>{_e(k)}</td>{_td(n)}<td>{_e(r)}</td></tr>" for k, r, n in data.reasons]
        out += "<h3>Rejections and failures by reason</h3>" + _table(
            ["kind", "count", "reason"], rows
        )
    return out


def _html_lab(data: ReportData) -> str:
    rows = []
    for t in data.tasks or data.ranking["tasks"]:
        s = t.get("settings") or {}
        box = "; ".join(f"{lo:g}…{hi:g}" for lo, hi in t.get("train", []))
        test = "; ".join(f"{lo:g}…{hi:g}" for lo, hi in t.get("test", []))
        net = f"{s['width']}×{s['depth']}, {s['steps']} steps, {s['seeds']} seeds" if s else ""
        cells = (t["name"], t["family"], t["target"], box, test, net)
        rows.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in cells) + "</tr>")
    return _table(["task", "family", "target", "train", "test (OOD outside train)", "net"], rows)


def render_run_html(data: ReportData, figures: Mapping[str, str]) -> str:
    """Returns report.html: one self-contained page (inline CSS and SVG, no scripts)."""
    run = data.ranking.get("run") or {}

    def figure(name: str) -> str:
        svg = figures.get(name)
        if not svg:
            return '<p class="muted">(no figure: nothing to draw)</p>'
        return f"<figure>{svg}<figcaption class='muted'>{_e(FIGURES[name])}</figcaption></figure>"

    best = next((c for h in data.top if (c := data.candidate(h))), None)
    base = next((c for c in data.shown() if c.get("baseline")), None)
    summary = (
        f"best new candidate <b>{_e(best['name'])}</b> at fitness "
        f"{_e(_num(best['fitness'], '+.3f'))}"
        if best
        else "no new candidate was ranked"
    )
    if base:
        summary += f"; best baseline {_e(base['name'])} at {_e(_num(base['fitness'], '+.3f'))}"
    warnings = "".join(f'<p class="warn">warning: {_e(w)}</p>' for w in data.warnings)
    sections = [
        ("ranking", "Ranking", _html_ranking(data)),
        ("curves", "Activations", figure("activations") + _html_candidates(data)),
        (
            "tasks",
            "Per task",
            figure("tasks") + "<p class='muted'>OOD MSE / ID MSE "
            "(medians over seeds, standardised targets)</p>" + _html_per_task(data),
        ),
        ("progress", "Fitness over the run", figure("fitness")),
        ("run", "The run", _html_run(data)),
        ("lab", "The lab", _html_lab(data)),
    ]
    nav = "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t, _ in sections)
    body = "\n".join(f'<section id="{k}"><h2>{_e(t)}</h2>\n{s}</section>' for k, t, s in sections)
    title = f"minact run {run.get('run_id', '')}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{_e(title)}</h1><p>{_e(run.get('status', ''))}: {summary}</p>{warnings}"
        f"<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )
