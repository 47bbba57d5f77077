"""The parent's handle on the worker process: start, ask with a deadline, kill.

The worker is a fresh interpreter (`python -m minact.sandbox.worker`, the spawn model: no
forked torch state) in its own session, started with an environment built from an
allow-list, so API keys and other secrets never reach candidate code. Its working
directory, HOME and TMPDIR point into the cache's `worker/` folder, so stray files and
compile caches land there. Every request has a deadline; past it, or when the process
dies, the whole process group is killed and the caller decides what to retry. The
deadline counts the time the machine could give the worker: on a machine loaded beyond
its cores, wall-clock time counts at the rate 1 / (load / cores), so a busy machine does
not turn a healthy candidate into a timeout, within a hard cap of WALL_CAP times the
deadline in wall-clock time, which still ends any hang. Time this process spends stopped
itself (SIGSTOP, a suspended job) is not counted, within twice that cap (a machine so
overloaded that every poll wakes late must still end a hang), and a timeout of a worker
someone stopped says so: it is no verdict on the candidate. Replies are JSON (never pickle),
so a compromised worker cannot run code in the parent by what it sends back, and their
size is capped.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import minact
from minact.errors import EvaluationError
from minact.sandbox.cores import cpu_cores

__all__ = [
    "OUT_OF_MEMORY",
    "STOPPED",
    "WALL_CAP",
    "WorkerCrashed",
    "WorkerProcess",
    "WorkerTimeout",
    "from_outside",
    "load_average",
    "load_factor",
    "worker_environment",
]

MAX_REPLY_BYTES = 64 * 1024 * 1024
WALL_CAP = 8.0  # a deadline stretched by the machine's load never exceeds this multiple
_POLL_SECONDS = 0.5  # how often a wait re-reads the load
_STALLED_SECONDS = 5.0  # a poll that ends this much later than asked: this process was stopped
_OVERSIZED = b""  # what a reader puts for a reply line over MAX_REPLY_BYTES (a line is never empty)
_PASSED_THROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "CUDA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "CC",
    "CXX",
    "SYSTEMROOT",
)


class WorkerTimeout(Exception):
    """The worker did not answer within the deadline; it has been killed."""


class WorkerCrashed(Exception):
    """The worker exited or broke the protocol; it has been killed."""


def worker_environment(home: Path, threads: int, devices: str | None = None) -> dict[str, str]:
    """Returns the worker's environment: an allow-list, never the parent's secrets.

    `devices`, when given, replaces CUDA_VISIBLE_DEVICES (a pool pins a worker per GPU).
    """
    env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = devices
    package_root = str(Path(minact.__file__).resolve().parent.parent)
    env.update(
        {
            "HOME": str(home),
            "TMPDIR": str(home),
            "PYTHONPATH": package_root,
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "TORCHINDUCTOR_CACHE_DIR": str(home / "inductor"),
            "TRITON_CACHE_DIR": str(home / "triton"),
        }
    )
    if threads > 0:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[k] = str(threads)
    return env


def load_average() -> float | None:
    """Returns the machine's 1-minute load average, or None where it is unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


# Causes of a failure that say nothing about the code: signals that only a user, a
# supervisor or the kernel's out-of-memory killer send (candidate code cannot signal; the
# parent's own kills end as timeouts or interrupts), and memory that ran out in training
# (the address-space cap refuses a candidate's own excess at admission; in training, memory
# goes short when other work, another worker or a user's limit takes it).
OUT_OF_MEMORY = "ran out of memory"
STOPPED = "the worker was stopped from outside (SIGSTOP)"
_OUTSIDE = (
    *(f"worker killed by {s}" for s in ("SIGKILL", "SIGTERM", "SIGINT", "SIGHUP")),
    STOPPED,
)


def from_outside(reason: str) -> bool:
    """Returns whether a timeout's or crash's `reason` names a cause from outside the code."""
    return OUT_OF_MEMORY in reason or any(cause in reason for cause in _OUTSIDE)


def load_factor() -> float:
    """Returns how many times oversubscribed the cores this process may use are (1.0 at
    most once per core, or where the system does not say)."""
    # Not os.cpu_count(): in a container given 2 of a 64-core host's cores, a load of 20
    # would read as calm, and a timeout that load caused would become final in the cache.
    load = load_average()
    return 1.0 if load is None else max(1.0, load / cpu_cores())


class WorkerProcess:
    """One running worker; `request` sends a JSON message and waits for its reply."""

    def __init__(
        self,
        home: Path,
        threads: int = 0,
        argv: list[str] | None = None,
        devices: str | None = None,
    ) -> None:
        """Runs `argv` (default: `python -m minact.sandbox.worker`) with its home in `home`
        and, when `devices` is given, only those CUDA devices visible."""
        self.home = home
        self.threads = threads
        self.devices = devices
        self.argv = argv or [sys.executable, "-m", "minact.sandbox.worker"]
        self._proc: subprocess.Popen[bytes] | None = None
        # Each process gets its own reply queue and stderr tail, filled only by its own
        # reader threads: a killed worker's reader may still report its end of stream after
        # its successor started, and that must not reach the successor's requests.
        self._replies: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)

    @property
    def running(self) -> bool:
        """Returns whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Starts a fresh worker process (killing the previous one, if it still runs); raises
        EvaluationError, naming the path and the reason, when its folder cannot be made or
        the process cannot be started."""
        self.kill()
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            why = "a file is in the way" if isinstance(e, FileExistsError) else e.strerror or e
            raise EvaluationError(
                f"cannot create the worker's folder {e.filename or self.home}: {why} "
                "(the workers' folders are in the cache folder, --cache-dir)"
            ) from None
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.home,
                env=worker_environment(self.home, self.threads, self.devices),
                start_new_session=True,  # its own process group, so kill() reaches its children
            )
        except OSError as e:
            raise EvaluationError(
                f"cannot start the worker {self.argv[0]} in {self.home}: {e.strerror or e}"
            ) from None
        assert self._proc.stdout is not None and self._proc.stderr is not None
        pid = self._proc.pid
        self._replies = queue.Queue()
        self._stderr = collections.deque(maxlen=40)
        readers: list[tuple[str, Callable[..., None], tuple[Any, ...]]] = [
            ("stdout", _read_replies, (self._proc.stdout, self._replies)),
            ("stderr", _read_stderr, (self._proc.stderr, self._stderr)),
        ]
        for stream, read, args in readers:
            name = f"worker-{pid}-{stream}"
            threading.Thread(target=read, args=args, name=name, daemon=True).start()

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Returns the worker's reply to `message`; raises WorkerTimeout or WorkerCrashed."""
        if not self.running:
            self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()
        except OSError:
            reason = self._death_reason()
            self.kill()
            raise WorkerCrashed(reason) from None
        line = self._wait_reply(timeout)
        if line == _OVERSIZED:
            self.kill()
            raise WorkerCrashed(f"the worker sent a reply over {MAX_REPLY_BYTES} bytes")
        if line is None:
            # Its stdout ended: let it finish exiting first, so the reason is its own exit
            # code and not the SIGKILL that kill() would send a process still on its way out.
            reason = self._death_reason()
            self.kill()
            raise WorkerCrashed(reason)
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError):
            self.kill()
            raise WorkerCrashed("the worker sent a malformed reply") from None
        if not isinstance(reply, dict):
            self.kill()
            raise WorkerCrashed("the worker sent a malformed reply")
        return reply

    def _wait_reply(self, timeout: float) -> bytes | None:
        """Returns the next reply line (None: stdout ended) within `timeout` seconds of the
        machine's time (see the module's docstring); kills the worker and raises
        WorkerTimeout past it."""
        started = last = time.monotonic()
        used = paused = 0.0
        while True:
            try:
                return self._replies.get(timeout=min(_POLL_SECONDS, max(timeout - used, 0.001)))
            except queue.Empty:
                now = time.monotonic()
                gap, last = now - last, now
                if gap > _STALLED_SECONDS and now - started < 2 * timeout * WALL_CAP:
                    # This process was stopped (SIGSTOP, a suspended job, a frozen container)
                    # while the worker may have gone on and answered: that time says nothing
                    # of the worker, and counting it would time out a healthy candidate.
                    paused += gap
                    continue
                used += gap / load_factor()
                wall = now - started - paused
                if used >= timeout or wall >= timeout * WALL_CAP:
                    stopped = _stopped(self._proc)
                    self.kill()
                    busy = (
                        f" ({wall:.0f} s of wall-clock time on a busy machine)"
                        if wall > 1.5 * timeout
                        else ""
                    )
                    why = f"; {STOPPED}" if stopped else ""
                    raise WorkerTimeout(f"no answer within {timeout:.3g} s{busy}{why}") from None

    def stop(self) -> None:
        """Asks the worker to exit, and kills it if it does not within a few seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.write(b'{"op": "exit"}\n')
                proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """Kills the worker's whole process group and reaps it.

        Its stdout and stderr are closed by their reader threads at their end: closing them
        here would wait for a read in progress, that is for every process holding the pipe.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def stderr_tail(self) -> str:
        """Returns the last lines the worker wrote to stderr."""
        return "\n".join(self._stderr)

    def _death_reason(self) -> str:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        if code is None and proc is not None:
            try:
                code = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        if code is not None and code < 0:
            try:
                what = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"killed by signal {-code}"
            if code == -signal.SIGKILL:
                what += " (out of memory?)"
        elif code is None:
            what = "closed its output but did not exit"
        else:
            what = f"exited with code {code}"
        last = [ln for ln in self._stderr if ln.strip()]
        return f"worker {what}" + (f": {last[-1][:300]}" if last else "")


def _stopped(proc: subprocess.Popen[bytes] | None) -> bool:
    """Returns whether `proc` is stopped by a signal (SIGSTOP, SIGTSTP) or a tracer; False
    where the system does not say (no /proc)."""
    if proc is None:
        return False
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may hold any byte.
    return stat.rpartition(")")[2].split()[:1] in (["T"], ["t"])


def _read_replies(stream: IO[bytes], replies: queue.Queue[bytes | None]) -> None:
    """Puts each reply line of one worker process into that process's own queue, then None
    at the end of its stream (_OVERSIZED for a line over the cap, and no more), and closes
    the stream."""
    with stream:
        while True:
            line = stream.readline(MAX_REPLY_BYTES + 1)
            if len(line) > MAX_REPLY_BYTES:
                replies.put(_OVERSIZED)
                return
            if not line:
                replies.put(None)
                return
            replies.put(line)


def _read_stderr(stream: IO[bytes], tail: collections.deque[str]) -> None:
    """Drains one worker's stderr into its own bounded tail (a full pipe would block the
    worker), and closes the stream at its end."""
    with stream:
        for raw in iter(lambda: stream.readline(8192), b""):
            tail.append(raw.decode("utf-8", "replace").rstrip()[:400])
