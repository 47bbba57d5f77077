"""Benchmark: the memory the trace's sampler takes, against another checkout in the same run.

After training, the worker samples the pre-activations its traced network saw (the trace that
feeds a candidate's behaviour and its report). This script gives a sampler N float32
pre-activations in 8 pieces, as a network's snapshots arrive, and reports the peak resident
memory the sampling adds beyond holding them, in MiB and in copies of the values, for this
tree and for `--against DIR` (another checkout, e.g. `git worktree add /tmp/minact-main
main`), each in a fresh process. Both must return the same sample: the trace is part of a
candidate's results, so a change here must keep every bit.

    python bench/trace_memory.py --against /tmp/minact-main [--n 40000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in the measured checkout (PYTHONPATH): the sampler's input set as training leaves it.
_CHILD = """
import json, resource, sys
import torch
from minact.sandbox.trace import Tracer

n = int(sys.argv[1])
torch.manual_seed(0)
pieces = [torch.randn(n // 8) for _ in range(8)]
tracer = Tracer([0], [torch.tanh], lambda fn: lambda x, p: fn(x))
tracer._seen[0] = pieces  # what training records (trace.py), without training a network
del pieces
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sample = tracer.sample(0, 12345)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"added_kib": peak - base, "sample": list(sample)}))
"""


def measure(tree: Path, n: int) -> dict[str, object]:
    """Returns the peak memory the sampler added (KiB) and its sample, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # In the tree's folder: `python -c` puts the working folder first on sys.path.
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n)], env=env, cwd=tree, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"{tree}: the sampler failed:\n{out.stderr[-2000:]}")
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--against", type=Path, required=True, help="the baseline checkout")
    p.add_argument("--n", type=int, default=40_000_000, help="pre-activations (float32)")
    args = p.parse_args()
    held = args.n * 4 / 2**20
    rows = {"baseline": measure(args.against.resolve(), args.n), "this tree": measure(ROOT, args.n)}
    print(f"{args.n} float32 pre-activations ({held:.0f} MiB held)")
    print("| tree | peak added by sampling | in copies of the values |")
    print("|---|---:|---:|")
    for name, row in rows.items():
        mib = int(row["added_kib"]) / 1024  # type: ignore[call-overload]
        print(f"| {name} | {mib:.0f} MiB | {mib / held:.2f} |")
    base, this = (int(r["added_kib"]) for r in rows.values())  # type: ignore[call-overload]
    print(f"ratio (this tree / baseline): {this / max(base, 1):.2f}")
    same = rows["baseline"]["sample"] == rows["this tree"]["sample"]
    print("samples identical" if same else "SAMPLES DIFFER: the trace changed")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
