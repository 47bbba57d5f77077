"""The evaluator: cache first, then the worker process for whatever is missing.

For a list of candidates it (1) answers admission from the cache by code hash, asks
the worker to fingerprint the rest, (2) answers each (behaviour, task) pair from the
cache, groups the missing pairs by behaviour (so `F.silu` and `x * torch.sigmoid(x)`
train once) and sends them to the worker in batches, (3) folds per-task losses into a
fitness against the lab's reference activation, which is evaluated the same way.

Isolation, and its limits. Candidate code never runs in this process: it runs in a
separate interpreter (process.py) with an environment built from an allow-list (no
API keys), a wall-clock deadline per batch, an address-space cap on CPU, and a
private working directory inside the cache folder. After a timeout, crash or broken
reply the worker is killed and restarted, and the batch is retried one candidate at a
time so that only the culprit fails. Together with static validation (validate.py)
this stops accidents and the obvious escapes of LLM-written code. It is *not* a
container: the worker runs as the same user, with the same file system and network,
so a candidate that defeated validation could read or write what that user can. Run
untrusted models' code on a shared host at your own risk.

This module does not import torch; the worker does all tensor work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from minact import seeds
from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash
from minact.curves import GRID, Curve, parse_curve
from minact.errors import EvaluationError
from minact.fitness import aggregate, first_failure
from minact.lab.task import Lab, Task
from minact.sandbox.client import TrainItem, WorkerClient, WorkerSettings
from minact.score import Admission, Score, TaskResult

__all__ = [
    "EVALUATOR_VERSION",
    "Evaluator",
    "EvaluatorConfig",
    "Progress",
]

# Part of every cache key: bump it whenever the sandbox (admission, trainer, worker) changes
# the numbers a candidate gets, so nothing stale is ever served.
EVALUATOR_VERSION = "1"

ADMIT_CHUNK = 32
ADMIT_SECONDS = 60.0  # per admission chunk; probing one candidate takes milliseconds
CUDA_BATCH = 32  # candidates per batch on CUDA when batch_size is 0

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class EvaluatorConfig:
    """How candidates are evaluated.

    Attributes:
        device: "auto" (CUDA when available), "cpu" or "cuda".
        compile: "auto" (torch.compile on CUDA only), "on" or "off".
        batch_size: candidates trained together in one worker request; 0 picks by device
            (bench/evaluator.py: on CPU one at a time is as fast as any batch and answers
            sooner; on CUDA large batches amortise kernel launches).
        admit_timeout: seconds for the worker to probe one chunk of candidates (0: the lab's
            per-candidate timeout, within 5..60 s; probing takes milliseconds).
        threads: torch threads in the worker (0: torch's default, all cores).
        memory_bytes: address-space cap of a CPU worker (None: half the machine's memory).
    """

    device: str = "auto"
    compile: str = "auto"
    batch_size: int = 0
    admit_timeout: float = 0.0
    threads: int = 0
    memory_bytes: int | None = None

    def worker(self) -> WorkerSettings:
        """Returns the settings of the worker process this configuration asks for."""
        settings = WorkerSettings(self.device, self.compile, self.threads)
        if self.memory_bytes is None:
            return settings
        return WorkerSettings(self.device, self.compile, self.threads, self.memory_bytes)


@dataclass(slots=True)
class _Unit:
    """One behaviour to train on the tasks it still lacks."""

    behaviour: Hash
    source: str
    tasks: list[Task] = field(default_factory=list)


class Evaluator:
    """Scores candidates on a lab through the cache and one worker process."""

    def __init__(
        self,
        lab: Lab,
        cache: FitnessCache,
        config: EvaluatorConfig | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.lab = lab
        self.cache = cache
        self.config = config or EvaluatorConfig()
        self.progress = progress or (lambda stage, done, total: None)
        self._worker = WorkerClient(cache.directory / "worker", self.config.worker())
        self._lab_digest = lab.digest()
        # The loader checks the name; a Lab built in code may still name an unknown one.
        try:
            self.reference = seeds.seed_candidate(lab.reference)
        except KeyError as e:
            raise EvaluationError(f"{lab.path}: reference {e.args[0]}") from None
        self._seed_hashes = {c.code_hash for c in seeds.seed_candidates()}

    def close(self) -> None:
        """Stops the worker process."""
        self._worker.stop()

    def _admit_deadline(self) -> float:
        # At least 5 s, so a tiny training timeout does not turn into failed probes.
        return self.config.admit_timeout or max(5.0, min(ADMIT_SECONDS, self.lab.timeout))

    def preferred_batch(self) -> int:
        """Returns how many candidates one `score` call should bring for full batches."""
        if self.config.batch_size:
            return self.config.batch_size
        return CUDA_BATCH if self.info.get("device") == "cuda" else 1

    @property
    def info(self) -> dict[str, Any]:
        """Returns what the worker said of itself (device, torch version...); {} before."""
        return self._worker.info

    def interrupt(self) -> None:
        """Stops evaluation from another thread: kills the worker, later calls fail fast."""
        self._worker.interrupt()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # interrupted or failed: do not wait for a batch in flight
            self._worker.kill()

    def score(self, candidates: Sequence[Candidate]) -> list[Score]:
        """Returns a Score for the reference and each distinct candidate, in input order."""
        unique: dict[Hash, Candidate] = {self.reference.code_hash: self.reference}
        for c in candidates:
            unique.setdefault(c.code_hash, c)
        for c in unique.values():
            self.cache.put_source(c.code_hash, c.source)
        admissions, probed = self._admissions(list(unique.values()))
        ref_adm = admissions[self.reference.code_hash]
        if not ref_adm.ok or ref_adm.behaviour_hash is None:
            raise EvaluationError(f"reference {self.lab.reference} failed: {ref_adm.reason}")
        results, trained = self._results(list(unique.values()), admissions)
        reference = {t.name: results[ref_adm.behaviour_hash][t.digest()] for t in self.lab.tasks}
        bad = first_failure(list(reference.items()))
        if bad is not None:
            raise EvaluationError(f"reference {self.lab.reference} failed on the lab: {bad[1]}")
        return [
            self._score(c, admissions[c.code_hash], results, reference, trained, probed)
            for c in unique.values()
        ]

    # admission -----------------------------------------------------------------------

    def _admissions(self, cands: list[Candidate]) -> tuple[dict[Hash, Admission], set[Hash]]:
        """Returns {code hash: admission} and the code hashes probed now."""
        out: dict[Hash, Admission] = {}
        todo: list[Candidate] = []
        for c in cands:
            cached = self.cache.get_admission(c.code_hash, self._lab_digest)
            if cached is None:
                todo.append(c)
            else:
                out[c.code_hash] = cached
        for start in range(0, len(todo), ADMIT_CHUNK):
            self.progress("admit", start, len(todo))
            chunk = todo[start : start + ADMIT_CHUNK]
            for c, adm in zip(chunk, self._admit_chunk(chunk), strict=True):
                self.cache.put_admission(c.code_hash, self._lab_digest, adm)
                out[c.code_hash] = adm
        self.progress("admit", len(todo), len(todo))
        return out, {c.code_hash for c in todo}

    def _admit_chunk(self, chunk: list[Candidate]) -> list[Admission]:
        deadline = self._admit_deadline()
        sources = [c.source for c in chunk]
        return self._worker.admit(sources, self.lab.probe, self.lab.max_cost, deadline)

    # curves --------------------------------------------------------------------------

    def curves(
        self, candidates: Sequence[Candidate], grid: tuple[float, float, int] = GRID
    ) -> dict[Hash, Curve | None]:
        """Returns f and f' of each candidate on [lo, hi] (None where they cannot be had).

        Answered from the cache first; the worker computes the rest. Never raises for a
        candidate's or the worker's failure: the report simply leaves that curve out.
        """
        out: dict[Hash, Curve | None] = {}
        todo: list[Candidate] = []
        for c in {c.code_hash: c for c in candidates}.values():
            data = self.cache.get_curve(c.code_hash, grid)
            if data is None:
                todo.append(c)
            else:
                out[c.code_hash] = parse_curve(data)
        for start in range(0, len(todo), ADMIT_CHUNK):
            chunk = todo[start : start + ADMIT_CHUNK]
            try:
                answers = self._worker.curves(
                    [c.source for c in chunk], grid, self._admit_deadline()
                )
            except EvaluationError:  # the worker cannot start, or we were interrupted
                answers = [None] * len(chunk)
            for c, data in zip(chunk, answers, strict=True):
                if data is not None:  # a verdict on the code itself: worth keeping
                    self.cache.put_curve(c.code_hash, grid, data)
                out[c.code_hash] = parse_curve(data) if data is not None else None
        return out

    # training ------------------------------------------------------------------------

    def _results(
        self, cands: list[Candidate], admissions: dict[Hash, Admission]
    ) -> tuple[dict[Hash, dict[str, TaskResult]], set[Hash]]:
        """Returns {behaviour: {task digest: result}} and the behaviours trained now."""
        results: dict[Hash, dict[str, TaskResult]] = {}
        units: list[_Unit] = []
        for c in cands:
            adm = admissions[c.code_hash]
            if not adm.ok or adm.behaviour_hash is None or adm.behaviour_hash in results:
                continue
            have = results.setdefault(adm.behaviour_hash, {})
            missing: list[Task] = []
            for task in self.lab.tasks:
                r = self.cache.get_result(adm.behaviour_hash, task.digest(), self._lab_digest)
                if r is None:
                    missing.append(task)
                else:
                    have[task.digest()] = r
            if missing:
                units.append(_Unit(adm.behaviour_hash, c.source, missing))
        if units and not self._worker.running:
            self._worker.start()
        size = self.preferred_batch()
        for start in range(0, len(units), size):
            self.progress("train", start, len(units))
            batch = units[start : start + size]
            for unit, unit_results in zip(batch, self._train_batch(batch), strict=True):
                for task, r in zip(unit.tasks, unit_results, strict=True):
                    self.cache.put_result(unit.behaviour, task.digest(), self._lab_digest, r)
                    results[unit.behaviour][task.digest()] = r
        self.progress("train", len(units), len(units))
        return results, {u.behaviour for u in units}

    def _train_batch(self, batch: list[_Unit]) -> list[list[TaskResult]]:
        per_task = self.lab.timeout / max(1, len(self.lab.tasks))
        # A request gets the lab's timeout per candidate's worth of tasks, and never less.
        return self._worker.train(
            [TrainItem(u.source, tuple(u.tasks)) for u in batch],
            lambda n: max(n * per_task, self.lab.timeout),
        )

    # scores --------------------------------------------------------------------------

    def _score(
        self,
        c: Candidate,
        adm: Admission,
        results: dict[Hash, dict[str, TaskResult]],
        reference: dict[str, TaskResult],
        trained: set[Hash],
        probed: set[Hash],
    ) -> Score:
        """Returns `c`'s Score; `trained` (behaviours trained in this call) is consumed."""
        common: dict[str, Any] = {
            "name": c.name,
            "code_hash": c.code_hash,
            "source": c.source,
            "parent": c.parent,
            "baseline": c.code_hash in self._seed_hashes,
            "cost": adm.cost,
        }
        if not adm.ok or adm.behaviour_hash is None:
            cached = c.code_hash not in probed
            return Score(status=adm.status, reason=adm.reason, cached=cached, **common)
        bh = adm.behaviour_hash
        by_task = [(t.name, results[bh][t.digest()]) for t in self.lab.tasks]
        # A behaviour trained in this call counts as computed for its first candidate only;
        # later ones with the same behaviour were answered without training ("cached").
        cached = bh not in trained
        seconds = 0.0 if cached else sum(r.seconds for _, r in by_task)
        trained.discard(bh)
        bad = first_failure(by_task)
        if bad is not None:
            return Score(
                status=bad[0],
                reason=bad[1],
                behaviour_hash=bh,
                cached=cached,
                seconds=seconds,
                **common,
            )
        agg = aggregate(by_task, reference, self.lab.fitness)
        return Score(
            status="ok",
            behaviour_hash=bh,
            fitness=agg.fitness,
            fitness_spread=agg.fitness_spread,
            mean_ood_mse=agg.mean_ood_mse,
            tasks=agg.tasks,
            cached=cached,
            seconds=seconds,
            **common,
        )
