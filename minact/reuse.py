"""Which results each candidate gets: its own, verified shared ones, or new training.

The rules, so that every number minact reports comes from the candidate's own code:

1. Results live under a key: the behaviour hash, shared by codes that compute the same
   f and f' at the probe points, or a candidate's code hash after a collision. Each entry
   names the code that produced it (its producer) and carries its trace: pre-activations
   the activation received in that training (minact.sandbox.trace).
2. A candidate uses an entry another code produced only after the worker verified that it
   computes the producer's f and f' at the entry's trace and at a dense check placed by the
   cache's salt (minact.sandbox.verify); the verdict is cached per (code, producer, task),
   so a verdict made on one tasks file is not taken for the tasks of another, whose
   training reached other inputs. A mismatch is a collision: the candidate's key
   becomes its code hash and it trains every task there, so the shared entry, whoever
   wrote it first, is never overwritten by, nor served to, code that trains differently.
   A failed result (non-finite losses, an error) is never served to another code: that
   code trains every task under its code hash in the same way, without a collision. So
   does a code whose verification the worker could not finish on a busy machine or under
   a stop from outside: that is no verdict, and a later call verifies it again.
3. Timeouts and crashes are stored under the code hash only (never shared), with the
   conditions they happened under; a later call retries them once, and again whenever the
   lab's timeout is raised or the device changes.
4. What is missing is trained in the worker, one representative code per key; the others
   with that key are verified against it afterwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from minact.cache import FitnessCache, Stored
from minact.candidate import Candidate, Hash
from minact.errors import EvaluationError
from minact.lab.task import Lab, Task
from minact.sandbox.client import TrainItem, VerifyItem
from minact.sandbox.cores import cpu_cores
from minact.sandbox.process import from_outside, load_average
from minact.sandbox.workers import Workers
from minact.score import TRANSIENT, Conditions, TaskResult, failed_again

__all__ = ["Resolved", "Results", "failure_conditions", "noted"]

Progress = Callable[[str, int, int], None]
# (code, producer) -> {task digest: the producer's trace on it}, awaiting verification
ToVerify = dict[tuple[Hash, Hash], dict[str, tuple[float, ...]]]


@dataclass(slots=True)
class Resolved:
    """One candidate's results on the lab's tasks and where they come from.

    Attributes:
        key: where its results live (behaviour hash, or code hash after a collision).
        results: by task digest.
        collision: the behaviour hash it shared with code it does not reproduce, if any.
        fresh: the digests of the tasks it trained in this call (the others came from the
            cache, or from equal code it was verified against).
    """

    candidate: Candidate
    key: Hash
    results: dict[str, TaskResult] = field(default_factory=dict)
    collision: Hash | None = None
    fresh: set[str] = field(default_factory=set)

    @property
    def code(self) -> Hash:
        """Returns the candidate's code hash."""
        return self.candidate.code_hash

    @property
    def trained(self) -> bool:
        """Returns whether it trained anything in this call."""
        return bool(self.fresh)


class Results:
    """Gathers candidates' per-task results from the cache and, for the rest, the worker."""

    def __init__(
        self,
        lab: Lab,
        cache: FitnessCache,
        worker: Workers,
        batch_size: Callable[[], int],
        device: Callable[[], str],
        progress: Progress,
        verify_deadline: float,
    ) -> None:
        self.lab = lab
        self.cache = cache
        self.worker = worker
        self._batch_size = batch_size
        self._device = device
        self._progress = progress
        self._verify_deadline = verify_deadline
        self._lab = lab.digest()
        # Places the dense check of verification where no source can know it.
        self._verify_seed = cache.seed(f"verify:{self._lab}")
        # Verifications the worker could not finish under conditions that explain it (a busy
        # machine, a worker stopped or killed from outside): no verdict, kept for this call
        # only, so a later call verifies again.
        self._unverified: dict[tuple[Hash, Hash, str], str] = {}

    def gather(self, admitted: Sequence[tuple[Candidate, Hash]]) -> dict[Hash, Resolved]:
        """Returns {code hash: Resolved} for admitted (candidate, behaviour hash) pairs."""
        states = {c.code_hash: Resolved(c, bh) for c, bh in admitted}
        for _ in range(4 * len(states) + 4):  # each round trains, verifies or collides
            to_verify: ToVerify = {}
            to_train: dict[Hash, tuple[Resolved, list[Task]]] = {}
            for st in states.values():
                missing = self._scan(st, to_verify)
                if missing and st.key not in to_train:
                    to_train[st.key] = (st, missing)
            if to_verify:
                self._verify(states, to_verify)
            elif to_train:
                self._train(list(to_train.values()))
            else:
                return states
        raise EvaluationError("evaluation did not settle (this is a bug in minact)")

    # finding what is there ----------------------------------------------------------

    def _scan(self, st: Resolved, to_verify: ToVerify) -> list[Task]:
        """Fills st.results from the cache; returns the tasks still to train.

        Entries of other producers that still need verifying add their traces to
        `to_verify` and are left out until verified.
        """
        missing: list[Task] = []
        key = st.key
        for task in self.lab.tasks:
            d = task.digest()
            if d in st.results:
                continue
            stored = self.cache.get_result(st.key, d, self._lab, task.settings.seeds)
            if stored is not None and stored.result.status not in TRANSIENT:
                if self._usable(st, stored, d, to_verify):
                    st.results[d] = stored.result
                    if self.cache.get_transient(st.code, d, self._lab) is not None:
                        self.cache.drop_transient(st.code, d, self._lab)  # superseded
                if st.key != key:  # it collided: look again, under its own key
                    return self._scan(st, to_verify)
                continue
            transient = self.cache.get_transient(st.code, d, self._lab)
            if transient is not None and transient[1].final(self.lab.timeout, self._device()):
                st.results[d] = _noted(*transient)
            else:
                missing.append(task)
        return missing

    def _usable(self, st: Resolved, stored: Stored, d: str, to_verify: ToVerify) -> bool:
        """Returns whether st may use `stored` (on task d) now; queues its verification if
        it is due."""
        producer = stored.producer
        if producer == st.code or st.key == st.code:
            return True
        if producer is None:
            self._collide(st)
            return False
        if stored.result.status != "ok":
            # A failure is the producer's own: verification samples the inputs its training
            # reached, and code that fails only at exact pre-activations training hits (a
            # spike at one float) matches at every sampled point. Served to other code, that
            # failure would be final for functions that train well; they train themselves.
            self._collide(st, mismatch=False)
            return False
        if stored.result.traced < len(stored.result.ood):
            # Its trace holds seed 0's inputs only (an older minact's): verification could
            # not see where the other seeds' training went. Nothing says they differ.
            self._collide(st, mismatch=False)
            return False
        if (st.code, producer, d) in self._unverified:
            self._collide(st, mismatch=False)  # trains itself; nothing says they differ
            return False
        verdict = self.cache.get_verdict(st.code, producer, self._lab, d)
        if verdict is None:
            to_verify.setdefault((st.code, producer), {})[d] = stored.result.trace
            return False
        if not verdict[0]:
            self._collide(st)
            return False
        return True

    def _collide(self, st: Resolved, *, mismatch: bool = True) -> None:
        """Moves st to its own key: results under its code hash, trained by itself.

        `mismatch`: verification found that it computes something else (a collision, named
        in its Score; why is kept with the verdict in the cache); else it moves only because
        the shared entry is another code's failure.
        """
        if st.key == st.code:
            return
        # What it trained itself (and its own transient failures) stays its own.
        kept = {
            d: r
            for d, r in st.results.items()
            if r.status in TRANSIENT or self._producer(st.key, d) == st.code
        }
        st.collision = st.key if mismatch else None
        st.key, st.results = st.code, kept
        for d, r in kept.items():
            if r.status not in TRANSIENT:
                self.cache.put_result(st.key, d, self._lab, r, st.code)

    def _producer(self, key: Hash, d: str) -> Hash | None:
        stored = self.cache.get_result(key, d, self._lab)
        return stored.producer if stored is not None else None

    # verifying ----------------------------------------------------------------------

    def _verify(self, states: dict[Hash, Resolved], todo: ToVerify) -> None:
        items: list[VerifyItem] = []
        pairs: list[tuple[Hash, Hash, list[str]]] = []
        for (code, producer), traces in todo.items():
            reference = self.cache.get_source(producer)
            points = tuple(v for trace in traces.values() for v in trace)
            if reference is None or not points:
                why = "no source" if reference is None else "no trace"
                self.cache.put_verdict(
                    code, producer, self._lab, traces, False, f"{why} to verify against"
                )
                continue
            source = states[code].candidate.source
            items.append(VerifyItem(source, reference, points, self._verify_seed))
            pairs.append((code, producer, list(traces)))
        self._progress("verify", 0, len(items))
        for (code, producer, tasks), (match, reason) in zip(
            pairs, self.worker.verify(items, self._verify_deadline), strict=True
        ):
            if not match and _not_a_verdict(reason):
                self._unverified.update({(code, producer, d): reason for d in tasks})
            else:
                self.cache.put_verdict(code, producer, self._lab, tasks, match, reason)
        self._progress("verify", len(items), len(items))

    # training -----------------------------------------------------------------------

    def _train(self, units: list[tuple[Resolved, list[Task]]]) -> None:
        if not self.worker.running:
            self.worker.start()
        size = max(1, self._batch_size())
        per_task = self.lab.timeout / max(1, len(self.lab.tasks))
        for start in range(0, len(units), size):
            self._progress("train", start, len(units))
            batch = units[start : start + size]
            # A request gets the lab's timeout per candidate's worth of tasks, and never less.
            answers = self.worker.train(
                [TrainItem(st.candidate.source, tuple(tasks)) for st, tasks in batch],
                lambda n: max(n * per_task, self.lab.timeout),
            )
            for (st, tasks), results in zip(batch, answers, strict=True):
                st.fresh.update(task.digest() for task in tasks)
                for task, r in zip(tasks, results, strict=True):
                    st.results[task.digest()] = self._store(st, task.digest(), r)
        self._progress("train", len(units), len(units))

    def _store(self, st: Resolved, d: str, r: TaskResult) -> TaskResult:
        """Caches a fresh result where it belongs; returns it as the Score should show it."""
        previous = self.cache.get_transient(st.code, d, self._lab)
        if r.status in TRANSIENT:
            before = previous[1] if previous is not None else None
            cond = failure_conditions(before, self.lab.timeout, self._device(), r.reason)
            self.cache.put_transient(st.code, d, self._lab, dataclasses.replace(r, trace=()), cond)
            return _noted(r, cond)
        self.cache.put_result(st.key, d, self._lab, r, st.code)
        if previous is not None:
            self.cache.drop_transient(st.code, d, self._lab)
        return r


def failure_conditions(
    previous: Conditions | None, timeout: float, device: str, reason: str
) -> Conditions:
    """Returns the conditions of a timeout or crash with `reason` after `previous` (None:
    the first), with the machine's load now and whether the reason names an outside cause."""
    outside = from_outside(reason)
    return failed_again(previous, timeout, device, load_average(), cpu_cores(), outside)


def _not_a_verdict(reason: str) -> bool:
    """Returns whether a failed verification (the worker timed out or failed on it) says
    more about the machine than about the code: stopped or killed from outside, or on a
    machine whose load was above BUSY_LOAD per core."""
    if not reason.startswith(("verification timed out", "verification failed")):
        return False  # the worker answered: a mismatch
    return failure_conditions(None, 0.0, "", reason).clean == 0


def noted(reason: str, cond: Conditions) -> str:
    """Returns a transient failure's reason with the conditions it happened under."""
    if cond.final(cond.timeout, cond.device):
        when = "final after a retry" if cond.attempts == 2 else f"final after {cond.attempts} calls"
    elif cond.clean < cond.attempts:  # this failure, or an earlier one, is not a verdict
        when = "a later call retries it: the machine was busy or it was stopped from outside"
    else:
        when = "a later call retries it"
    return f"{reason} ({cond.describe()}; {when})"


def _noted(r: TaskResult, cond: Conditions) -> TaskResult:
    return dataclasses.replace(r, reason=noted(r.reason, cond))
