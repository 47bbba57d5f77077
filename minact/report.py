"""Run reports: the ranking document rendered as Markdown (pure: text in, text out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render_markdown"]


def _num(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)


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


def render_markdown(doc: Mapping[str, Any], top: int = 30) -> str:
    """Returns report.md for a ranking document (the shape of ranking.json)."""
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
        if run.get("counters"):
            lines += _counter_lines(run["counters"])
        lines.append("")
    families = list(lab["families"])
    header = ["#", "name", "fitness", "± seed sd", *families, "mean OOD MSE", "status", "parent"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    shown = [c for c in doc["candidates"] if c["status"] == "ok"][:top]
    shown += [c for c in doc["candidates"] if c.get("baseline") and c not in shown]
    for c in shown:
        name = c["name"] + (" (baseline)" if c.get("baseline") else "")
        row = [
            str(c["rank"] or "—"),
            name,
            _num(c["fitness"], "+.3f"),
            _num(c["fitness_spread"], ".3f"),
            *(_num(c["families"].get(f), "+.3f") for f in families),
            _num(c["mean_ood_mse"], ".4g"),
            c["status"],
            (c.get("parent") or "")[:10],
        ]
        lines.append("| " + " | ".join(row) + " |")
    best = next(
        (c for c in doc["candidates"] if c["status"] == "ok" and not c.get("baseline")), None
    )
    if best is not None:
        lines += [
            "",
            f"## Best new candidate: {best['name']} ({best['code_hash'][:10]})",
            "",
            "```python",
            best["source"].rstrip(),
            "```",
        ]
    return "\n".join(lines) + "\n"
