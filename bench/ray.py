"""Benchmark: candidates per minute of `minact score` with the local backend and with Ray.

Runs the same `minact score` command (the 14 built-in activations on the default lab
unless told otherwise, each run with a fresh cache) as a user would, once per backend,
in one run on one machine, and prints candidates per minute and the ratio Ray / local:
the overhead (or gain) of the Ray path. Wall time includes everything a user waits for:
the worker's start, and for Ray the start of a local cluster (or joining --ray-address)
and of its actors. Every backend must produce the same fitness for every candidate.

    python bench/ray.py                               # 14 built-ins, default lab
    python bench/ray.py --tasks tests/assets/tiny_tasks.toml
    python bench/ray.py --ray-address auto            # an already running cluster
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from minact import seeds


def _score(names: list[str], tasks: str | None, extra: list[str]) -> tuple[float, dict[str, Any]]:
    """Returns the wall time and the --json document of one `minact score`, fresh cache."""
    with tempfile.TemporaryDirectory(prefix="minact-bench-ray-") as tmp:
        cmd = [sys.executable, "-m", "minact", "score", *names, "--json"]
        cmd += ["--cache-dir", str(Path(tmp) / "cache"), *extra]
        if tasks is not None:
            cmd += ["--tasks", str(Path(tasks).resolve()) if Path(tasks).exists() else tasks]
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", help="lab file (default: minact's default lab)")
    parser.add_argument("--ray-address", help="join this Ray cluster (default: start one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    args = parser.parse_args()
    names = list(seeds.SEEDS)
    threads = ["--threads", str(args.threads)]
    ray = ["--backend", "ray", *threads]
    if args.ray_address:
        ray += ["--ray-address", args.ray_address]
    runs = {
        f"local: one worker process, --threads {args.threads}": threads,
        f"ray: one actor per {max(1, args.threads)} CPU, --threads {args.threads}": ray,
    }
    rows = []
    fitness: dict[str, dict[str, float | None]] = {}
    for label, extra in runs.items():
        wall, doc = _score(names, args.tasks, extra)
        n = len(doc["candidates"])
        fitness[label] = {c["name"]: c["fitness"] for c in doc["candidates"]}
        worker = doc["run"]["worker"] or {}
        rows.append((label, n, wall, 60 * n / wall, worker.get("workers", 1)))
        print(f"{label}: {n} candidates in {wall:.1f} s", file=sys.stderr, flush=True)
    lab = args.tasks or "the default lab"
    print(f"`minact score` of the {len(names)} built-ins on {lab}, fresh cache each")
    print("| backend | workers | candidates | wall s | candidates / min |")
    print("|---|---:|---:|---:|---:|")
    for label, n, wall, rate, workers in rows:
        print(f"| {label} | {workers} | {n} | {wall:.1f} | {rate:.2f} |")
    print(f"candidates / min, ray / local: {rows[1][3] / rows[0][3]:.2f}")
    same = fitness[rows[0][0]] == fitness[rows[1][0]]
    print(f"same fitness for every candidate on both backends: {same}")


if __name__ == "__main__":
    main()
