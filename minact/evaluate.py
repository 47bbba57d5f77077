"""The evaluator: cache first, then the worker process for whatever is missing.

For a list of candidates it (1) answers admission from the cache by code hash and asks
the worker to probe the rest (behaviour hash with probe points drawn from the cache's
secret salt), (2) gathers each candidate's per-task results (reuse.py): from the cache,
sharing results between codes of one behaviour hash (so `F.silu` and
`x * torch.sigmoid(x)` train once) only after verifying that the newcomer computes the same
activation at the pre-activations of that training, else by training in the worker in
batches, (3) folds per-task losses into a fitness against the lab's reference activation,
which is evaluated the same way. Timeouts and crashes, in admission or training, belong to
the code hash and the conditions they happened under, and are retried once by a later call.

Isolation, and its limits. Candidate code never runs in this process: it runs in a
separate interpreter (process.py) with an environment built from an allow-list (no
API keys), a wall-clock deadline per batch, an address-space cap on CPU, and a
private working directory inside the cache folder. After a timeout, crash or broken
reply the worker is killed and restarted, and the batch is retried one candidate at a
time so that only the culprit fails. Together with static validation (validate.py)
this stops accidents and the obvious escapes of LLM-written code. With the Ray backend
(sandbox/ray_workers.py) each Ray actor starts this same worker on its node, under the same
limits (its private directory is a temporary folder there), so candidate code runs neither
in an actor nor here. It is *not* a
container: the worker runs as the same user, with the same file system and network,
so a candidate that defeated validation could read or write what that user can. Run
untrusted models' code on a shared host at your own risk.

This module does not import torch; the worker does all tensor work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from minact import seeds
from minact.cache import FitnessCache
from minact.candidate import Candidate, Hash
from minact.curves import GRID, Curve, parse_curve
from minact.errors import EvaluationError
from minact.fitness import aggregate, first_failure
from minact.lab.task import Lab, Task
from minact.reuse import Resolved, Results, failure_conditions, noted
from minact.sandbox import devices
from minact.sandbox.client import WorkerSettings
from minact.sandbox.pool import local_workers
from minact.sandbox.ray_workers import RayWorkers
from minact.sandbox.workers import Workers
from minact.score import Admission, Conditions, Score

__all__ = [
    "EVALUATOR_VERSION",
    "NOTHING_TRAINED",
    "Evaluator",
    "EvaluatorConfig",
    "Progress",
]

# Part of every cache key: bump it whenever the sandbox (admission, trainer, worker) changes
# the numbers a candidate gets, so nothing stale is ever served.
# 2: behaviour hashes probe float32, beyond the probe range and at salted points; results
#    record their producer and trace; timeouts and crashes are keyed by code hash. A cache
#    written by version 1 is not read (its entries would be reused unverified).
# 3: a network whose weights training made non-finite fails its task (nonfinite), even where
#    the activation kept its losses finite; version 2 scored such networks ok.
EVALUATOR_VERSION = "3"

ADMIT_CHUNK = 32
ADMIT_SECONDS = 60.0  # per admission chunk; probing one candidate takes milliseconds
CUDA_BATCH = 32  # candidates per batch on CUDA when batch_size is 0
# The device a run.json or ranking.json records when no worker started: every result came
# from the cache (or the run ended before training anything). "unknown" read as a failure.
NOTHING_TRAINED = "none (nothing was trained)"

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
        threads: torch threads in each worker (0: torch's default, all cores, for one
            worker; the cores split evenly between the workers of a pool).
        memory_bytes: address-space cap of a CPU worker (None: half the machine's memory).
        backend: "local" (a worker process on this machine) or "ray" (one per Ray actor,
            sandbox/ray_workers.py).
        ray_address: the Ray cluster to join (None: Ray's default, which starts a local one
            unless RAY_ADDRESS is set; "auto": the cluster running on this machine).
        workers: local worker processes (0: auto, one per CUDA device, else one
            single-thread worker per core; see minact.sandbox.pool).
    """

    device: str = "auto"
    compile: str = "auto"
    batch_size: int = 0
    admit_timeout: float = 0.0
    threads: int = 0
    memory_bytes: int | None = None
    backend: str = "local"
    ray_address: str | None = None
    workers: int = 1

    def make_workers(self, home: Path) -> Workers:
        """Returns the Workers this configuration asks for (not started yet)."""
        if self.backend == "ray":
            # Each node caps its workers by its own memory unless told otherwise.
            return RayWorkers(
                self.worker(), address=self.ray_address, memory_bytes=self.memory_bytes
            )
        if self.backend != "local":
            raise EvaluationError(f"backend {self.backend!r}: expected 'local' or 'ray'")
        return local_workers(home, self.worker(), self.workers)

    def worker(self) -> WorkerSettings:
        """Returns the settings of the worker process this configuration asks for."""
        settings = WorkerSettings(self.device, self.compile, self.threads)
        if self.memory_bytes is None:
            return settings
        return WorkerSettings(self.device, self.compile, self.threads, self.memory_bytes)


class Evaluator:
    """Scores candidates on a lab through the cache and its Workers (one process by default)."""

    def __init__(
        self,
        lab: Lab,
        cache: FitnessCache,
        config: EvaluatorConfig | None = None,
        progress: Progress | None = None,
        workers: Workers | None = None,
    ) -> None:
        self.lab = lab
        self.cache = cache
        self.config = config or EvaluatorConfig()
        self.progress = progress or (lambda stage, done, total: None)
        # The configured backend unless the caller brings its own Workers.
        self._worker: Workers = workers or self.config.make_workers(cache.directory / "worker")
        self._lab_digest = lab.digest()
        # The loader checks the name; a Lab built in code may still name an unknown one.
        try:
            self.reference = seeds.seed_candidate(lab.reference)
        except KeyError as e:
            raise EvaluationError(f"{lab.path}: reference {e.args[0]}") from None
        self._seed_hashes = {c.code_hash for c in seeds.seed_candidates()}
        self._results = Results(
            lab,
            cache,
            self._worker,
            self.preferred_batch,
            self._device,
            lambda stage, done, total: self.progress(stage, done, total),
            self._admit_deadline(),
        )

    def on_lab(self, lab: Lab) -> Evaluator:
        """Returns an evaluator on `lab` with this cache and these (warm) workers.

        Closing either stops the workers; a later request starts them again.
        """
        return Evaluator(lab, self.cache, self.config, self.progress, self._worker)

    def on_tasks(self, tasks: Sequence[Task]) -> Evaluator:
        """Returns an evaluator on `tasks` (some of this lab's) with this cache and worker.

        Per-task results are cached by task (the lab's digest leaves its task list out), so
        what either evaluator trains, the other reuses.
        """
        return self.on_lab(replace(self.lab, tasks=tuple(tasks)))

    def close(self) -> None:
        """Stops the worker process."""
        self._worker.stop()

    def _admit_deadline(self) -> float:
        # At least 5 s, so a tiny training timeout does not turn into failed probes.
        return self.config.admit_timeout or max(5.0, min(ADMIT_SECONDS, self.lab.timeout))

    def _device(self) -> str:
        """Returns the device evaluations run on; raises EvaluationError.

        Asked only to judge or record a failure another device might not repeat (a
        timeout on CPU, retried on CUDA): where --device auto leaves it unknown because no
        worker has started (every admission came from the cache) and the machine may have
        a GPU, one is started to learn it, as a retry would need it anyway; "unknown"
        would count as the same device.
        """
        if known := str(self.info.get("device") or ""):
            return known
        if self.config.device in ("cpu", "cuda"):
            return self.config.device
        if not devices.gpu_possible():
            return "cpu"
        return str(self._worker.start().get("device") or "")

    def preferred_batch(self) -> int:
        """Returns how many candidates one `score` call should bring to keep every worker
        busy with full batches."""
        if self.config.batch_size:
            return self.config.batch_size * self._worker.size
        return (CUDA_BATCH if self.info.get("device") == "cuda" else 1) * self._worker.size

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
            # interrupt, not kill: a thread still starting a worker (a search's evaluation
            # pool) then ends what it started instead of leaving a process behind.
            self._worker.interrupt()

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
            # Only the lab can make a built-in fail admission: name its file and key.
            costly = ref_adm.status == "too_costly"
            hint = f": raise max_cost in {self.lab.path}'s [lab]" if costly else ""
            raise EvaluationError(f"reference {self.lab.reference} failed: {ref_adm.reason}{hint}")
        admitted = [
            (c, adm.behaviour_hash)
            for c in unique.values()
            if (adm := admissions[c.code_hash]).ok and adm.behaviour_hash is not None
        ]
        resolved = self._results.gather(admitted)
        ref = resolved[self.reference.code_hash].results
        reference = {t.name: ref[t.digest()] for t in self.lab.tasks}
        bad = first_failure(list(reference.items()))
        if bad is not None:
            hint = ""
            if bad[0] == "timeout":
                hint = f"; if its tasks need longer, raise timeout in {self.lab.path}'s [lab]"
            raise EvaluationError(
                f"reference {self.lab.reference} failed on the lab: {bad[1]}{hint}"
            )
        return [
            self._score(c, admissions[c.code_hash], resolved.get(c.code_hash), reference, probed)
            for c in unique.values()
        ]

    # admission -----------------------------------------------------------------------

    def _admissions(self, cands: list[Candidate]) -> tuple[dict[Hash, Admission], set[Hash]]:
        """Returns {code hash: admission} and the code hashes probed now.

        A cached provisional verdict (a timeout, a crash, too_costly by a timing) is probed
        again unless it is final (Conditions.final): a load spike is never frozen into the
        cache.
        """
        out: dict[Hash, Admission] = {}
        todo: list[Candidate] = []
        before: dict[Hash, Conditions] = {}  # the conditions of a failure probed again
        for c in cands:
            cached = self.cache.get_admission(c.code_hash, self._lab_digest)
            if cached is not None and cached.ok and not self._within_cost(cached):
                cached = None  # probed again: the verdict must hold for this lab's max_cost
            if cached is not None and cached.provisional:
                cond = self.cache.get_admission_conditions(c.code_hash, self._lab_digest)
                if cond is not None:
                    before[c.code_hash] = cond
                if cond is None or not cond.final(self._admit_deadline(), self._device()):
                    cached = None
                else:
                    cached = replace(cached, reason=noted(cached.reason, cond))
            if cached is None:
                todo.append(c)
            else:
                out[c.code_hash] = cached
        for start in range(0, len(todo), ADMIT_CHUNK):
            self.progress("admit", start, len(todo))
            chunk = todo[start : start + ADMIT_CHUNK]
            for c, adm in zip(chunk, self._admit_chunk(chunk), strict=True):
                if adm.provisional:
                    cond = failure_conditions(
                        before.get(c.code_hash), self._admit_deadline(), self._device(), adm.reason
                    )
                    self.cache.put_admission(c.code_hash, self._lab_digest, adm, cond)
                    adm = replace(adm, reason=noted(adm.reason, cond))
                else:
                    self.cache.put_admission(c.code_hash, self._lab_digest, adm)
                out[c.code_hash] = adm
        self.progress("admit", len(todo), len(todo))
        return out, {c.code_hash for c in todo}

    def _within_cost(self, adm: Admission) -> bool:
        """Returns whether an admission's cost is known and within the lab's max_cost."""
        # The lab digest in the key holds max_cost, so only an entry edited or copied by
        # hand gets here with another; the worker measures every admitted candidate's cost.
        # It stores the cost rounded to 3 decimals, and rounding keeps cost <= limit.
        return adm.cost is not None and adm.cost <= round(self.lab.max_cost, 3)

    def _admit_chunk(self, chunk: list[Candidate]) -> list[Admission]:
        deadline = self._admit_deadline()
        sources = [c.source for c in chunk]
        # Probe points no source can predict: drawn from the cache's secret salt (per lab).
        seed = self.cache.seed(f"probe:{self._lab_digest}")
        return self._worker.admit(sources, self.lab.probe, self.lab.max_cost, deadline, seed)

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

    # scores --------------------------------------------------------------------------

    def _score(
        self,
        c: Candidate,
        adm: Admission,
        got: Resolved | None,
        reference: dict[str, Any],
        probed: set[Hash],
    ) -> Score:
        """Returns `c`'s Score from its admission and its gathered results."""
        common: dict[str, Any] = {
            "name": c.name,
            "code_hash": c.code_hash,
            "source": c.source,
            "parent": c.parent,
            "baseline": c.code_hash in self._seed_hashes,
            "cost": adm.cost,
        }
        if got is None:
            return Score(
                status=adm.status, reason=adm.reason, cached=c.code_hash not in probed, **common
            )
        by_task = [(t.name, got.results[t.digest()]) for t in self.lab.tasks]
        common |= {
            "behaviour_hash": got.key,
            "collision": got.collision,
            "cached": not got.trained,
            "cached_tasks": sum(t.digest() not in got.fresh for t in self.lab.tasks),
            "seconds": sum(r.seconds for _, r in by_task) if got.trained else 0.0,
        }
        bad = first_failure(by_task)
        if bad is not None:
            return Score(status=bad[0], reason=bad[1], **common)
        agg = aggregate(by_task, reference, self.lab.fitness)
        return Score(
            status="ok",
            reason=adm.reason,  # a note from admission ("flat: ..."), or ""
            fitness=agg.fitness,
            fitness_spread=agg.fitness_spread,
            mean_ood_mse=agg.mean_ood_mse,
            tasks=agg.tasks,
            **common,
        )
