"""The search loop: one asyncio loop that proposes, validates, evaluates and selects.

Up to `concurrency` LLM requests stream at once; validated candidates queue for the
evaluator, which runs on one worker thread in batches as soon as candidates arrive, so
evaluation and replies overlap. Outcomes are applied to the population strictly in
proposal order, and proposal k is built (parents chosen, prompt written) right after
outcome k - window has been applied, with its own random generator seeded by
(seed, k); the window (2 x concurrency by default) lets the next requests stream
while earlier replies are evaluated. The population a proposal sees therefore does not
depend on timing: a run replayed from its recorded replies (or resumed from its event
log) makes the same choices and reaches the same result. The price is head-of-line
blocking: one slow reply holds back later proposals' application, not their work.

`--budget` counts distinct candidates evaluated (cache hits included); replies that do
not parse, are rejected by validation, or duplicate an earlier candidate by code or
behaviour do not consume it, and are counted apart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from minact import seeds as seeds_lib
from minact.candidate import Candidate
from minact.errors import EvaluationError
from minact.lab.task import Lab
from minact.outcome import Counters, Outcome, Reply, collision_event, to_event
from minact.runs.history import History
from minact.score import Score
from minact.search.population import Member, Population
from minact.search.prompt import ParseFailure, build_messages, parse_reply
from minact.search.proposers import ProposalRequest, Proposer
from minact.validate import validate

__all__ = ["Counters", "Evaluator", "History", "Loop", "SearchConfig", "Summary", "run"]


class Evaluator(Protocol):
    """What the loop needs from evaluate.Evaluator (kept abstract: no torch here)."""

    def score(self, candidates: Sequence[Candidate]) -> list[Score]:
        """Returns scores for the reference and each distinct candidate."""
        ...

    def preferred_batch(self) -> int:
        """Returns how many candidates one call should bring."""
        ...

    def interrupt(self) -> None:
        """Stops the evaluation in progress (from another thread)."""
        ...


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """Settings of one search; see `minact evolve --help`."""

    budget: int
    concurrency: int = 4
    window: int = 0  # proposals built ahead of the applied outcomes; 0: 2 * concurrency
    seed: int = 0
    islands: int = 4
    max_calls: int = 0  # 0: 4 * budget + concurrency
    migration_interval: int = 25
    prompt_chars: int = 8000
    max_consecutive_errors: int = 8
    seed_names: tuple[str, ...] = tuple(seeds_lib.SEEDS)

    @property
    def lookahead(self) -> int:
        """Returns how many proposals may be pending (built, not yet applied)."""
        return self.window or 2 * self.concurrency

    @property
    def call_cap(self) -> int:
        """Returns the most proposals the run may request."""
        return self.max_calls or 4 * self.budget + self.concurrency


@dataclass(slots=True)
class Summary:
    """How a run ended, with its population and counters."""

    status: str  # finished | call_cap | llm_failed | interrupted | failed
    message: str
    counters: Counters
    population: Population
    seconds: float


Record = Callable[[dict[str, Any]], None]
Progress = Callable[["Loop"], None]


async def run(
    config: SearchConfig,
    lab: Lab,
    proposer: Proposer,
    evaluator: Evaluator,
    record: Record,
    progress: Progress | None = None,
    history: History | None = None,
) -> Summary:
    """Runs a search to its budget (or a stop condition) and returns its Summary."""
    loop = Loop(config, lab, proposer, evaluator, record, progress, history or History())
    return await loop.run()


class Loop:
    """The state of one run; every method runs on the event loop's thread.

    Progress displays read `counters`, `population`, `in_flight`,
    `waiting_for_evaluation`, `config` and `started`; nothing else is public.
    """

    def __init__(
        self,
        config: SearchConfig,
        lab: Lab,
        proposer: Proposer,
        evaluator: Evaluator,
        record: Record,
        progress: Progress | None,
        history: History,
    ) -> None:
        self.config, self.lab, self.proposer = config, lab, proposer
        self.evaluator, self.record, self.history = evaluator, record, history
        self.progress = progress or (lambda _: None)
        self.population = Population(config.islands, migration_interval=config.migration_interval)
        self.counters = Counters()
        self.started = time.monotonic()
        self.next_index = 0
        self.applied = 0
        self.inflight: dict[asyncio.Task[Reply], int] = {}
        self.meta: dict[int, Outcome] = {}
        self.queue: dict[int, Candidate] = {}
        self.ready: dict[int, Outcome] = {}
        self.evaluating: tuple[asyncio.Future[list[Score]], list[int], list[Candidate]] | None = (
            None
        )
        self.stop: tuple[str, str] | None = None
        self.errors_in_a_row = 0
        self.last_error = ""
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="minact-eval")
        self.slots = asyncio.Semaphore(config.concurrency)

    # the loop ---------------------------------------------------------------------------

    async def run(self) -> Summary:
        try:
            await self._seed()
            self._issue()
            self._apply()  # outcomes replayed from the log apply at once
            while self.inflight or self.evaluating or self.queue:
                self._start_evaluation()
                waiting: list[asyncio.Future[Any]] = list(self.inflight)
                if self.evaluating is not None:
                    waiting.append(self.evaluating[0])
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for fut in done:
                    if self.evaluating is not None and fut is self.evaluating[0]:
                        self._evaluated()
                    else:
                        self._replied(fut)
                self._apply()
            return self.summary()
        except asyncio.CancelledError:
            # Stop the work in flight, then let the cancellation go on: whoever cancelled the
            # run decides what it means (minact.jobs.evolve turns Ctrl-C into a summary).
            self._cancel()
            raise
        except EvaluationError as e:
            self._cancel()
            return self.summary(("failed", f"the evaluator failed: {e}"))
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def _seed(self) -> None:
        if self.history.seeds:
            scores = self.history.seeds
        else:
            ok = seeds_lib.seed_candidates(self.config.seed_names)
            loop = asyncio.get_running_loop()
            scores = await loop.run_in_executor(self.pool, self.evaluator.score, ok)
            wanted = {c.code_hash for c in ok}
            scores = [s for s in scores if s.code_hash in wanted]
            for s in scores:
                self.record({"event": "seed", "score": s.to_dict()})
        for s in scores:
            self.population.add(Member(s, -1, None, "seed"))
        if not self.population.ranked():
            raise EvaluationError("every built-in seed failed; the lab or the evaluator is broken")
        self.progress(self)

    def _cancel(self) -> None:
        """Cancels the requests in flight and interrupts the evaluation in progress."""
        for task in self.inflight:
            task.cancel()
        # The batch being scored ends in the pool's thread, with the interruption's error:
        # nobody waits for it any more, and a cancelled future drops it.
        if self.evaluating is not None:
            self.evaluating[0].cancel()
        # Also while the seeds are scored: the worker thread must not start a new worker.
        self.evaluator.interrupt()

    # proposals --------------------------------------------------------------------------

    def _can_issue(self) -> bool:
        pending = self.next_index - self.applied
        return (
            self.stop is None
            and pending < self.config.lookahead
            and self.counters.evaluated + pending < self.config.budget
        )

    def _issue(self) -> None:
        while self._can_issue():
            k = self.next_index
            recorded = self.history.outcomes.get(k)
            if recorded is None and k not in self.history.replies:
                if self.counters.calls >= self.config.call_cap:
                    self.stop = ("call_cap", f"reached the cap of {self.config.call_cap} proposals")
                    return
                self.counters.calls += 1
            self.next_index += 1
            self.counters.proposals += 1
            if recorded is not None:
                self.ready[k] = recorded
                continue
            self._propose(k)

    def _propose(self, k: int) -> None:
        rng = random.Random(f"{self.config.seed}:{k}")
        island = k % self.config.islands
        parent, other = self.population.select(island, rng)
        meta = Outcome(
            k,
            "",
            island=island,
            parent=parent.score.code_hash,
            other=other.score.code_hash if other else None,
            origin=self.proposer.kind,
        )
        self.meta[k] = meta
        messages: list[dict[str, str]] = []
        if self.proposer.kind != "offline":
            exclude = {h for h in (parent.score.code_hash, parent.score.behaviour_hash) if h}
            top = self.population.top(3, exclude)
            exclude |= {h for m in top for h in (m.score.code_hash, m.score.behaviour_hash) if h}
            messages = build_messages(
                self.lab,
                parent,
                top,
                self.population.diverse(2, rng, exclude),
                self.population.failures(3),
                self.config.prompt_chars,
            )
        request = ProposalRequest(k, parent, other, messages, rng)
        self.record(
            {
                "event": "proposal",
                "index": k,
                "island": island,
                "parent": meta.parent,
                "other": meta.other,
                "proposer": self.proposer.kind,
            }
        )
        if k in self.history.replies:
            task = asyncio.ensure_future(_immediate(self.history.replies[k]))
        else:
            task = asyncio.ensure_future(self._limited(request))
        self.inflight[task] = k

    async def _limited(self, request: ProposalRequest) -> Reply:
        # When a request is sent does not change what it asks: it was built already.
        async with self.slots:
            return await self.proposer.propose(request)

    def _replied(self, task: asyncio.Task[Reply]) -> None:
        k = self.inflight.pop(task)
        meta = self.meta[k]
        try:
            reply = task.result()
        except Exception as e:  # a proposer's own fault: counted, and the run goes on
            reply = Reply("", error=f"the proposer failed: {type(e).__name__}: {e}")
        if k not in self.history.replies:
            self.record({"event": "reply", "index": k, "reply": reply.to_dict()})
        self.counters.add_reply(reply)
        meta.note = reply.note
        if reply.error is not None:
            self.ready[k] = replace(meta, kind="llm_error", reason=reply.error)
            return
        parent = self.population.knows_code(meta.parent)
        parsed = parse_reply(reply.text, parent.score.source if parent else "")
        if isinstance(parsed, ParseFailure):
            self.ready[k] = replace(
                meta, kind="parse_failure", reason=parsed.reason, source=reply.text[:2000]
            )
            return
        cand = validate(parsed, name=f"c{k}", parent=meta.parent)
        if not isinstance(cand, Candidate):
            self.ready[k] = replace(meta, kind="rejected", reason=cand.reason, source=parsed[:2000])
            return
        known = self.population.knows_code(cand.code_hash)
        if known is not None:
            reason = f"same code as {known.score.name}"
            self.ready[k] = replace(meta, kind="duplicate", reason=reason, source=cand.source)
            return
        meta.source = cand.source
        self.queue[k] = cand

    # evaluation -------------------------------------------------------------------------

    def _start_evaluation(self) -> None:
        if self.evaluating is not None or not self.queue:
            return
        size = max(1, self.evaluator.preferred_batch())
        indices = sorted(self.queue)[:size]  # lowest first: they block the application
        cands = [self.queue.pop(k) for k in indices]
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, self.evaluator.score, cands)
        self.evaluating = (future, indices, cands)

    def _evaluated(self) -> None:
        assert self.evaluating is not None
        future, indices, cands = self.evaluating
        self.evaluating = None
        by_code = {s.code_hash: s for s in future.result()}  # EvaluationError propagates
        for k, cand in zip(indices, cands, strict=True):
            self.ready[k] = replace(self.meta[k], kind="scored", score=by_code[cand.code_hash])

    # application, in proposal order ----------------------------------------------------

    def _apply(self) -> None:
        while self.applied in self.ready:
            o = self.ready.pop(self.applied)
            if o.kind == "scored":
                o = self._classify(o)
            self._count(o)
            if not o.logged:
                self.record(to_event(o))
                collision = collision_event(o)
                if collision is not None:
                    self.record(collision)
            self.population.outcome_applied()
            self.applied += 1
            self.meta.pop(o.index, None)
            self._issue()
            self.progress(self)

    def _classify(self, o: Outcome) -> Outcome:
        s = o.score
        assert s is not None
        dup = self.population.knows_code(s.code_hash) or self.population.knows_behaviour(
            s.behaviour_hash
        )
        if dup is not None:
            return replace(o, kind="duplicate", reason=f"same behaviour as {dup.score.name}")
        return replace(o, kind="evaluated")

    def _count(self, o: Outcome) -> None:
        self.counters.add_outcome(o)
        if o.kind == "evaluated" and o.score is not None:
            self.population.add(Member(o.score, o.index, o.island, o.origin, o.note))
        elif o.kind in ("parse_failure", "rejected"):
            self.population.note_failure(o.source, o.kind, o.reason)
        if o.kind == "llm_error":
            self.errors_in_a_row += 1
            self.last_error = o.reason
            if self.errors_in_a_row >= self.config.max_consecutive_errors and self.stop is None:
                self.stop = (
                    "llm_failed",
                    f"the LLM failed {self.errors_in_a_row} times in a row; last error: {o.reason}",
                )
        else:
            self.errors_in_a_row = 0

    # the end --------------------------------------------------------------------------

    def summary(self, forced: tuple[str, str] | None = None) -> Summary:
        """Returns how the run stands: finished, stopped by a cap, or `forced` (status, message)."""
        c = self.counters
        if forced is not None:
            status, message = forced
        elif c.evaluated >= self.config.budget:
            status, message = "finished", f"evaluated {c.evaluated} candidates"
        elif self.stop is not None:
            status, message = self.stop
            message += (
                f"; evaluated {c.evaluated} of {self.config.budget} "
                f"({c.parse_failures} unparsable, {c.rejected} rejected, "
                f"{c.duplicates} duplicates, {c.llm_errors} LLM errors)"
            )
        else:
            status, message = "finished", f"evaluated {c.evaluated} candidates"
        return Summary(status, message, c, self.population, time.monotonic() - self.started)

    # read-only views for progress displays ---------------------------------------------

    @property
    def in_flight(self) -> int:
        """Returns the proposals awaiting a reply."""
        return len(self.inflight)

    @property
    def waiting_for_evaluation(self) -> int:
        """Returns the candidates queued or being evaluated."""
        return len(self.queue) + (len(self.evaluating[1]) if self.evaluating else 0)


async def _immediate(reply: Reply) -> Reply:
    return reply
