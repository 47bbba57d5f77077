"""`RayWorkers`: the `Workers` protocol over a Ray cluster, one sandboxed worker per actor.

Each Ray actor runs a `NodeWorker` (ray_actor.py): a WorkerClient that starts the same
worker subprocess as a local run on the actor's node, with the same limits and the same
allow-listed environment, so candidate code never runs in an actor or in this driver,
and no Ray, cloud or API credential reaches it. A request's items are spread over the
actors as whole candidates (ray_fleet.py) and come back in order, decoded from the same
JSON dicts the worker sends; inside an actor the WorkerClient's rule holds (only the
culprit of a failed batch gets the failure), and a lost actor's items go to another.

Every actor reports its node, torch version and device at start. An actor on a node with
another torch or minact version is refused with an error that names the node, and all
actors train on one kind of device, so the torch version and device in `info` hold for
every result. The driver keeps the search loop, the cache and the run directory.
Ray is imported lazily: minact imports, and runs locally, without it.
This module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import minact
from minact.errors import EvaluationError
from minact.sandbox.client import START_SECONDS, TrainItem, VerifyItem, WorkerSettings
from minact.sandbox.ray_actor import INSTALL, NodeWorker, cause, import_ray, reason
from minact.sandbox.ray_fleet import Fleet, Job
from minact.score import Admission, TaskResult

__all__ = ["RayWorkers"]

_STOP_SECONDS = 15.0  # for actors to stop their workers before they are killed


class RayWorkers:
    """Candidates run by worker processes in Ray actors, spread over a cluster."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        address: str | None = None,
        actors: int = 0,
        memory_bytes: int | None = None,
        torch_version: str | None = None,
    ) -> None:
        """`address` None joins $RAY_ADDRESS or starts a local cluster. `actors` 0 means one
        per GPU of the cluster on CUDA, else one per `settings.threads` CPUs (1 thread each
        when 0). `memory_bytes` None caps each CPU worker at half its node's memory.
        `torch_version` is what every node must run (default: this machine's torch)."""
        self.settings = settings
        self.address = address
        self.actors = actors
        self.memory_bytes = memory_bytes
        self.torch_version = torch_version
        self._info: dict[str, Any] = {}
        self._fleet: Fleet | None = None
        self._options: dict[str, Any] = {}
        self._actor_settings: dict[str, Any] = {}
        self._remote: Any = None  # the Ray actor class, made once Ray is imported
        self._interrupted = False
        self._connected = False  # whether this object connected Ray (and so disconnects it)

    @property
    def info(self) -> dict[str, Any]:
        """What the actors said of themselves at start (device, torch, nodes...); {} before."""
        return self._info

    @property
    def size(self) -> int:
        """Returns how many actors train at once (1 until they have started)."""
        return int(self._info.get("workers") or 1)

    @property
    def running(self) -> bool:
        """Returns whether actors have been started and not stopped."""
        return self._fleet is not None and bool(self._fleet.actors or self._fleet.starting)

    # life cycle ----------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Connects to Ray, starts the actors and their workers; returns `info`."""
        if self._interrupted:
            raise EvaluationError("evaluation interrupted")
        ray = import_ray()
        self._kill_actors()  # a restart keeps the connection (and a cluster started for it)
        if not ray.is_initialized():
            self._connect(ray)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        device = self.settings.device
        if device == "auto":
            device = "cuda" if gpus else "cpu"
        if device == "cuda" and not gpus:
            raise EvaluationError("--device cuda: the Ray cluster has no GPU")
        # A CPU worker with torch's default threads would take all its node's cores, per actor.
        threads = self.settings.threads or (1 if device == "cpu" else 0)
        cpus = max(1, threads) if device == "cpu" else 1
        count = self.actors or (gpus if device == "cuda" else int(resources.get("CPU", 1)) // cpus)
        self._options = {
            "num_cpus": cpus,
            "num_gpus": 1 if device == "cuda" else 0,
            "max_restarts": 0,  # a lost actor is replaced by the Fleet, which resends its work
            "max_concurrency": 2,  # so that `environment` answers while a request runs
        }
        self._actor_settings = {
            "device": device,
            "compile": self.settings.compile,
            "threads": threads,
            "memory_bytes": self.memory_bytes,
        }
        actors = [self._new_actor() for _ in range(max(1, count))]
        self._fleet = Fleet(ray, actors, self._new_actor, self._check)
        infos = []
        for ref in [a.start.remote() for a in actors]:
            try:
                infos.append(self._check(ray.get(ref, timeout=START_SECONDS)))
            except EvaluationError as e:  # the node's worker refused (or differs): its words
                self.kill()
                raise EvaluationError(cause(e)) from None
            except Exception as e:
                self.kill()
                raise EvaluationError(
                    f"a Ray actor could not start ({reason(e)}); every node needs minact "
                    f"and torch: {INSTALL}"
                ) from None
        first = infos[0]
        self._info = {
            **{k: first.get(k) for k in ("device", "device_name", "compile", "torch", "threads")},
            "backend": "ray",
            "workers": len(actors),
            "actors": [
                {k: i.get(k) for k in ("node", "device", "device_name", "torch")} for i in infos
            ],
        }
        return self._info

    def _connect(self, ray: Any) -> None:
        try:
            if self.address is None:
                # A local cluster just for this run: no dashboard, and a small object store
                # (requests and answers are small JSON-like values). Actors' output stays
                # in Ray's logs, off this process's stdout (which --json keeps clean).
                ray.init(
                    include_dashboard=False,
                    object_store_memory=128 * 1024 * 1024,
                    log_to_driver=False,
                )
            else:
                ray.init(address=self.address, log_to_driver=False)
        except Exception as e:
            where = self.address or "a new local cluster"
            raise EvaluationError(
                f"--ray-address {where}: cannot connect to Ray ({reason(e)}); start a cluster "
                "with `ray start --head` (README: More than one machine)"
            ) from None
        self._connected = True

    def _new_actor(self) -> Any:
        if self._remote is None:
            self._remote = import_ray().remote(NodeWorker)
        return self._remote.options(**self._options).remote(self._actor_settings)

    def _check(self, info: dict[str, Any]) -> dict[str, Any]:
        """Returns an actor's start info; raises EvaluationError for a node that differs."""
        node = info.get("node", "?")
        want = self.torch_version or _installed("torch")
        # The build (+cpu, +cu128) may differ: a CPU-only driver trains nothing itself.
        if _public(str(info.get("torch"))) != _public(want):
            raise EvaluationError(
                f"Ray node {node} runs torch {info.get('torch')}, this machine {want}: results "
                "of two torch versions are not mixed; install the same torch on every node"
            )
        if info.get("minact") != minact.__version__:
            raise EvaluationError(
                f"Ray node {node} runs minact {info.get('minact')}, this machine "
                f"{minact.__version__}; {INSTALL}"
            )
        return info

    def interrupt(self) -> None:
        """Kills every actor from any thread; later requests raise EvaluationError."""
        self._interrupted = True
        fleet = self._fleet
        if fleet is not None:
            fleet.interrupted = True
            fleet.kill()

    def kill(self) -> None:
        """Kills every actor (and so its worker process) now."""
        self._kill_actors()
        self._disconnect()

    def _kill_actors(self) -> None:
        fleet, self._fleet = self._fleet, None
        if fleet is not None:
            fleet.kill()

    def stop(self) -> None:
        """Asks every actor to stop its worker, then kills the actors."""
        fleet = self._fleet
        if fleet is not None and fleet.actors:
            try:
                import_ray().get([a.stop.remote() for a in fleet.actors], timeout=_STOP_SECONDS)
            except Exception:  # an actor that does not stop in time is killed below
                pass
        self.kill()

    def _disconnect(self) -> None:
        if self._connected:
            self._connected = False
            import_ray().shutdown()

    def environment(self) -> list[dict[str, str]]:
        """Returns, per actor, the environment a worker process sees on its node."""
        fleet = self._fleet
        actors = fleet.actors if fleet is not None else []
        return [dict(env) for env in import_ray().get([a.environment.remote() for a in actors])]

    # requests ------------------------------------------------------------------------

    def _spread(self, n: int, job: Job) -> list[Any]:
        if self._interrupted:
            raise EvaluationError("evaluation interrupted")
        if n == 0:
            return []
        if self._fleet is None:
            self.start()
        assert self._fleet is not None
        return self._fleet.spread(n, job)

    def admit(
        self,
        sources: Sequence[str],
        probe: tuple[float, float],
        max_cost: float,
        deadline: float,
        seed: int = 0,
    ) -> list[Admission]:
        """Returns the admission verdict of each source, in order."""
        src = list(sources)

        def send(actor: Any, ix: list[int]) -> Any:
            return actor.admit.remote([src[i] for i in ix], list(probe), max_cost, deadline, seed)

        return self._spread(
            len(src),
            Job(
                send,
                lambda raw: [Admission.from_dict(d) for d in raw],
                lambda _, why: Admission("crashed", f"probing the activation: {why}"),
                lambda ix: _limit(deadline, [deadline] * len(ix)),
            ),
        )

    def train(
        self, items: Sequence[TrainItem], deadline: Callable[[int], float]
    ) -> list[list[TaskResult]]:
        """Returns each item's results, one per task, in order."""
        batch = list(items)
        encoded = [{"source": i.source, "tasks": [t.to_dict() for t in i.tasks]} for i in batch]
        # `deadline` is the driver's function; actors get a table of its values.
        limits = [deadline(n) for n in range(sum(len(i.tasks) for i in batch) + 1)]

        def tasks(ix: list[int]) -> int:
            return sum(len(batch[i].tasks) for i in ix)

        def send(actor: Any, ix: list[int]) -> Any:
            return actor.train.remote([encoded[i] for i in ix], limits[: tasks(ix) + 1])

        def failed(i: int, why: str) -> list[TaskResult]:
            return [TaskResult("crashed", f"training: {why}") for _ in batch[i].tasks]

        def limit(ix: list[int]) -> float:
            return _limit(limits[tasks(ix)], [limits[tasks([i])] for i in ix])

        def read(raw: Any) -> list[list[TaskResult]]:
            return [[TaskResult.from_dict(d) for d in item] for item in raw]

        return self._spread(len(batch), Job(send, read, failed, limit))

    def verify(self, items: Sequence[VerifyItem], deadline: float) -> list[tuple[bool, str]]:
        """Returns (match, reason) per item, in order."""
        enc = [
            {"source": i.source, "reference": i.reference, "points": list(i.points), "seed": i.seed}
            for i in items
        ]
        return self._spread(
            len(enc),
            Job(
                lambda actor, ix: actor.verify.remote([enc[i] for i in ix], deadline),
                lambda raw: [(bool(m), str(r)) for m, r in raw],
                lambda _, why: (False, f"verification failed: {why}"[:500]),
                lambda ix: _limit(deadline, [deadline] * len(ix)),
            ),
        )

    def curves(
        self, sources: Sequence[str], grid: tuple[float, float, int], deadline: float
    ) -> list[dict[str, Any] | None]:
        """Returns f and f' data (or {"error": ...}) per source; None where none could be had."""
        src = list(sources)
        return self._spread(
            len(src),
            Job(
                lambda actor, ix: actor.curves.remote([src[i] for i in ix], list(grid), deadline),
                list,
                lambda _, __: None,
                lambda ix: _limit(deadline, [deadline] * len(ix)),
            ),
        )


def _limit(batch: float, each: list[float]) -> float:
    """Returns how long an actor may take on a chunk before it counts as lost: the batch,
    then each item alone (WorkerClient's retry), with a worker restart before each."""
    return batch + sum(each) + START_SECONDS * (len(each) + 1)


def _public(version: str) -> str:
    """Returns a version without its local build label: "2.13.0+cpu" -> "2.13.0"."""
    return version.split("+", 1)[0]


def _installed(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"
