"""Benchmark: where a candidate's time goes beyond training, in the worker and the main process.

Two profiles on the default lab, each on new candidates (nothing cached):

1. The worker's side: the worker's train handler run in this process under cProfile
   (trusted built-in-style sources; a real search runs it in the sandboxed worker), against
   the training time the trainer reports; what is left is the worker's overhead.
2. The main process's side: `Evaluator.score` through a real worker, under cProfile; the
   main process's own time is everything but waiting on the worker.

    python bench/overhead.py            # 3 candidates each
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from minact.cache import FitnessCache
from minact.candidate import Candidate
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import default_tasks_path, load_lab
from minact.validate import validate


def _source(k: int) -> str:
    return (
        "import torch\nimport torch.nn.functional as F\n\ndef activation(x):\n"
        f"    return F.gelu(x) + {0.01 * (k + 1):.2f} * torch.sin({k + 1} * x)\n"
    )


def _top(profile: cProfile.Profile, n: int) -> str:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(n)
    lines = out.getvalue().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("ncalls"))
    return "\n".join(lines[start : start + n + 1])


def worker_side(count: int) -> None:
    """Prints the worker's time per candidate outside the reported training."""
    import torch

    from minact.sandbox.worker import _Session

    torch.set_num_threads(1)
    lab = load_lab(default_tasks_path())
    session = _Session()
    session.hello({"op": "hello", "device": "cpu", "threads": 1, "memory_bytes": 0})

    def request(k: int) -> dict[str, Any]:
        tasks = [t.to_dict() for t in lab.tasks]
        return {"op": "train", "items": [{"source": _source(k), "tasks": tasks}]}

    session.train(request(0))  # data and initial weights are cached in a warm worker
    profile = cProfile.Profile()
    wall = trained = 0.0
    for k in range(1, count + 1):
        started = time.perf_counter()
        profile.enable()
        reply = session.train(request(k))
        json.dumps(reply)
        profile.disable()
        wall += time.perf_counter() - started
        trained += sum(r["seconds"] for r in reply["results"][0])
    print(
        f"worker, per candidate ({len(lab.tasks)} tasks, 1 thread): handler "
        f"{wall / count:.2f} s, training {trained / count:.2f} s, outside training "
        f"{(wall - trained) / count:.2f} s"
    )
    print(_top(profile, 12))


def main_side(count: int) -> None:
    """Prints the main process's own time per candidate in `Evaluator.score`."""
    lab = load_lab(default_tasks_path())
    cands = [c for k in range(count + 1) if isinstance(c := validate(_source(100 + k)), Candidate)]
    with tempfile.TemporaryDirectory() as tmp, FitnessCache(Path(tmp), EVALUATOR_VERSION) as cache:
        config = EvaluatorConfig(device="cpu", threads=1, workers=1)
        with Evaluator(lab, cache, config) as evaluator:
            evaluator.score(cands[:1])  # the worker started and the reference scored
            profile = cProfile.Profile()
            started = time.perf_counter()
            profile.enable()
            scores = evaluator.score(cands[1:])
            profile.disable()
            wall = time.perf_counter() - started
    stats = pstats.Stats(profile)
    waiting = sum(
        tt
        for (_, _, name), (_, _, tt, _, _) in stats.stats.items()  # type: ignore[attr-defined]
        if "acquire" in name
    )
    trained = sum(s.seconds or 0.0 for s in scores[1:])
    print(
        f"main process, per candidate: score() {wall / count:.2f} s, worker training "
        f"{trained / count:.2f} s, main process's own time {(wall - waiting) / count:.3f} s"
    )
    print(_top(profile, 12))


def main() -> int:
    """Runs both profiles."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--candidates", type=int, default=3)
    args = p.parse_args()
    worker_side(args.candidates)
    main_side(args.candidates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
