"""What runs inside a Ray actor: `NodeWorker`, a WorkerClient on the actor's node.

The actor starts the same worker subprocess as a local run (process.py), with the same
limits and an environment built from the same allow-list, so no RAY_* variable, cloud
credential or API key of the actor reaches candidate code, and candidate code never
runs in the actor itself. Requests and answers are JSON-safe lists and dicts, the
worker protocol's own shapes. Ray is imported lazily (`import_ray`).
This module does not import torch.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import minact
from minact.errors import EvaluationError
from minact.lab.task import Task
from minact.sandbox.client import START_SECONDS, TrainItem, VerifyItem, WorkerClient, WorkerSettings
from minact.sandbox.process import WorkerProcess
from minact.untrusted import printable

__all__ = ["INSTALL", "NodeWorker", "cause", "import_ray", "reason"]

# Answers one request line with its own environment, as JSON: the worker's protocol.
_PRINT_ENVIRONMENT = (
    "import json, os, sys; sys.stdin.readline(); "
    "print(json.dumps({'ok': True, 'environment': dict(os.environ)}), flush=True)"
)
INSTALL = "install minact with its Ray extra on every node: pip install 'minact[ray]'"


def import_ray() -> Any:
    """Returns the ray module; raises EvaluationError when it is not installed."""
    try:
        import ray
    except ImportError:
        raise EvaluationError(f"--backend ray needs Ray: {INSTALL}") from None
    return ray


def reason(e: BaseException) -> str:
    """Returns the last line of an error's message (Ray puts the cause there), with its type."""
    return f"{type(e).__name__}: {cause(e)}"[:500]


_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the remote traceback it puts in str(e)
_RAISED = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception): ")


def cause(e: BaseException) -> str:
    """Returns the message of an error raised in an actor: the last line of the traceback
    Ray carries, without its colours or the `module.Error: ` it starts with."""
    text = _COLOUR.sub("", str(e)).strip() or type(e).__name__
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else text
    return printable(_RAISED.sub("", last))[:500]


def _private_home() -> Path:
    """Returns a new folder for this actor's worker under the node's temporary folder, after
    removing those of actors that are gone (a killed actor cannot remove its own)."""
    parent = Path(tempfile.gettempdir()) / "minact-ray"
    parent.mkdir(exist_ok=True)
    for old in parent.glob("worker-*-*"):
        pid = old.name.split("-")[1]
        # isdecimal and a length a pid has: int() refuses "²", os.kill a pid of 30 digits.
        if pid.isdecimal() and len(pid) <= 10 and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"worker-{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; no pid of this size
        return False
    except PermissionError:  # another user's process
        return True
    return True


class NodeWorker:
    """The body of one Ray actor: a WorkerClient, hence one worker process, on its node.

    Requests and answers are JSON-safe lists and dicts, the worker protocol's own shapes.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        """`settings`: device, compile, threads and memory_bytes (None: half this node's)."""
        memory = settings.get("memory_bytes")
        base = WorkerSettings(str(settings["device"]), str(settings["compile"]))
        self._settings = WorkerSettings(
            base.device,
            base.compile,
            int(settings["threads"]),
            base.memory_bytes if memory is None else int(memory),  # this node's memory
        )
        # A private home on this node: the driver's cache folder need not exist here.
        self._home = _private_home()
        self._client = WorkerClient(self._home, self._settings)

    def start(self) -> dict[str, Any]:
        """Starts the worker process; returns what it says of itself, with node and minact."""
        info = self._client.start()
        node = import_ray().util.get_node_ip_address()
        return {**info, "node": node, "minact": minact.__version__}

    def environment(self) -> dict[str, str]:
        """Returns the environment a worker process sees on this node: a process started
        the way the worker is, which prints its environment (no candidate code runs)."""
        argv = [sys.executable, "-c", _PRINT_ENVIRONMENT]
        probe = WorkerProcess(self._home / "environment", self._settings.threads, argv)
        try:
            reply = probe.request({"op": "environment"}, START_SECONDS)
        finally:
            probe.stop()
        return {str(k): str(v) for k, v in reply["environment"].items()}

    def admit(
        self, sources: list[str], probe: list[float], max_cost: float, deadline: float, seed: int
    ) -> list[dict[str, Any]]:
        """Returns the admission of each source as a dict."""
        lo, hi = probe
        got = self._client.admit(sources, (lo, hi), max_cost, deadline, seed)
        return [a.to_dict() for a in got]

    def train(self, items: list[dict[str, Any]], limits: list[float]) -> list[list[dict[str, Any]]]:
        """Returns each item's per-task results as dicts; `limits[n]` is deadline(n)."""
        batch = [
            TrainItem(str(i["source"]), tuple(Task.from_dict(t) for t in i["tasks"])) for i in items
        ]
        got = self._client.train(batch, lambda n: limits[min(n, len(limits) - 1)])
        return [[r.to_dict() for r in item] for item in got]

    def verify(self, items: list[dict[str, Any]], deadline: float) -> list[tuple[bool, str]]:
        """Returns (match, reason) per item."""
        batch = [
            VerifyItem(
                str(i["source"]), str(i["reference"]), tuple(i["points"]), int(i.get("seed", 0))
            )
            for i in items
        ]
        return self._client.verify(batch, deadline)

    def curves(
        self, sources: list[str], grid: list[float], deadline: float
    ) -> list[dict[str, Any] | None]:
        """Returns f and f' data (or {"error": ...}) per source; None where none could be had."""
        lo, hi, n = grid
        return self._client.curves(sources, (lo, hi, int(n)), deadline)

    def stop(self) -> None:
        """Stops the worker process and removes its home."""
        self._client.stop()
        shutil.rmtree(self._home, ignore_errors=True)
