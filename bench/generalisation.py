"""Measurement: does what wins the lab win elsewhere? The tables of docs/generalisation.md.

Reads a run's ranking.json and the rescore folders that `minact rescore --run RUN_DIR
--suite NAME --top K` wrote beside it (RUN_DIR/rescore-<lab>/ranking.json), and prints, as
Markdown:

- per candidate (the 14 built-in activations and the run's K best), the fitness on the run's
  lab and on each suite, with the seed spread (standard deviation over seeds of the fitness
  computed one seed at a time) where the lab has more than one seed;
- per suite, the rank agreement with the run's lab that rescore measured (Kendall tau and
  Spearman rho, 5-95% over the suite's tasks resampled);
- paired comparisons on each suite (minact.claims: a bootstrap over tasks of the per-task
  log-ratio difference) of the paper's finds, gelusine and gsp, against relu and gelu.

Nothing here trains: run the rescores first (docs/generalisation.md lists the commands).

    python bench/generalisation.py runs/RUN_ID --suites tasks transfer algorithmic real
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from minact.claims import MIN_TASKS, claim_text, paired_claim

PAIRS = (("gelusine", "relu"), ("gelusine", "gelu"), ("gsp", "relu"), ("gsp", "gelu"))


def _fmt(value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:+.3f}" + (f" ± {spread:.3f}" if spread is not None else "")


def _doc(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code_hash"]: c for c in doc["candidates"] if c["code_hash"]}


def _ratios(row: dict[str, Any]) -> dict[str, float]:
    return {t: v["log_ratio"] for t, v in row["tasks"].items() if v["log_ratio"] is not None}


def main() -> None:
    """Prints the study's tables for one run and its rescores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run directory")
    parser.add_argument("--suites", nargs="+", default=["transfer", "algorithmic", "real"])
    args = parser.parse_args()
    lab = _doc(args.run / "ranking.json")
    suites = {s: _doc(args.run / f"rescore-{s}" / "ranking.json") for s in args.suites}
    scored = set.intersection(*(set(_rows(d)) for d in suites.values()))
    rows = [c for c in lab["candidates"] if c["code_hash"] in scored]
    header = ["name", "lab", *args.suites]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for c in rows:
        cells = [c["name"] + (" (baseline)" if c["baseline"] else ""), _fmt(c["fitness"])]
        for doc in suites.values():
            r = _rows(doc)[c["code_hash"]]
            cells.append(_fmt(r["fitness"], r["fitness_spread"]) if r["status"] == "ok" else "—")
        print("| " + " | ".join(cells) + " |")
    print("\n| suite | candidates | Kendall tau (5-95%) | Spearman rho (5-95%) |")
    print("|---|---:|---|---|")
    for name, doc in suites.items():
        a = doc.get("agreement")
        if not a:
            print(f"| {name} | — | — | — |")
            continue
        t, r = a["kendall_tau"], a["spearman_rho"]
        print(
            f"| {name} | {a['candidates']} | {t['value']:+.2f} ({t['lo']:+.2f}..{t['hi']:+.2f}) | "
            f"{r['value']:+.2f} ({r['lo']:+.2f}..{r['hi']:+.2f}) |"
        )
    print("\n| suite | comparison | mean log-ratio difference | beats it? |")
    print("|---|---|---:|---|")
    for name, doc in [("lab", lab), *suites.items()]:
        by_name = {c["name"]: c for c in doc["candidates"] if c["baseline"]}
        for a, b in PAIRS:
            ra, rb = _ratios(by_name[a]), _ratios(by_name[b])
            tasks = [t for t in ra if t in rb]
            claim = paired_claim([ra[t] for t in tasks], [rb[t] for t in tasks], b)
            diff = f"{claim.difference:+.3f}" if claim else "—"
            text = claim_text(claim.to_dict()) if claim else f"fewer than {MIN_TASKS} tasks"
            print(f"| {name} | {a} vs {b} | {diff} | {text} |")


if __name__ == "__main__":
    main()
