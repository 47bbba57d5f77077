"""A pool of local worker processes behind the `Workers` protocol.

`WorkerPool` drives N `WorkerClient`s, each a sandboxed worker process with its own home
folder, from threads of the main process (the threads only wait on pipes: all tensor
work stays in the workers). `train` hands whole candidates to the first free worker and
returns the results in input order; every worker runs the same code on the same inputs,
and on CPU a candidate trains alone in either case, so its numbers do not depend on
which worker (or how many) trained it. Each client keeps its own rule for failures (a
failed batch is asked again item by item), so only the culprit fails, as with one
worker. Probing, verifying and drawing take milliseconds and go to one free worker.

`local_workers` picks the split: on CUDA one worker per visible device, pinned to it with
CUDA_VISIBLE_DEVICES; on CPU one single-thread worker per core, the cores being the affinity
mask capped by a cgroup CPU quota (sandbox/cores.py). bench/pipeline.py on 2 cores: two
single-thread workers beat one worker with two threads, and two workers with torch's default
threads each were several times slower than either. This module does not import torch.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import queue
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from minact.sandbox.client import TrainItem, VerifyItem, WorkerClient, WorkerSettings
from minact.sandbox.cores import affinity_cores, cpu_cores
from minact.sandbox.workers import Workers
from minact.score import Admission, TaskResult

__all__ = ["MAX_AUTO_CPU_WORKERS", "WorkerPool", "cpu_cores", "cuda_devices", "local_workers"]

# `auto` on CPU stops here: each worker holds its own torch (a few hundred MB), and only 2
# cores were measured.
MAX_AUTO_CPU_WORKERS = 8

T = TypeVar("T")


def cuda_devices() -> list[str]:
    """Returns the CUDA devices visible to a worker, without importing torch.

    CUDA_VISIBLE_DEVICES when it is set, else what `nvidia-smi -L` lists; [] when neither
    finds one.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",") if d.strip()]
        # CUDA stops at the first invalid entry; "-1" is the usual way to hide every device.
        return list(_until_invalid(ids))
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("GPU ")]
    return [str(i) for i in range(len(lines))] if out.returncode == 0 else []


def _until_invalid(ids: list[str]) -> Iterator[str]:
    for d in ids:
        if d.startswith("-"):
            return
        yield d


def local_workers(home: Path, settings: WorkerSettings, workers: int) -> Workers:
    """Returns the local Workers for `workers` processes (0: auto), homes next to `home`.

    One worker is a plain WorkerClient in `home` (as before pools existed). In a pool on
    CPU, a worker whose threads are 0 gets one thread (the cores are split, not shared).
    """
    devices = cuda_devices() if settings.device in ("auto", "cuda") else []
    cores = cpu_cores()  # reads the cgroup files once
    if workers == 0:
        if devices:
            workers = len(devices)
        else:
            workers = min(cores, MAX_AUTO_CPU_WORKERS)
            # Two workers each using all cores ran several times slower than one.
            settings = settings if settings.threads else replace(settings, threads=1)
    if not devices and not settings.threads and (workers > 1 or cores < affinity_cores()):
        # Split the cores (a CPU quota below the affinity mask counts: torch's default
        # threads would follow the mask and be throttled).
        settings = replace(settings, threads=max(1, cores // workers))
    if workers == 1:
        return WorkerClient(home, settings)
    clients = []
    for i in range(workers):
        pinned = (
            replace(settings, visible_devices=devices[i % len(devices)]) if devices else settings
        )
        clients.append(WorkerClient(_home(home, i), pinned))
    return WorkerPool(clients)


def _home(home: Path, i: int) -> Path:
    return home if i == 0 else home.with_name(f"{home.name}-{i}")


class WorkerPool:
    """Several WorkerClients; whole candidates go to the first free one."""

    def __init__(self, clients: Sequence[WorkerClient]) -> None:
        if not clients:
            raise ValueError("a worker pool needs at least one worker")
        self.clients = list(clients)
        self._free: queue.Queue[WorkerClient] = queue.Queue()
        for c in self.clients:
            self._free.put(c)
        self._threads = concurrent.futures.ThreadPoolExecutor(
            len(self.clients), thread_name_prefix="minact-pool"
        )

    @property
    def size(self) -> int:
        """Returns how many candidates the pool trains at once (one per worker)."""
        return len(self.clients)

    @property
    def info(self) -> dict[str, Any]:
        """Returns a started worker's hello, with the pool's size and each worker's device."""
        # Workers start lazily, on their first request: any one that did speaks for all.
        first = next((c.info for c in self.clients if c.info), {})
        if not first:
            return {}
        return {
            **first,
            "workers": len(self.clients),
            "devices": [c.settings.visible_devices for c in self.clients],
        }

    @property
    def running(self) -> bool:
        """Returns whether at least one worker is alive."""
        return any(c.running for c in self.clients)

    def start(self) -> dict[str, Any]:
        """Starts one worker and returns `info`; raises EvaluationError. The others start
        on their first request: two candidates on a pool of ten start two workers, not
        ten (each holds torch in memory)."""
        if not self.running:
            self.clients[0].start()
        return self.info

    def interrupt(self) -> None:
        """Kills every worker; later requests raise EvaluationError."""
        for c in self.clients:
            c.interrupt()

    def kill(self) -> None:
        """Kills every worker now."""
        for c in self.clients:
            c.kill()

    def stop(self) -> None:
        """Asks every worker to exit (and kills those that do not)."""
        for f in [self._threads.submit(c.stop) for c in self.clients]:
            f.result()

    def admit(
        self,
        sources: Sequence[str],
        probe: tuple[float, float],
        max_cost: float,
        deadline: float,
        seed: int = 0,
    ) -> list[Admission]:
        """Returns the admission verdict of each source, in order (one free worker)."""
        with self._worker() as w:
            return w.admit(sources, probe, max_cost, deadline, seed)

    def verify(self, items: Sequence[VerifyItem], deadline: float) -> list[tuple[bool, str]]:
        """Returns (match, reason) per item, in order (one free worker)."""
        with self._worker() as w:
            return w.verify(items, deadline)

    def curves(
        self, sources: Sequence[str], grid: tuple[float, float, int], deadline: float
    ) -> list[dict[str, Any] | None]:
        """Returns f and f' data per source, in order (one free worker)."""
        with self._worker() as w:
            return w.curves(sources, grid, deadline)

    def train(
        self, items: Sequence[TrainItem], deadline: Callable[[int], float]
    ) -> list[list[TaskResult]]:
        """Returns each item's results, in input order; items go to the first free worker.

        On CPU each request carries one candidate; on CUDA the items are shared evenly,
        so each device trains its share as one batch.
        """
        if not items:
            return []
        cuda = self.info.get("device") == "cuda"
        size = math.ceil(len(items) / len(self.clients)) if cuda else 1
        chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]

        def one(chunk: list[TrainItem]) -> list[list[TaskResult]]:
            with self._worker() as w:
                return w.train(chunk, deadline)

        futures = [self._threads.submit(one, chunk) for chunk in chunks]
        try:
            return [r for f in futures for r in f.result()]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    @contextmanager
    def _worker(self) -> Iterator[WorkerClient]:
        """Lends the first free worker for one request."""
        w = self._free.get()
        try:
            yield w
        finally:
            self._free.put(w)
