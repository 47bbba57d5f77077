"""The evaluator's worker process: the only place candidate code runs.

Started by evaluate.py as `python -m minact.sandbox.worker` with a scrubbed environment. It
reads one JSON request per line on stdin and writes one JSON reply per line on a
private copy of stdout; file descriptor 1 itself is pointed at stderr, so anything a
candidate or a library prints cannot corrupt the protocol. Requests:

    {"op": "hello", "device": "auto|cpu|cuda", "compile": "auto|on|off", "threads": N,
     "memory_bytes": N}
    {"op": "admit", "probe": [lo, hi], "max_cost": c, "seed": s, "items": [{"source": ...}]}
    {"op": "train", "items": [{"source": ..., "tasks": [task dict, ...]}, ...]}
    {"op": "verify", "items": [{"source": ..., "reference": ..., "points": [z, ...],
                                "seed": int}, ...]}
    {"op": "curves", "lo": a, "hi": b, "n": N, "items": [{"source": ...}, ...]}

`admit`'s seed places the probe points drawn from the cache's salt. `verify` answers
{"match": bool, "reason": ...} per item: does `source` compute `reference`'s f and f' at
the training pre-activations `points` and at the dense check its seed places
(minact.sandbox.verify)?

`curves` answers {"x": [...], "f": [...], "df": [...]} (float64, f' by autograd,
non-finite values as null) or {"error": "..."} per item, for the report's plots.

Replies carry {"ok": true, ...}, or {"ok": false, "error": "..."} for a request that is
malformed or that its handler raised on (the worker then serves the next one). A reply with
"broken": true says the worker's CUDA context can no longer run anything (a sticky error);
the worker exits after it. A failure of the worker itself (crash, hang) is the parent's to
handle.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

__all__ = ["main"]

MAX_CURVE_POINTS = 10_001

_Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _limit_memory(nbytes: int) -> None:
    """Caps the worker's address space at `nbytes` (0: no cap of minact's), or at the
    limit the user already set where that is lower (a shell's `ulimit -v`, a batch
    scheduler's): a process may lower its limits, never raise them."""
    try:
        import resource
    except ImportError:  # not on POSIX: no cap, the parent's timeout still applies
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    given = [v for v in resource.getrlimit(resource.RLIMIT_AS) if v != resource.RLIM_INFINITY]
    caps = given + ([nbytes] if nbytes > 0 else [])
    if caps:
        resource.setrlimit(resource.RLIMIT_AS, (min(caps), min(caps)))


class _Session:
    """The worker's state between requests: device, trainer, loaded activations."""

    def __init__(self) -> None:
        self.trainer: Any = None
        self.device = "cpu"

    def hello(self, req: dict[str, Any]) -> dict[str, Any]:
        import torch

        from minact.sandbox.heap import keep_freed_memory
        from minact.sandbox.trainer import Trainer

        want = str(req.get("device", "auto"))
        cuda = torch.cuda.is_available()
        if want == "cuda" and not cuda:
            return {"ok": False, "error": "device 'cuda' requested but CUDA is not available"}
        self.device = "cuda" if want == "cuda" or (want == "auto" and cuda) else "cpu"
        threads = int(req.get("threads", 0))
        if threads > 0:
            torch.set_num_threads(threads)
        keep_freed_memory()  # training steps reuse their pages (heap.py)
        # What training imports, before the cap: numpy loads numpy.random lazily, and under
        # the cap its shared object failed to map mid-training (an ImportError, taken for
        # the code's error) where the training itself had taken the memory.
        import numpy.random  # noqa: F401

        import minact.lab.sampling
        import minact.sandbox.loader  # noqa: F401

        if self.device == "cpu":
            _limit_memory(int(req.get("memory_bytes", 0)))
        else:
            fraction = float(req.get("memory_fraction", 0.9))
            torch.cuda.set_per_process_memory_fraction(fraction)
        comp = str(req.get("compile", "auto"))
        # On CPU, compiling each new activation costs seconds and saves less than that
        # (bench/evaluator.py measures it), so "auto" compiles only on CUDA.
        use_compile = comp == "on" or (comp == "auto" and self.device == "cuda")
        mode = str(req.get("compile_mode", "default"))
        self.trainer = Trainer(self.device, "inductor" if use_compile else None, mode)
        from minact.sandbox.admission import warm_up

        warm_up()  # torch's lazy imports now, within the start-up allowance
        name = torch.cuda.get_device_name(0) if self.device == "cuda" else "cpu"
        return {
            "ok": True,
            "device": self.device,
            "device_name": name,
            "compile": use_compile,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }

    def admit(self, req: dict[str, Any]) -> dict[str, Any]:
        from minact.sandbox.admission import admit

        lo, hi = (float(v) for v in req["probe"])
        max_cost, seed = float(req["max_cost"]), int(req.get("seed", 0))
        out = [
            admit(str(item["source"]), (lo, hi), max_cost, seed).to_dict() for item in req["items"]
        ]
        return {"ok": True, "results": out}

    def verify(self, req: dict[str, Any]) -> dict[str, Any]:
        from minact.sandbox.verify import verify

        out = [
            verify(
                str(i["source"]),
                str(i["reference"]),
                [float(v) for v in i["points"]],
                self.device,
                int(i.get("seed", 0)),
            )
            for i in req["items"]
        ]
        return {"ok": True, "results": out}

    def train(self, req: dict[str, Any]) -> dict[str, Any]:
        from minact.lab.task import Task
        from minact.sandbox.loader import CandidateError, load_activation
        from minact.sandbox.trainer import Job
        from minact.score import TaskResult

        jobs: list[Job] = []
        results: list[list[dict[str, Any]]] = []
        slots: list[tuple[int, int]] = []
        for i, item in enumerate(req["items"]):
            tasks = [Task.from_dict(t) for t in item["tasks"]]
            results.append([{} for _ in tasks])
            try:
                fn = load_activation(str(item["source"]))
            except CandidateError as e:
                fail = TaskResult(e.kind, e.reason).to_dict()
                results[i] = [fail for _ in tasks]
                continue
            for k, task in enumerate(tasks):
                jobs.append(Job(i, fn, task))
                slots.append((i, k))
        if jobs:
            try:
                trained = self.trainer.train(jobs)
            except Exception as e:  # per-batch boundary: the parent retries items alone
                return {
                    "ok": False,
                    "error": f"training raised {type(e).__name__}: {e}"[:500],
                    "retry": True,
                    "memory": _out_of_memory(e),
                }
            for (i, k), r in zip(slots, trained, strict=True):
                results[i][k] = r.to_dict()
        return {"ok": True, "results": results}

    def curves(self, req: dict[str, Any]) -> dict[str, Any]:
        lo, hi, n = float(req["lo"]), float(req["hi"]), int(req["n"])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and 2 <= n <= MAX_CURVE_POINTS):
            return {"ok": False, "error": f"bad curve grid [{lo}, {hi}] with {n} points"}
        return {
            "ok": True,
            "results": [_curve(str(item["source"]), lo, hi, n) for item in req["items"]],
        }


def _curve(source: str, lo: float, hi: float, n: int) -> dict[str, Any]:
    """Returns f and f' of one candidate on a float64 grid, or {"error": ...}."""
    import torch

    from minact.sandbox.loader import CandidateError, load_activation
    from minact.sandbox.probe import value_and_slope

    def finite(t: torch.Tensor) -> list[float | None]:
        return [v if math.isfinite(v) else None for v in t.tolist()]

    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    try:
        y, dy = value_and_slope(load_activation(source), x, "x")
    except CandidateError as e:
        return {"error": e.reason}
    except Exception as e:  # per-candidate boundary: the candidate's failure, not the worker's
        return {"error": f"{type(e).__name__}: {e}"[:300]}
    return {"x": x.tolist(), "f": finite(y), "df": finite(dy)}


def _device_broken() -> str:
    """Returns the error of a CUDA context this process can no longer use, or "".

    A device-side assert or an illegal memory access is sticky: the request it happened in
    fails, and so does every later kernel of the process. The context is checked only where
    this process initialised CUDA (never on a CPU worker, and never importing torch here).
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return ""
    try:
        torch.cuda.synchronize()
    except Exception as e:  # what synchronize raises on a broken context is a RuntimeError
        return f"{type(e).__name__}: {e}"
    return ""


def _serve(requests: IO[str], replies: IO[str]) -> None:
    session = _Session()
    handlers = {
        "hello": session.hello,
        "admit": session.admit,
        "train": session.train,
        "verify": session.verify,
        "curves": session.curves,
    }
    for line in requests:
        reply = _answer(handlers, line)
        if reply is None:
            return
        broken = _device_broken()
        if broken:
            # Every later kernel of this process would fail with the same error, and the
            # parent would take that for the verdict on whatever it asks next: the reply
            # says so, and the worker ends, so that the parent starts a fresh one.
            error = f"the CUDA context broke: {broken}"[:500]
            reply = {"ok": False, "error": error, "retry": True, "broken": True}
        replies.write(json.dumps(reply, allow_nan=True) + "\n")
        replies.flush()
        if broken:
            return


def _answer(handlers: Mapping[str, _Handler], line: str) -> dict[str, Any] | None:
    """Returns the reply to one request line, or None for an exit request."""
    try:
        req = json.loads(line)
        op = req["op"]
    except (ValueError, KeyError, TypeError) as e:
        return {"ok": False, "error": f"malformed request: {type(e).__name__}: {e}"}
    if op == "exit":
        return None
    handler = handlers.get(op) if isinstance(op, str) else None
    if handler is None:
        return {"ok": False, "error": f"unknown op {op!r}"}
    # A request its handler raises on (a missing or mistyped field) is answered like any
    # malformed one, and the worker serves on; candidate code has its own boundaries inside.
    try:
        return handler(req)
    except Exception as e:
        return {"ok": False, "error": f"{op} request failed: {type(e).__name__}: {e}"[:500]}


def _exit_with_parent(every: float = 1.0) -> None:
    """Ends the worker when its parent is gone (killed with SIGKILL, say): mid-training it
    would not read the closed stdin until its request ended, which on a long lab can be
    hours of the machine. A thread, not PR_SET_PDEATHSIG, which fires when the *thread*
    that started the worker ends (pools start workers from their threads)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != parent:  # reparented: the parent died
                os._exit(1)

    threading.Thread(target=watch, name="minact-parent-watch", daemon=True).start()


# "alloc_failed": cuBLAS (CUBLAS_STATUS_ALLOC_FAILED) could not get its handle or workspace
# on a GPU whose memory other work holds; as an error it would be the code's for good, the
# reference's too, and every later call would fail on the lab.
_NO_MEMORY = ("can't allocate memory", "cannot allocate memory", "out of memory",
              "failed to map segment", "alloc_failed")  # fmt: skip


def _out_of_memory(e: BaseException) -> bool:
    """Returns whether `e` says memory ran out: MemoryError, torch's OutOfMemoryError (CUDA),
    a CUDA library's failed allocation (CUBLAS_STATUS_ALLOC_FAILED), the CPU allocator's
    refusal under the address-space cap (a RuntimeError), or a module whose shared object
    could not be mapped (an ImportError: ENOMEM from mmap)."""
    text = str(e).lower()
    named = type(e).__name__ in ("MemoryError", "OutOfMemoryError")
    return named or any(words in text for words in _NO_MEMORY)


def main() -> None:
    """Serves requests until stdin closes or an exit request arrives."""
    _exit_with_parent()
    # Keep the protocol on a private descriptor; stray prints go to stderr.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
