"""Benchmark: one candidate's training time on a lab, against a baseline timed in the same run.

Each measurement is a fresh process that sets up as the worker does (threads, heap), trains
once to warm up (task data, lazy imports), then times `--repeat` trainings of each
candidate, one candidate per batch, and reports the median. Baseline and subject processes
alternate (B S B S ...) so that both meet the same load, and the ratio of their medians is
the result. The CPU time the process used (user + system, all its threads) is reported too:
on a machine that others load, it moves less than wall time.

The baseline is this tree with glibc's default heap (heap.py), or, with `--against DIR`,
another checkout of minact trained as its own worker would (for instance
`git worktree add /tmp/minact-main main`, to compare a branch with main).

    python bench/training.py                                  # classic lab, 1 and 2 threads
    python bench/training.py --against /tmp/minact-main --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = {"gelu": "F.gelu(x)", "gelusine": "F.gelu(x) + 0.1 * torch.sin(x)"}


def child(lab_name: str, threads: int, repeat: int, heap: bool) -> dict[str, object]:
    """Returns the median seconds and minor page faults per candidate training, in this process."""
    import torch

    from minact.lab.loader import load_lab
    from minact.sandbox.loader import load_activation
    from minact.sandbox.trainer import Job, Trainer

    torch.set_num_threads(threads)
    if heap:
        try:  # what this checkout's worker does, if it does
            from minact.sandbox.heap import keep_freed_memory
        except ImportError:
            pass
        else:
            keep_freed_memory()
    lab = load_lab(Path(lab_name))
    trainer = Trainer("cpu")
    head = "import torch\nimport torch.nn.functional as F\n\ndef activation(x):\n"
    fns = {name: load_activation(f"{head}    return {body}\n") for name, body in CANDIDATES.items()}
    trainer.train([Job(0, fns["gelu"], t) for t in lab.tasks])  # warm-up
    out: dict[str, object] = {}
    for name, fn in fns.items():
        seconds, cpu, faults = [], [], []
        for _ in range(repeat):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start, cpu_start = time.perf_counter(), time.process_time()
            results = trainer.train([Job(0, fn, t) for t in lab.tasks])
            seconds.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
        out[name] = {
            "s": statistics.median(seconds),
            "cpu": statistics.median(cpu),
            "faults": statistics.median(faults),
        }
    return out


def _measure(tree: Path, args: argparse.Namespace, threads: int, heap: bool) -> dict[str, dict]:
    cmd = [sys.executable, __file__, "--child", "--tasks", args.tasks, "--threads", str(threads)]
    cmd += ["--repeat", str(args.repeat)] + ([] if heap else ["--no-heap"])
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    """Runs the interleaved comparison and prints medians and ratios."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", default="classic", help="lab file or built-in lab (default: classic)")
    p.add_argument("--against", type=Path, default=None, help="baseline checkout of minact")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=5, help="baseline/subject process pairs")
    p.add_argument("--repeat", type=int, default=3, help="trainings per candidate per process")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-heap", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.tasks, args.threads[0], args.repeat, not args.no_heap)))
        return 0
    base_tree, base_heap = (args.against.resolve(), True) if args.against else (ROOT, False)
    base_label = f"{base_tree}" if args.against else "this tree, glibc's default heap"
    print(f"lab {args.tasks}; baseline: {base_label}; subject: {ROOT}; {args.rounds} rounds")
    for threads in args.threads:
        runs: dict[str, list[dict[str, dict]]] = {"base": [], "this": []}
        for _ in range(args.rounds):
            runs["base"].append(_measure(base_tree, args, threads, base_heap))
            runs["this"].append(_measure(ROOT, args, threads, True))
        for name in CANDIDATES:
            b = statistics.median(r[name]["s"] for r in runs["base"])
            t = statistics.median(r[name]["s"] for r in runs["this"])
            cb = statistics.median(r[name]["cpu"] for r in runs["base"])
            ct = statistics.median(r[name]["cpu"] for r in runs["this"])
            fb = statistics.median(r[name]["faults"] for r in runs["base"])
            ft = statistics.median(r[name]["faults"] for r in runs["this"])
            print(
                f"{threads} thread(s) {name:<9} baseline {b:6.3f} s ({fb:7.0f} faults)  "
                f"this {t:6.3f} s ({ft:7.0f} faults)  this/baseline {t / b:.3f}  "
                f"CPU time {cb:6.3f} s -> {ct:6.3f} s: {ct / cb:.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
