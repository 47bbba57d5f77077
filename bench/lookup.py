"""Benchmark: `minact show/export/rescore HASH` finding a candidate in a folder of runs.

Synthesises RUNS run directories of N evaluated candidates each (copies of one real run's
run.json and seed lines, with N outcome lines of distinct code hashes), then times the
lookup of one hash prefix (`catalog.find` over `catalog.all_runs`, as the commands do):
once with every run's ranking rebuilt from its event log (the old path, and the path of a
run without a current ranking.json) and once reading each run's current ranking.json.
Both must find the same candidate with the same entry and lineage.

    python bench/lookup.py --base runs/<a finished run> [--runs 5] [--n 2000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

from minact.report import build, files
from minact.runs import catalog


def synthesise(base: Path, out: Path, runs: int, n: int, rng: random.Random) -> list[str]:
    """Writes `runs` runs of `n` candidates under `out`; returns every candidate's hash."""
    events = [json.loads(line) for line in (base / "events.jsonl").read_text().splitlines()]
    head = [e for e in events if e["event"] in ("start", "seed")]
    template = next(e for e in events if e["event"] == "outcome" and e["kind"] == "evaluated")
    hashes: list[str] = []
    for r in range(runs):
        run = out / f"run{r}"
        run.mkdir(parents=True)
        shutil.copy(base / "run.json", run / "run.json")
        lines = [json.dumps(e) for e in head]
        parent = template["parent"]
        for k in range(n):
            h = f"{rng.getrandbits(256):064x}"
            score = {**template["score"], "code_hash": h, "name": f"c{k}", "parent": parent}
            score["fitness"] = rng.uniform(-2, 1)
            score["source"] = f"def activation(x):\n    return {k + 1} * torch.sin(x)"
            e = {**template, "index": k, "island": k % 4, "parent": parent, "score": score}
            lines.append(json.dumps(e))
            hashes.append(h)
            parent = h
        lines.append(json.dumps({"event": "end", "status": "finished", "time": 0.0}))
        (run / "events.jsonl").write_text("\n".join(lines) + "\n")
    return hashes


def _timed(prefix: str, runs_dir: Path) -> tuple[float, catalog.Found]:
    started = time.perf_counter()
    found = catalog.find(prefix, catalog.all_runs(runs_dir))
    return time.perf_counter() - started, found


def main() -> None:
    """Prints the lookup time with every ranking replayed and with rankings read."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="a finished run directory")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--out", type=Path, default=Path("bench-lookup-runs"))
    args = p.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    hashes = synthesise(args.base, args.out, args.runs, args.n, random.Random(0))
    prefix = hashes[len(hashes) // 2][:12]
    replayed_s, replayed = _timed(prefix, args.out)  # no ranking.json yet: every run replayed
    for run in sorted(args.out.iterdir()):  # as `evolve` and `report` leave them
        files.write(run, build.build(run))
    read_s, read = _timed(prefix, args.out)
    same: dict[str, Any] = {"entry": replayed.entry == read.entry}
    same["lineage"] = replayed.lineage == read.lineage and replayed.run == read.run
    assert all(same.values()), same
    total = args.runs * args.n
    print(f"{args.runs} runs x {args.n} candidates ({total}): find {prefix}")
    print(f"  rankings rebuilt from the event logs: {replayed_s:.3f} s")
    print(f"  current ranking.json read:            {read_s:.3f} s ({replayed_s / read_s:.1f}x)")


if __name__ == "__main__":
    main()
