"""Benchmark: the main process's work per candidate as a run grows, old path against new.

Four things a run does over and over, each timed on populations of N scored members
(synthetic sources of the mutator's shape, scored on two tasks) with the old code path and
the current one in the same process, and checked to give the same result:

* an LLM proposal's prompt (`open_conversation`): the old path wrote the catalogue line of
  every member (each parses its source) and kept the few dozen that fit;
* the ranking a progress update and a prompt read (`Population.ranked`): the old path
  sorted the whole population on each call, the new one keeps it sorted as members join;
* a resume's count of a replayed proposal's exchanges (`History.count_exchanges`): the
  old path sorted and scanned every logged turn for each proposal;
* the ranking table `evolve` prints at the end (`print_ranking`): the old path printed
  every candidate;
* the report's fitness figure's "median so far": the old path took the median of every
  prefix of the run's fitness values.

    python bench/scale.py                  # N = 500, 2000, 5000
    python bench/scale.py --sizes 200,1000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from minact.candidate import Hash
from minact.cli import _shared
from minact.lab.loader import load_lab
from minact.outcome import Counters, Reply
from minact.report import plots
from minact.runs.history import History
from minact.runs.ranking import ranking_document
from minact.score import Score, TaskScore
from minact.search import prompt
from minact.search.conversation import open_conversation
from minact.search.population import Member, Population

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "assets" / "tiny_tasks.toml"


def _members(n: int, rng: random.Random) -> list[Member]:
    out = []
    for i in range(n):
        c, w, d = rng.uniform(-1, 1), rng.uniform(0.5, 4), rng.uniform(1, 3)
        body = f"F.gelu(x) + {c:.3f} * torch.sin({w:.2f} * x) * torch.tanh(x / {d:.2f})"
        source = f"def activation(x):\n    return {body}"
        ok = rng.random() > 0.05
        fitness = rng.choice([-1.0, -0.5, rng.uniform(-2, 1)]) if ok else None  # some ties
        tasks = {t: TaskScore(1.0, 0.1, 0.0, rng.uniform(-3, 1)) for t in ("sine", "product")}
        status = "ok" if ok else "nonfinite"
        numbers = (0.1, 1.0, tasks) if ok else (None, None, {})
        score = Score(f"c{i}", Hash(f"{i:064x}"), source, status, "" if ok else "not finite",
                      Hash(f"b{i:063x}"), fitness, *numbers, 1.0)  # fmt: skip
        out.append(Member(score, i, i % 4, "offline"))
    return out


def _per_call(f: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        f()
    return (time.perf_counter() - started) / calls


@contextlib.contextmanager
def _eager_catalogue() -> Iterator[None]:
    """The old prompt path: every member's catalogue line written before trimming."""
    lazy = prompt._scored_list
    prompt._scored_list = lambda catalogue: iter(list(lazy(catalogue)))  # type: ignore[assignment]
    try:
        yield
    finally:
        prompt._scored_list = lazy  # type: ignore[assignment]


def _prompts(pop: Population, calls: int) -> tuple[float, float]:
    lab = load_lab(TINY)

    def build() -> list[Any]:
        return [
            open_conversation(k, pop, lab, seed=0, island=k % 4, prompt_chars=8000, llm=True)[
                0
            ].messages
            for k in range(calls)
        ]

    started = time.perf_counter()
    with _eager_catalogue():
        old = build()
    old_s = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    new = build()
    new_s = (time.perf_counter() - started) / calls
    assert old == new, "the prompts differ"
    return old_s, new_s


def _ranking(pop: Population, calls: int) -> tuple[float, float]:
    def old() -> list[Member]:
        ok = [m for m in pop.members if m.score.ok]
        return sorted(ok, key=lambda m: (m.score.fitness, m.index))

    assert old() == pop.ranked(), "the rankings differ"
    return _per_call(old, calls), _per_call(pop.ranked, calls)


def _old_count_exchanges(h: History, c: Counters, index: int) -> None:
    for (k, turn), reply in sorted(h.turns.items()):
        if k == index:
            c.add_reply(reply)
            if (k, turn) in h.follow_ups:
                c.add_follow_up(h.follow_ups[(k, turn)])
    for k, cut in sorted(h.cuts.items()):
        if k == index:
            c.add_prompt_cuts(cut)


def _resume(n: int, rng: random.Random, sample: int) -> tuple[float, float]:
    events: list[dict[str, Any]] = []
    for k in range(n):
        events.append({"event": "proposal", "index": k, "cut": {"scored list": n - k}})
        for turn in range(rng.choice([1, 1, 1, 2, 3])):
            reply = {"event": "reply", "index": k, "turn": turn, "reply": Reply("x").to_dict()}
            events.append(reply)
            if turn:
                events.append({"event": "follow_up", "index": k, "turn": turn - 1,
                               "kind": "duplicate", "reason": "r", "source": "s"})  # fmt: skip
    h = History.from_events(events)
    picked = rng.sample(range(n), min(sample, n))
    old, new = Counters(), Counters()
    started = time.perf_counter()
    for k in picked:
        _old_count_exchanges(h, old, k)
    old_s = (time.perf_counter() - started) / len(picked)
    started = time.perf_counter()
    for k in picked:
        h.count_exchanges(new, k)
    new_s = (time.perf_counter() - started) / len(picked)
    assert old.to_dict() == new.to_dict(), "the counts differ"
    return old_s, new_s


def _table(pop: Population) -> tuple[float, float, int, int]:
    lab = load_lab(TINY)
    doc = ranking_document([m.score for m in pop.members], lab, {"run_id": "bench"})

    def printed() -> tuple[float, int]:
        out = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(out):
            _shared.print_ranking(doc)
        return time.perf_counter() - started, out.getvalue().count("\n")

    rows = _shared.ROWS
    _shared.ROWS = 10**9  # the old path: every row
    try:
        old_s, old_lines = printed()
    finally:
        _shared.ROWS = rows
    new_s, new_lines = printed()
    return old_s, new_s, old_lines, new_lines


def _medians(n: int, rng: random.Random) -> tuple[float, float]:
    values = [rng.uniform(-2, 1) for _ in range(n)]
    started = time.perf_counter()
    old = [statistics.median(values[: i + 1]) for i in range(n)]
    old_s = time.perf_counter() - started
    started = time.perf_counter()
    new = plots._running_medians(values)
    new_s = time.perf_counter() - started
    assert old == new, "the medians differ"
    return old_s, new_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000,5000", help="population sizes, comma-sep.")
    parser.add_argument("--calls", type=int, default=20, help="prompts and rankings timed per N")
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        rng = random.Random(n)
        pop = Population(4)
        for m in _members(n, rng):
            pop.add(m)
        lines = [f"N = {n}"]
        old, new = _prompts(pop, args.calls)
        lines.append(f"  LLM prompt: old {1000 * old:8.2f} ms, new {1000 * new:7.2f} ms, "
                     f"old/new {old / new:6.1f}x")  # fmt: skip
        old, new = _ranking(pop, args.calls * 10)
        lines.append(f"  ranked():   old {1000 * old:8.3f} ms, new {1000 * new:7.3f} ms, "
                     f"old/new {old / new:6.1f}x")  # fmt: skip
        old, new = _resume(n, rng, sample=200)
        lines.append(f"  resume, per replayed proposal: old {1000 * old:7.3f} ms, new "
                     f"{1000 * new:6.4f} ms, old/new {old / new:6.0f}x; the whole replay: old "
                     f"{n * old:.2f} s, new {n * new:.3f} s")  # fmt: skip
        old, new, old_lines, new_lines = _table(pop)
        lines.append(f"  final table: old {old:6.2f} s ({old_lines} lines), new {new:5.2f} s "
                     f"({new_lines} lines), old/new {old / new:5.1f}x")  # fmt: skip
        old, new = _medians(n, rng)
        lines.append(f"  fitness figure's medians: old {old:6.3f} s, new {new:6.4f} s, "
                     f"old/new {old / new:5.0f}x")  # fmt: skip
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
