"""Benchmark: does the search loop overlap LLM latency with evaluation?

A local OpenAI-compatible test server answers every request after a fixed latency L
with a fresh, valid candidate; the real evaluator scores them on a small lab. The wall
time of a search with budget N at concurrency C is compared with the ideal
max(N * L / C, N * E), where E is the evaluation time per candidate measured in the
same run. A ratio near 1 means neither side waits for the other.

    python bench/pipeline.py                       # N=24, L=0.5 s, C=4, tests' tiny lab
    python bench/pipeline.py --latency 2 --concurrency 8

With --workers, it instead measures a search's throughput in candidates per minute on
the default lab (seeds cached, every proposal a new candidate) with several splits of
the cores into workers, each against the same run's baseline (one worker with torch's
default threads, minact's only setting before the worker pool):

    python bench/pipeline.py --workers 1x2,2x1 --budget 12 --latency 1 --concurrency 8

With --cascade as well, each split runs twice, without and with the lab's evaluation
cascade ([lab.cascade]), each with its own proposals of the same family (the same ones
again would all be cache hits); the screened candidates are then scored in full (their
stage-1 tasks from the cache) to count the misses: screened candidates that the full
evaluation ranks in that run's top K.

    python bench/pipeline.py --workers 1x2,2x1 --cascade --budget 12 --latency 1 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from llm_server import LLMServer, numbered_replies

from minact import seeds as seeds_lib
from minact.cache import FitnessCache
from minact.candidate import Candidate
from minact.evaluate import EVALUATOR_VERSION, Evaluator, EvaluatorConfig
from minact.lab.loader import default_tasks_path, load_lab
from minact.lab.task import Lab
from minact.sandbox import pool
from minact.score import Score
from minact.search import llm, loop
from minact.search.cascade import Screen
from minact.search.proposers import LLMProposer
from minact.validate import validate

TERMS = ["torch.sin", "torch.cos", "torch.tanh", "torch.sigmoid", "torch.erf", "F.softsign"]


def _body(k: int) -> str:
    """Returns proposal k's candidate: GELU plus a small term, with an amplitude of 0.05 to 1.05
    and a frequency of 1 to 5 whatever k is; distinct for any 299,190 consecutive k (6 terms x
    5 frequencies x 9973 amplitudes, coprime periods)."""
    term = TERMS[k % len(TERMS)]
    freq = 1 + (k // len(TERMS)) % 5
    amp = 0.05 + 0.0001 * (k % 9973)
    return f"F.gelu(x) + {amp:.4f} * {term}({freq} * x)"


def main() -> int:
    """Runs the benchmark and prints the wall time against the ideal."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--budget", type=int, default=24)
    p.add_argument("--latency", type=float, default=0.5, help="seconds per reply")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--tasks", type=Path, default=None, help="default: tests' tiny lab; with "
                   "--workers, the default lab")  # fmt: skip
    p.add_argument("--workers", default="", help="splits to compare, WORKERSxTHREADS,...")
    p.add_argument("--cache-dir", type=Path, default=None, help="with --workers: a cache to "
                   "keep (the seeds are scored once); default: a temporary one")  # fmt: skip
    p.add_argument("--offset", type=int, default=0, help="with --workers: first proposal "
                   "number, so that a kept cache holds none of them")  # fmt: skip
    p.add_argument("--cascade", action="store_true", help="with --workers: each split without "
                   "and with the lab's cascade, and the cascade's misses")  # fmt: skip
    args = p.parse_args()
    if args.workers:
        return compare_workers(args)
    lab = load_lab(args.tasks or ROOT / "tests" / "assets" / "tiny_tasks.toml")
    with tempfile.TemporaryDirectory() as tmp, FitnessCache(Path(tmp), EVALUATOR_VERSION) as cache:
        with Evaluator(lab, cache, EvaluatorConfig()) as evaluator:
            evaluator.score(seeds_lib.seed_candidates())  # warm, cached
            probe = [
                validate(
                    f"import torch\nimport torch.nn.functional as F\n"
                    f"def activation(x):\n    return {_body(k)}\n"
                )
                for k in range(8)
            ]
            start = time.perf_counter()
            evaluator.score([c for c in probe if isinstance(c, Candidate)])
            per_candidate = (time.perf_counter() - start) / len(probe)
            # Proposals from 1000 on: distinct from the candidates timed directly.
            replies = numbered_replies(_body, start=1000)
            with LLMServer(replies, latency=args.latency) as server:
                config = loop.SearchConfig(budget=args.budget, concurrency=args.concurrency)
                llm_config = llm.LLMConfig(url=server.url, model="bench")

                async def run() -> loop.Summary:
                    async with llm.http_client() as http:
                        proposer = LLMProposer(llm.LLMClient(http, llm_config))
                        return await loop.run(config, lab, proposer, evaluator, lambda e: None)

                start = time.perf_counter()
                summary = asyncio.run(run())
                wall = time.perf_counter() - start
    n = summary.counters.evaluated
    ideal = max(n * args.latency / args.concurrency, n * per_candidate)
    print(
        f"lab {lab.path.name}; budget {args.budget}; latency {args.latency} s; "
        f"concurrency {args.concurrency}; status {summary.status}"
    )
    print(f"evaluation per candidate E: {per_candidate:.3f} s (measured in this run)")
    print(f"LLM-bound ideal N*L/C:      {n * args.latency / args.concurrency:.2f} s")
    print(f"evaluation-bound ideal N*E: {n * per_candidate:.2f} s")
    print(
        f"search wall time:           {wall:.2f} s for {n} candidates "
        f"({summary.counters.proposals} proposals)"
    )
    print(f"ratio wall/ideal: {wall / ideal:.2f}  (1.00 = perfect overlap)")
    return 0


def _search(
    lab: Lab,
    cache: FitnessCache,
    config: EvaluatorConfig,
    args: argparse.Namespace,
    start: int,
    cascade: bool = False,
) -> tuple[int, float, float, dict[str, Any]]:
    """Returns (evaluated, wall seconds, training seconds, worker info) of one search;
    info["failed"] says how many of its candidates failed (a timeout under load, say),
    info["scores"] holds its candidates' scores, info["missed"] (with `cascade`) how many
    screened candidates the full evaluation puts in the run's top K."""
    with (
        Evaluator(lab, cache, config) as evaluator,
        LLMServer(numbered_replies(_body, start=start), latency=args.latency) as server,
    ):
        config_ = loop.SearchConfig(budget=args.budget, concurrency=args.concurrency)
        llm_config = llm.LLMConfig(url=server.url, model="bench")
        scores: list[Score] = []

        def record(event: dict[str, Any]) -> None:
            if event.get("event") == "outcome" and event.get("score"):
                scores.append(Score.from_dict(event["score"]))

        async def run() -> loop.Summary:
            async with llm.http_client() as http:
                proposer = LLMProposer(llm.LLMClient(http, llm_config))
                screen = (
                    Screen.of_lab(evaluator, lab, evaluator.on_tasks)
                    if cascade
                    else Screen(evaluator)
                )
                search = loop.Loop(config_, lab, proposer, evaluator, record, None,
                                   loop.History(), screen)  # fmt: skip
                return await search.run()

        started = time.perf_counter()
        summary = asyncio.run(run())
        wall = time.perf_counter() - started
        info = dict(evaluator.info)
        if cascade and lab.cascade is not None:
            info["missed"] = _missed(evaluator, summary, scores, lab.cascade.top)
    info["failed"] = sum(1 for s in scores if s.status not in ("ok", "screened"))
    info["screened"] = sum(1 for s in scores if s.status == "screened")
    trained = sum(s.seconds or 0.0 for s in scores)
    return summary.counters.evaluated, wall, trained, info


def _missed(evaluator: Evaluator, summary: loop.Summary, scores: list[Score], top: int) -> int:
    """Returns how many screened candidates the full evaluation ranks in the run's top K
    (seeds included), scoring them in full now (their stage-1 tasks come from the cache)."""
    screened = [s for s in scores if s.status == "screened" and s.code_hash is not None]
    if not screened:
        return 0
    cands = [Candidate(s.source, s.code_hash, s.name) for s in screened]  # type: ignore[arg-type]
    full = [
        s.fitness for s in evaluator.score(cands) if s.code_hash in {c.code_hash for c in cands}
    ]
    ranked = sorted(
        [m.score.fitness for m in summary.population.ranked() if m.score.fitness is not None]
        + [f for f in full if f is not None]
    )
    kth = ranked[top - 1] if len(ranked) >= top else math.inf
    return sum(1 for f in full if f is not None and f <= kth)


def compare_workers(args: argparse.Namespace) -> int:
    """Prints candidates/min of one search per worker split, against the baseline."""
    lab = load_lab(args.tasks or default_tasks_path())
    cores = pool.cpu_cores()
    splits = [(int(w), int(t)) for w, t in (s.split("x") for s in args.workers.split(","))]
    with contextlib.ExitStack() as stack:
        folder = args.cache_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cache = stack.enter_context(FitnessCache(folder, EVALUATOR_VERSION))
        with Evaluator(lab, cache, EvaluatorConfig(device="cpu", workers=2, threads=1)) as ev:
            ev.score(seeds_lib.seed_candidates())  # cached: every search starts from them
        print(
            f"lab {lab.path.name} ({len(lab.tasks)} tasks); budget {args.budget} new candidates "
            f"per search; LLM stub latency {args.latency} s; concurrency {args.concurrency}; "
            f"seeds cached; {cores} cores",
            flush=True,
        )
        # The baseline is minact before the pool: one worker with torch's default threads,
        # which is one thread per core; a split that is the same setting is not run twice.
        if args.cascade and lab.cascade is None:
            print(f"{lab.path.name} has no [lab.cascade]; --cascade compares nothing", flush=True)
        modes = [False, True] if args.cascade and lab.cascade is not None else [False]
        base = 0.0
        for i, (workers, threads) in enumerate([(1, 0), *splits]):
            same = i > 0 and workers == 1 and threads == cores
            for cascade in modes:
                name = "baseline: 1 worker, torch's default threads" if i == 0 else (
                    f"{workers}x{threads} ({workers} worker{'s' if workers > 1 else ''}, "
                    f"{threads} thread{'s' if threads > 1 else ''} each)"
                )  # fmt: skip
                if len(modes) > 1:
                    name += ", cascade" if cascade else ", no cascade"
                if same:
                    print(f"{name:60s} = the baseline ({cores} cores)", flush=True)
                    continue
                config = EvaluatorConfig(device="cpu", workers=workers, threads=threads)
                # Each search gets its own proposals, from the same family: nothing is a
                # cache hit (the same proposals again would all be).
                start = args.offset + (i + 1) * 10_000 + (5_000 if cascade else 0)
                n, wall, trained, info = _search(lab, cache, config, args, start, cascade)
                rate = n / wall * 60
                base = base or rate
                extra = ""
                if cascade:
                    extra = f"; screened {info['screened']} of {n}, missed {info['missed']}"
                print(
                    f"{name:60s} {rate:6.2f} candidates/min  ({n} in {wall:.1f} s, "
                    f"{info['failed']} failed{extra}; ratio to baseline {rate / base:.2f}; "
                    f"training {trained / max(n, 1):.2f} s per candidate in the worker; "
                    f"threads {info.get('threads')})",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
