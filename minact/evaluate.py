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

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minact import seeds
from minact.cache import FitnessCache
from minact.candidate import Admission, Candidate, Hash, Score, TaskResult
from minact.errors import EvaluationError
from minact.fitness import aggregate, first_failure
from minact.process import WorkerCrashed, WorkerProcess, WorkerTimeout
from minact.tasks import Lab, Task
from minact.validate import validate

__all__ = [
    "EVALUATOR_VERSION",
    "Curve",
    "Evaluator",
    "EvaluatorConfig",
    "Progress",
    "cached_curves",
]

# Part of every cache key: bump it whenever lab.py, fingerprint.py or the worker change
# the numbers a candidate gets, so nothing stale is ever served.
EVALUATOR_VERSION = "1"

ADMIT_CHUNK = 32
ADMIT_SECONDS = 60.0  # per admission chunk; probing one candidate takes milliseconds
CUDA_BATCH = 32  # candidates per batch on CUDA when batch_size is 0
START_SECONDS = 300.0  # interpreter start, torch import and CUDA initialisation

Progress = Callable[[str, int, int], None]


def _default_memory_bytes() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
    return max(4 << 30, total // 2)


@dataclass(frozen=True, slots=True)
class EvaluatorConfig:
    """How the worker runs.

    Attributes:
        device: "auto" (CUDA when available), "cpu" or "cuda".
        compile: "auto" (torch.compile on CUDA only), "on" or "off".
        batch_size: candidates trained together in one worker request; 0 picks by device
            (bench/evaluator.py: on CPU one at a time is as fast as any batch and answers
            sooner; on CUDA large batches amortise kernel launches).
        admit_timeout: seconds for the worker to probe one chunk of candidates (0: the lab's
            per-candidate timeout, within 5..60 s; probing takes milliseconds).
        threads: torch threads in the worker (0: torch's default, all cores).
        memory_bytes: address-space cap of a CPU worker (0: half the machine's memory).
    """

    device: str = "auto"
    compile: str = "auto"
    batch_size: int = 0
    admit_timeout: float = 0.0
    threads: int = 0
    memory_bytes: int = field(default_factory=_default_memory_bytes)


@dataclass(frozen=True, slots=True)
class Curve:
    """An activation and its derivative sampled on a grid, for plots.

    Attributes:
        x: the float64 grid.  f: f(x).  df: f'(x) by autograd.  NaN where not finite.
    """

    x: tuple[float, ...]
    f: tuple[float, ...]
    df: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Curve:
        """Builds a Curve from the worker's JSON (null for non-finite); raises on bad input."""

        def floats(key: str) -> tuple[float, ...]:
            values = d[key]
            if not isinstance(values, list):
                raise TypeError(f"curve {key} is not a list")
            return tuple(math.nan if v is None else float(v) for v in values)

        x, f, df = floats("x"), floats("f"), floats("df")
        if not len(x) == len(f) == len(df) or not all(math.isfinite(v) for v in x):
            raise ValueError("curve lists differ in length or the grid is not finite")
        return cls(x, f, df)


@dataclass(slots=True)
class _Unit:
    """One behaviour to train on the tasks it still lacks."""

    behaviour: Hash
    source: str
    tasks: list[Task]


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
        self.info: dict[str, Any] = {}
        self._interrupted = False
        self._worker = WorkerProcess(cache.directory / "worker", self.config.threads)
        self._lab_digest = lab.digest()
        try:
            ref = validate(seeds.seed_source(lab.reference), name=lab.reference)
        except KeyError as e:
            raise EvaluationError(f"{lab.path}: reference {e.args[0]}") from None
        assert isinstance(ref, Candidate), "built-in seeds always validate"
        self.reference = ref
        self._seed_hashes = {
            c.code_hash
            for n in seeds.SEEDS
            if isinstance(c := validate(seeds.seed_source(n)), Candidate)
        }

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

    def interrupt(self) -> None:
        """Stops evaluation from another thread: kills the worker, later calls fail fast."""
        self._interrupted = True
        self._worker.kill()

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
        msg: dict[str, Any] = {
            "op": "admit",
            "probe": list(self.lab.probe),
            "max_cost": self.lab.max_cost,
            "items": [{"source": c.source} for c in chunk],
        }
        try:
            reply = self._ask(msg, self._admit_deadline())
            return [Admission.from_dict(d) for d in reply["results"]]
        except (WorkerTimeout, WorkerCrashed, KeyError, TypeError, ValueError) as e:
            if len(chunk) == 1:
                kind = "timeout" if isinstance(e, WorkerTimeout) else "crashed"
                return [Admission(kind, f"probing the activation: {e}")]
        return [a for c in chunk for a in self._admit_chunk([c])]

    # curves --------------------------------------------------------------------------

    def curves(
        self, candidates: Sequence[Candidate], lo: float = -6.0, hi: float = 6.0, n: int = 241
    ) -> dict[Hash, Curve | None]:
        """Returns f and f' of each candidate on [lo, hi] (None where they cannot be had).

        Answered from the cache first; the worker computes the rest. Never raises for a
        candidate's or the worker's failure: the report simply leaves that curve out.
        """
        grid = (lo, hi, n)
        out: dict[Hash, Curve | None] = {}
        todo: list[Candidate] = []
        for c in {c.code_hash: c for c in candidates}.values():
            data = self.cache.get_curve(c.code_hash, grid)
            if data is None:
                todo.append(c)
            else:
                out[c.code_hash] = _parse_curve(data)
        for start in range(0, len(todo), ADMIT_CHUNK):
            chunk = todo[start : start + ADMIT_CHUNK]
            try:
                answers = self._curve_chunk(chunk, grid)
            except EvaluationError:  # the worker cannot start, or we were interrupted
                answers = [None] * len(chunk)
            for c, data in zip(chunk, answers, strict=True):
                if data is not None:  # a verdict on the code itself: worth keeping
                    self.cache.put_curve(c.code_hash, grid, data)
                out[c.code_hash] = _parse_curve(data) if data is not None else None
        return out

    def _curve_chunk(
        self, chunk: list[Candidate], grid: tuple[float, float, int]
    ) -> list[dict[str, Any] | None]:
        lo, hi, n = grid
        msg: dict[str, Any] = {"op": "curves", "lo": lo, "hi": hi, "n": n}
        msg["items"] = [{"source": c.source} for c in chunk]
        try:
            reply = self._ask(msg, self._admit_deadline())
            results = reply["results"]
            if not isinstance(results, list) or len(results) != len(chunk):
                raise ValueError("the worker answered for other candidates")
            for d in results:  # check now, so that nothing malformed is cached
                if not isinstance(d, dict) or ("error" not in d and _parse_curve(d) is None):
                    raise ValueError("malformed curve")
            return [dict(d) for d in results]
        except (WorkerTimeout, WorkerCrashed, KeyError, TypeError, ValueError):
            if len(chunk) == 1:
                return [None]
        return [d for c in chunk for d in self._curve_chunk([c], grid)]

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
            self._start()
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
        share = sum(len(u.tasks) for u in batch) / max(1, len(self.lab.tasks))
        deadline = self.lab.timeout * max(share, 1.0)
        msg = {
            "op": "train",
            "items": [{"source": u.source, "tasks": [t.to_dict() for t in u.tasks]} for u in batch],
        }
        failure: TaskResult
        try:
            reply = self._ask(msg, deadline, allow_retry=True)
            if reply.get("ok"):
                return [[TaskResult.from_dict(d) for d in item] for item in reply["results"]]
            failure = TaskResult("error", str(reply.get("error", "training failed"))[:500])
        except WorkerTimeout:
            failure = TaskResult("timeout", f"training did not finish within {deadline:.0f} s")
        except (WorkerCrashed, KeyError, TypeError, ValueError) as e:
            failure = TaskResult("crashed", f"training: {e}")
        if len(batch) == 1:
            return [[failure for _ in batch[0].tasks]]
        return [r for u in batch for r in self._train_batch([u])]

    # the worker ----------------------------------------------------------------------

    def _ask(
        self, msg: dict[str, Any], timeout: float, allow_retry: bool = False
    ) -> dict[str, Any]:
        if self._interrupted:
            raise EvaluationError("evaluation interrupted")
        if not self._worker.running:
            self._start()
        reply = self._worker.request(msg, timeout)
        if not reply.get("ok") and not (allow_retry and reply.get("retry")):
            raise WorkerCrashed(f"worker refused the request: {reply.get('error')}")
        return reply

    def _start(self) -> None:
        if self._interrupted:
            raise EvaluationError("evaluation interrupted")
        hello = {
            "op": "hello",
            "device": self.config.device,
            "compile": self.config.compile,
            "threads": self.config.threads,
            "memory_bytes": self.config.memory_bytes,
        }
        try:
            self._worker.start()
            reply = self._worker.request(hello, START_SECONDS)
        except (WorkerTimeout, WorkerCrashed) as e:
            tail = self._worker.stderr_tail()
            raise EvaluationError(f"the evaluation worker did not start: {e}\n{tail}") from None
        if not reply.get("ok"):
            self._worker.kill()
            raise EvaluationError(f"the evaluation worker refused to start: {reply.get('error')}")
        self.info = {
            k: reply.get(k) for k in ("device", "device_name", "compile", "torch", "threads")
        }

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


def _parse_curve(data: Mapping[str, Any]) -> Curve | None:
    """Returns the Curve in cached or worker data, or None for an error or bad data."""
    try:
        return None if "error" in data else Curve.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


def cached_curves(
    cache: FitnessCache,
    candidates: Sequence[Candidate],
    lo: float = -6.0,
    hi: float = 6.0,
    n: int = 241,
) -> dict[Hash, Curve]:
    """Returns the curves the cache already holds for `candidates` (no worker is started)."""
    out: dict[Hash, Curve] = {}
    for c in candidates:
        data = cache.get_curve(c.code_hash, (lo, hi, n))
        curve = _parse_curve(data) if data is not None else None
        if curve is not None:
            out[c.code_hash] = curve
    return out
