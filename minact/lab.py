"""Tiny batched MLPs: every (candidate, task, seed) network of a batch trains as one.

Networks that share their training settings (width, depth, steps, learning rate and
sample counts) are stacked along a leading batch dimension and trained with
`torch.baddbmm`, one Adam step for all of them. Each network's loss is its own mean
squared error and the optimised objective is their *sum*, so the gradient of one
network never depends on the others: results do not depend on what else is in the
batch. Inputs with fewer variables than the widest task are zero-padded; padded
weights get zero gradients and stay inert.

Initial weights depend only on (task digest, seed index), never on the candidate, so
every candidate starts from the same networks on a task (common random numbers).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from minact.candidate import TaskResult
from minact.fingerprint import Activation
from minact.tasks import Settings, Task, TaskData, sample

__all__ = ["Job", "Trainer"]

_Forward = Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]


@dataclass(frozen=True, slots=True)
class Job:
    """One candidate activation to train on one task (all of the task's seeds)."""

    key: int  # the caller's index of the candidate
    fn: Activation
    task: Task


@dataclass(slots=True)
class _Tensors:
    x_train: torch.Tensor  # (networks, n_train, d)
    y_train: torch.Tensor  # (networks, n_train, 1)
    x_id: torch.Tensor  # (networks, n_test, d)
    y_id: torch.Tensor
    x_ood: torch.Tensor
    y_ood: torch.Tensor
    params: list[torch.Tensor]  # W1, b1, ..., W_out, b_out, each (networks, ...)


def _group_key(s: Settings) -> tuple[int, int, int, float, int, int]:
    return (s.width, s.depth, s.steps, s.lr, s.n_train, s.n_test)


def _init_seed(task: Task, seed: int) -> int:
    digest = hashlib.sha256(f"{task.digest()}:{seed}".encode()).hexdigest()
    return int(digest[:15], 16)


class Trainer:
    """Trains batches of jobs on one device; keeps task data and initial weights warm."""

    def __init__(
        self, device: str = "cpu", compile_backend: str | None = None, compile_mode: str = "default"
    ) -> None:
        """Trains on `device`; with a `compile_backend` ("inductor"), under torch.compile."""
        self.device = torch.device(device)
        self.compile_backend = compile_backend
        self.compile_mode = compile_mode
        self._data: dict[str, TaskData] = {}
        self._init: dict[tuple[str, int, int], list[torch.Tensor]] = {}

    def train(self, jobs: Sequence[Job]) -> list[TaskResult]:
        """Returns one TaskResult per job, in order; trains same-settings jobs together."""
        results: list[TaskResult | None] = [None] * len(jobs)
        groups: dict[tuple[int, int, int, float, int, int], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(_group_key(job.task.settings), []).append(i)
        for indices in groups.values():
            for i, r in zip(indices, self._train_group([jobs[i] for i in indices]), strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------------------

    def _task_data(self, task: Task) -> TaskData:
        key = task.digest()
        if key not in self._data:
            self._data[key] = sample(task)
        return self._data[key]

    def _initial_params(self, task: Task, seed: int, d_max: int) -> list[torch.Tensor]:
        """Returns nn.Linear-style initial weights for one network, zero-padded to d_max."""
        key = (task.digest(), seed, d_max)
        if key not in self._init:
            s = task.settings
            gen = torch.Generator().manual_seed(_init_seed(task, seed))
            sizes = [len(task.variables)] + [s.width] * s.depth + [1]
            params: list[torch.Tensor] = []
            for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
                bound = 1.0 / math.sqrt(fan_in)
                w = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
                b = (torch.rand(1, fan_out, generator=gen) * 2 - 1) * bound
                if layer == 0 and fan_in < d_max:
                    w = torch.cat([w, torch.zeros(d_max - fan_in, fan_out)])
                params += [w, b]
            self._init[key] = params
        return self._init[key]

    def _stack(self, jobs: Sequence[Job]) -> _Tensors:
        d_max = max(len(j.task.variables) for j in jobs)
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("xt", "yt", "xi", "yi", "xo", "yo")}
        per_param: list[list[torch.Tensor]] = []
        for job in jobs:
            data = self._task_data(job.task)
            for seed in range(job.task.settings.seeds):
                for k, x, y in (
                    ("t", data.x_train, data.y_train),
                    ("i", data.x_id, data.y_id),
                    ("o", data.x_ood, data.y_ood),
                ):
                    cols["x" + k].append(np.pad(x, ((0, 0), (0, d_max - x.shape[1]))))
                    cols["y" + k].append(y.reshape(-1, 1))
                per_param.append(self._initial_params(job.task, seed, d_max))

        def t(key: str) -> torch.Tensor:
            return torch.from_numpy(np.stack(cols[key])).to(self.device, torch.float32)

        params = [
            torch.stack([p[i] for p in per_param]).to(self.device).requires_grad_(True)
            for i in range(len(per_param[0]))
        ]
        return _Tensors(t("xt"), t("yt"), t("xi"), t("yi"), t("xo"), t("yo"), params)

    def _fit(self, forward: _Forward, tensors: _Tensors, steps: int, lr: float) -> None:
        params = tensors.params
        opt = _Adam(params, lr)
        for _ in range(steps):
            for p in params:
                p.grad = None
            pred = forward(tensors.x_train, params)
            loss = ((pred - tensors.y_train) ** 2).mean(dim=(1, 2)).sum()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()

    def _train_group(self, jobs: Sequence[Job]) -> list[TaskResult]:
        start = time.perf_counter()
        s = jobs[0].task.settings
        tensors = self._stack(jobs)
        eager = _make_forward(_segments(jobs))
        forward = eager
        if self.compile_backend is not None:
            # A fresh graph per group: each batch brings new activations, and dynamo would
            # otherwise hit its recompile limit and silently fall back to eager.
            torch._dynamo.reset()
            mode = None if self.compile_backend != "inductor" else self.compile_mode
            forward = torch.compile(eager, backend=self.compile_backend, mode=mode, dynamic=False)
        try:
            self._fit(forward, tensors, s.steps, s.lr)
        except Exception:
            if forward is eager:
                raise
            # What dynamo cannot trace still trains, eagerly, from the same initial weights.
            torch._dynamo.reset()
            tensors = self._stack(jobs)
            self._fit(eager, tensors, s.steps, s.lr)
        # Scored eagerly: three calls do not repay a recompile for no-grad mode.
        with torch.no_grad():
            p = tensors.params
            train_mse = ((eager(tensors.x_train, p) - tensors.y_train) ** 2).mean(dim=(1, 2))
            id_mse = ((eager(tensors.x_id, p) - tensors.y_id) ** 2).mean(dim=(1, 2))
            ood_mse = ((eager(tensors.x_ood, p) - tensors.y_ood) ** 2).mean(dim=(1, 2))
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / len(jobs)
        out: list[TaskResult] = []
        pos = 0
        for job in jobs:
            n = job.task.settings.seeds
            tr = train_mse[pos : pos + n].tolist()
            idl = id_mse[pos : pos + n].tolist()
            ood = ood_mse[pos : pos + n].tolist()
            pos += n
            out.append(_result(tr, idl, ood, seconds))
        return out


class _Adam:
    """Adam (Kingma & Ba 2015, bias-corrected) written with exactly rounded elementwise ops.

    torch.optim.Adam's fused and foreach kernels take vectorised paths (with FMA) for the
    bulk of a tensor and scalar paths for its tail, so a network's update depended on its
    position in the batch by an ulp, which 400 steps amplify into visible score changes.
    Multiply, add, divide and sqrt round the same on either path, so here a network's
    numbers are the same whatever else shares its batch.
    """

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params = params
        self.lr = lr
        self.beta1, self.beta2, self.eps = 0.9, 0.999, 1e-8
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1 = 1 - self.beta1**self.t
        c2 = 1 - self.beta2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad
            if g is None:
                continue
            m.mul_(self.beta1).add_(g * (1 - self.beta1))
            v.mul_(self.beta2).add_(g * g * (1 - self.beta2))
            denom = (v / c2).sqrt_().add_(self.eps)
            p.sub_(m / denom * (self.lr / c1))


def _segments(jobs: Sequence[Job]) -> list[tuple[int, int, Activation]]:
    """Returns (first, end, activation) network ranges; a candidate's jobs share one call."""
    segments: list[tuple[int, int, Activation]] = []
    pos = 0
    for job in jobs:
        n = job.task.settings.seeds
        if segments and segments[-1][2] is job.fn and segments[-1][1] == pos:
            segments[-1] = (segments[-1][0], pos + n, job.fn)
        else:
            segments.append((pos, pos + n, job.fn))
        pos += n
    return segments


def _result(train: list[float], id_: list[float], ood: list[float], seconds: float) -> TaskResult:
    for what, values in (("training", train), ("ID test", id_), ("OOD test", ood)):
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            reason = f"{what} loss is {values[bad[0]]} for seed {bad[0]}"
            return TaskResult("nonfinite", reason, seconds=seconds)
    return TaskResult("ok", "", tuple(ood), tuple(id_), seconds)


def _make_forward(segments: Sequence[tuple[int, int, Activation]]) -> _Forward:
    """Returns forward(x, params) applying each segment's activation to its networks."""

    def act(z: torch.Tensor) -> torch.Tensor:
        if len(segments) == 1:
            return segments[0][2](z)
        return torch.cat([fn(z[a:b]) for a, b, fn in segments])

    def forward(x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        h = x  # (networks, points, d)
        for i in range(0, len(params) - 2, 2):
            h = act(torch.baddbmm(params[i + 1], h, params[i]))  # (networks, points, width)
        return torch.baddbmm(params[-1], h, params[-2])  # (networks, points, 1)

    return forward
