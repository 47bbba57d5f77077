"""The search loop: one asyncio loop that proposes, validates, evaluates and selects.

Up to `concurrency` LLM requests stream at once; validated candidates queue for the
evaluator (one thread, batches), so evaluation and replies overlap. Outcomes are applied
strictly in proposal order, and proposal k is built (parents, prompt) right after outcome
k - window has been applied, with its own generator seeded by (seed, k); the window (2 x
concurrency) lets requests stream while earlier replies are evaluated. With an LLM, the
first `window` proposals go out while the built-ins are scored, built from their code
alone (search.opening; those drawn for the offline mutator wait for the scores). So what a
proposal sees never depends on timing: a replayed or resumed run makes the same choices, and
one slow reply holds back the application of later proposals (not their work).

A proposal is a conversation (search.conversation): a reply that does not parse, is
rejected, copies a function known when the proposal was built, or fails a fixable check,
is answered with the reason up to `follow_ups` times while follow-ups pay
(search.followups). The call cap counts every exchange; a proposal is granted its
exchanges when built and gives back the unused ones when applied.

`--budget` counts distinct candidates evaluated, cache hits and screened ones included (not
failed or duplicate replies); a resume scores again the built-ins its log lacks (from the cache).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from minact import seeds as seeds_lib
from minact.candidate import Candidate
from minact.errors import EvaluationError
from minact.lab.task import Lab
from minact.outcome import Counters, Outcome, Reply, collision_event, proposal_event, to_event
from minact.runs.history import History
from minact.score import Score
from minact.search import novelty
from minact.search.cascade import Screen
from minact.search.config import Evaluator, SearchConfig
from minact.search.conversation import Conversation, open_conversation, sampling_seed
from minact.search.followups import FollowUpRule
from minact.search.opening import Openings
from minact.search.population import Member, Population
from minact.search.proposers import ProposalRequest, Proposer, replay_end
from minact.search.seeding import score_seeds
from minact.search.summary import Stop, Summary, summarise

__all__ = ["Counters", "Evaluator", "History", "Loop", "SearchConfig", "Summary", "run"]

Record = Callable[[dict[str, Any]], None]
Progress = Callable[["Loop"], None]
Batch = tuple[asyncio.Future[list[Score]], list[int], list[Candidate]]  # scores, indices, code


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

    Progress displays read `counters`, `population`, `in_flight`, `waiting_for_evaluation`,
    `seeding`, `from_log`, `config` and `started`; nothing else is public.
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
        screen: Screen | None = None,  # the evaluation cascade, if the lab sets one
    ) -> None:
        self.config, self.lab, self.proposer = config, lab, proposer
        self.screen, self.evaluator = screen or Screen(evaluator), evaluator
        self.record, self.history = record, history
        self.progress = progress or (lambda _: None)
        self.population = Population(config.islands, migration_interval=config.migration_interval)
        self.counters = Counters()
        self.known = novelty.Known()  # grows with the population, in the same order
        self.started = time.monotonic()
        self.next_index = self.applied = 0  # proposals issued; outcomes applied, in order
        self.inflight: dict[asyncio.Task[Reply], int] = {}
        self.meta: dict[int, Outcome] = {}
        self.ready: dict[int, Outcome] = {}  # outcomes waiting for their turn to apply
        self.talks: dict[int, Conversation] = {}
        self.queue: dict[int, Candidate] = {}  # validated, waiting for the evaluator
        self.evaluating: Batch | None = None
        self.seeding: tuple[int, int] | None = None  # built-ins scored, of how many
        self.stop: Stop | None = None
        self.errors_in_a_row = 0  # LLM errors in a row, among the outcomes applied
        self.granted: dict[int, int] = {}  # exchanges granted to each pending proposal
        self.committed = 0  # exchanges used by applied proposals + granted to pending ones
        self.rule = FollowUpRule(config.follow_ups if proposer.kind != "offline" else 0, config)
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="minact-eval")
        self.slots = asyncio.Semaphore(config.concurrency)
        self.builtins = seeds_lib.seed_candidates(config.seed_names)
        opening = config.lookahead if proposer.kind != "offline" else 0  # sent while seeding
        self.openings = Openings(self.builtins, opening, seed=config.seed, models=config.models,
                                 weights=config.model_weights)  # fmt: skip
        self.seeded = False  # the built-ins' scores have joined the population
        self.deferred: list[int] = []  # the mutator's opening proposals, made once seeded
        self.seed_members = self.from_log = 0  # built-ins first in `known`; outcomes replayed

    async def run(self) -> Summary:
        seeding = asyncio.ensure_future(self._seed())
        try:
            self._issue()  # the opening proposals: they need no scores
            while not self.seeded or self.inflight or self.evaluating or self.queue:
                if self.seeded:  # the evaluator scores the built-ins first
                    self._start_evaluation()
                waiting: list[asyncio.Future[Any]] = list(self.inflight)
                if not seeding.done():
                    waiting.append(seeding)
                if self.evaluating is not None:
                    waiting.append(self.evaluating[0])
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: self.inflight.get(f, -1)):  # replies by index
                    if fut is seeding:
                        seeding.result()  # every seed failed: an EvaluationError
                        self._issue()
                    elif self.evaluating is not None and fut is self.evaluating[0]:
                        self._evaluated()
                    else:
                        self._replied(fut)
                self._apply()  # outcomes replayed from the log apply at once
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
            seeding.cancel()  # when the run ends before the seeds do
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def _seed(self) -> None:
        scores = self.history.seeds
        logged = {s.code_hash for s in scores}
        if not logged >= {c.code_hash for c in self.builtins}:  # none, or killed mid-log:
            scores = await score_seeds(self.evaluator, self.builtins, self.pool, self._seeding)
            for s in scores:
                if s.code_hash not in logged:
                    self.record({"event": "seed", "score": s.to_dict()})
        for s in scores:
            self._join(Member(s, -1, None, "seed"))
        if not self.population.ranked():
            raise EvaluationError("every built-in seed failed; the lab or the evaluator is broken")
        self.seeded, self.seed_members = True, self.known.size
        for k in range(self.openings.count):  # nothing evaluated them yet: the seeds' bar
            self.screen.note(k, self.population)
        for k in self.deferred:  # from the built-ins' scores, before any outcome applies
            self._propose(k)
        if 0 not in self.history.outcomes:  # a resume's first line: after its log applies
            self.progress(self)

    def _seeding(self, done: int, total: int) -> None:
        self.seeding = (done, total)  # shown until done == total
        self.progress(self)

    def _cancel(self) -> None:
        """Cancels the requests in flight and interrupts the evaluation in progress."""
        for task in self.inflight:
            task.cancel()
        if self.evaluating is not None:  # its batch ends in the pool's thread; nobody waits
            self.evaluating[0].cancel()
        # Also while the seeds are scored: the worker thread must not start a new worker.
        self.evaluator.interrupt()

    # proposals ------------------------------------------------------------------------

    def _can_issue(self) -> bool:
        pending = self.next_index - self.applied
        return (
            (self.seeded or self.next_index < self.openings.count)
            and self.stop is None
            and pending < self.config.lookahead
            and self.counters.evaluated + pending < self.config.budget
        )

    def _issue(self) -> None:
        while self._can_issue():
            k = self.next_index
            if k not in self.history.outcomes and (end := replay_end(self.proposer, k)):
                self.stop = end  # the proposals before it still end, and are applied
                return
            grant = min(1 + self.rule.grant(k), self.config.call_cap - self.committed)
            if grant < 1:
                if self.next_index == self.applied:  # nothing pending will give calls back
                    self.stop = ("call_cap", f"reached the cap of {self.config.call_cap} calls")
                return
            self.granted[k] = grant
            self.committed += grant
            self.next_index += 1
            self.counters.proposals += 1
            recorded = self.history.outcomes.get(k)
            if recorded is not None:
                self.history.count_exchanges(self.counters, k)  # a resume: the log has them
                self.ready[k] = recorded
                continue
            self._propose(k)

    def _propose(self, k: int) -> None:
        island, c = k % self.config.islands, self.config
        # The mutator's opening proposals are built from the population once the seeds
        # join: the built-ins alone, whether k is issued before they join or as they do.
        if self.openings.waits(k) and not self.seeded:
            self.deferred.append(k)
            return
        if self.openings.covers(k):  # from the built-ins' code; its bar: once they join
            request, opening = self.openings.request(
                k, self.lab, seed=c.seed, prompt_chars=c.prompt_chars, models=c.models,
                weights=c.model_weights)  # fmt: skip
            known, first = self.openings.known.size, {"opening": True}
        else:
            request, opening = open_conversation(
                k, self.population, self.lab, seed=c.seed, island=island,
                prompt_chars=c.prompt_chars, llm=self.proposer.kind != "offline",
                models=c.models, weights=c.model_weights)  # fmt: skip
            self.screen.note(k, self.population)  # its bar: from what it is built on
            known, first = self.known.size, {}
        request = replace(request, sampling_seed=sampling_seed(c.seed, k, 0))
        other = request.other.score.code_hash if request.other else None
        meta = Outcome(k, "", island=island, parent=request.parent.score.code_hash, other=other,
                       origin=self.proposer.kind)  # fmt: skip
        self.meta[k] = meta
        self.counters.add_prompt_cuts(opening.cut)
        if k not in self.history.proposed:  # a resume logged it already
            self.record(proposal_event(meta, {**first, **opening.to_event()}))
        talk = Conversation(k, request, self.granted[k], known, c.seed, c.context_chars, c.repair)
        self.talks[k] = talk
        self._ask(talk)

    def _ask(self, talk: Conversation) -> None:
        recorded = self.history.turns.get((talk.index, talk.turn))
        reply = asyncio.sleep(0, recorded) if recorded is not None else self._limited(talk.request)
        self.inflight[asyncio.ensure_future(reply)] = talk.index

    async def _limited(self, request: ProposalRequest) -> Reply:
        # When a request is sent does not change what it asks: it was built already.
        async with self.slots:
            return await self.proposer.propose(request)

    def _replied(self, task: asyncio.Task[Reply]) -> None:
        k = self.inflight.pop(task)
        talk, meta = self.talks[k], self.meta[k]
        if task.cancelled():  # by _count, once the LLM failed: not a call, applied in turn
            why = f"not sent or cut: {self.stop[1] if self.stop else 'the run stopped'}"
            return self._done(replace(meta, kind="llm_error", reason=why))
        try:
            reply = task.result()
        except Exception as e:  # a proposer's own fault: counted, and the run goes on
            reply = Reply("", error=f"the proposer failed: {type(e).__name__}: {e}")
        if (k, talk.turn) not in self.history.turns:
            event = {"event": "reply", "index": k, "reply": reply.to_dict()}
            self.record({**event, "turn": talk.turn} if talk.turn else event)
        self.counters.add_reply(reply)
        meta.note, meta.model, meta.turns = reply.note, reply.model, talk.turn + 1
        talk.said = reply.text
        if reply.error is not None:
            self._done(replace(meta, kind="llm_error", reason=reply.error))
            return
        index = self.openings.known if self.openings.covers(k) else self.known
        verdict = talk.verdict(reply.text, index, finish=reply.note.removeprefix("llm finish="))
        meta.repairs = talk.repairs
        if isinstance(verdict, Candidate):
            meta.source = verdict.source
            self.queue[k] = verdict
        else:
            self._settle(talk, verdict)

    def _settle(self, talk: Conversation, verdict: novelty.Verdict) -> None:
        """Answers a reply that gave nothing new, or ends the proposal with its verdict."""
        k = talk.index
        if not talk.can_follow_up():
            m, v = self.meta[k], verdict
            return self._done(replace(m, kind=v.kind, reason=v.reason, source=v.source))
        if (k, talk.turn) not in self.history.follow_ups:  # a resume logged it already
            self.record({"event": "follow_up", "index": k, "turn": talk.turn, "kind": verdict.kind,
                         "reason": verdict.reason, "source": verdict.source})  # fmt: skip
        self.counters.add_follow_up(verdict.kind)
        talk.follow_up(verdict)
        self._ask(talk)

    def _done(self, o: Outcome) -> None:
        self.talks.pop(o.index, None)
        self.ready[o.index] = o

    # evaluation -------------------------------------------------------------------------

    def _start_evaluation(self) -> None:
        if self.evaluating is not None or not self.queue:
            return
        size = max(1, self.evaluator.preferred_batch())
        indices = sorted(self.queue)[:size]  # lowest first: they block the application
        cands = [self.queue.pop(k) for k in indices]
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, self.screen.score, cands, indices)
        self.evaluating = (future, indices, cands)

    def _evaluated(self) -> None:
        assert self.evaluating is not None
        (future, indices, cands), self.evaluating = self.evaluating, None
        by_code = {s.code_hash: s for s in future.result()}  # EvaluationError propagates
        for k, cand in zip(indices, cands, strict=True):
            score, talk = by_code[cand.code_hash], self.talks[k]
            # Probed now, it may have failed a check, or behave as one the proposal was shown
            # (an opening proposal: the built-ins, scored before anything else).
            before = self.seed_members if self.openings.covers(k) else talk.known
            verdict = novelty.failed(score) or self.known.same_behaviour(
                score.behaviour_hash, cand.source, before
            )
            if verdict is not None and talk.can_follow_up():
                self._settle(talk, verdict)
            else:
                self._done(replace(self.meta[k], kind="scored", score=score))

    # application, in proposal order ----------------------------------------------------

    def _apply(self) -> None:
        before = self.applied
        while self.seeded and self.applied in self.ready:
            o = self.ready.pop(self.applied)
            if o.kind == "scored":
                o = self._classify(o)
            self._count(o)
            self.from_log += o.logged and o.kind == "evaluated"  # a resume's, read from its log
            self.committed -= self.granted.pop(o.index) - o.turns  # give back what it left
            if not o.logged:
                self.record(to_event(o))
                if (collision := collision_event(o)) is not None:
                    self.record(collision)
            self.population.outcome_applied()
            self.applied += 1
            self.meta.pop(o.index, None)
            self._issue()
        if self.applied > before:  # once per burst: a resume's whole log is one step
            self.progress(self)

    def _classify(self, o: Outcome) -> Outcome:
        assert o.score is not None
        if (dup := self.population.knows(o.score)) is not None:
            return replace(o, kind="duplicate", reason=f"same behaviour as {dup.score.name}")
        return replace(o, kind="evaluated")

    def _join(self, m: Member) -> None:
        self.population.add(m)
        self.known.add(m)

    def _count(self, o: Outcome) -> None:
        self.counters.add_outcome(o)
        self.rule.note(o)
        if o.kind == "evaluated" and o.score is not None:
            self._join(Member(o.score, o.index, o.island, o.origin, o.note))
        elif o.kind in ("parse_failure", "rejected"):
            self.population.note_failure(o.source, o.kind, o.reason)
        fresh = o.kind == "llm_error" and not o.logged  # a resume's old ones: it asks anew
        self.errors_in_a_row = self.errors_in_a_row + 1 if fresh else 0
        if self.errors_in_a_row >= self.config.max_consecutive_errors and self.stop is None:
            n = self.errors_in_a_row
            self.stop = ("llm_failed", f"the LLM failed {n} times in a row; last error: {o.reason}")
            # Requests in flight wait on a failing server: cancelled (not those replayed).
            for task, k in self.inflight.items():
                if (k, self.talks[k].turn) not in self.history.turns:
                    task.cancel()

    def summary(self, forced: Stop | None = None) -> Summary:
        """Returns how the run stands: finished, stopped by a cap, or `forced` (status, message)."""
        c, seconds = self.counters, time.monotonic() - self.started
        return summarise(c, self.population, self.config.budget, self.stop, seconds, forced)

    # read-only views for progress displays ---------------------------------------------

    @property
    def in_flight(self) -> int:
        """Returns the proposals awaiting a reply."""
        return len(self.inflight)

    @property
    def waiting_for_evaluation(self) -> int:
        """Returns the candidates queued or being evaluated."""
        return len(self.queue) + (len(self.evaluating[1]) if self.evaluating else 0)
