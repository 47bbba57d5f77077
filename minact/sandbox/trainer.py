"""Tiny batched networks: every (candidate, task, seed) network of a batch trains as one.

Networks that share their task kind and training settings (width, depth, steps, learning
rate, sample counts and set sizes) are stacked along a leading batch dimension and trained
with `torch.baddbmm`, one Adam step for all of them. Each network's loss is its own mean
and the optimised objective is their *sum*, so the gradient of one network never depends
on the others: results do not depend on what else is in the batch. On CPU they are
bit-for-bit equal when each network's block of activations (points x width) is a multiple
of the SIMD width and width is a multiple of 8, as in the shipped labs; otherwise the
vectorised kernels round a network's tail elements differently by its position, and the
results agree within float rounding (amplified by training). Inputs with fewer
variables than the widest task are zero-padded; padded weights get zero gradients and stay
inert.

Models and losses per task kind (minact.lab.task):
- regression: MLP of `depth` hidden layers of `width`, the activation after each; MSE.
- classification: the same MLP giving a logit; binary cross-entropy with logits.
- set (DeepSets): phi, `depth` hidden layers with the activation, applied to each element;
  a sum over the set; rho, one hidden layer of `width` with the activation, then a linear
  output; MSE.
- graph: a message-passing network of `width` (graph.py), `rounds` rounds; MSE per node, or
  binary cross-entropy for yes/no algorithms (Task.loss).
Dataset tasks train the MLP of their kind on their feature vectors.

Initial weights depend only on (task digest, seed index), never on the candidate, so
every candidate starts from the same networks on a task (common random numbers). Each
result carries a trace (trace.py): a sample of the pre-activations of the task's first
network and the ends of its other networks' range, which lets another code with the same
behaviour hash prove it would have computed the same activation values before it reuses
the result.
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

from minact.lab.sampling import TaskData, sample
from minact.lab.task import Task
from minact.sandbox.adam import Adam, packed
from minact.sandbox.graph import graph_forward, graph_params
from minact.sandbox.loader import Activation
from minact.sandbox.readout import Readout
from minact.sandbox.trace import Tracer
from minact.score import TaskResult

__all__ = ["Job", "Trainer"]

_Forward = Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]
_GroupKey = tuple[object, ...]
_Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (pred, y) -> (networks,)


@dataclass(frozen=True, slots=True)
class Job:
    """One candidate activation to train on one task (all of the task's seeds)."""

    key: int  # the caller's index of the candidate
    fn: Activation
    task: Task


@dataclass(slots=True)
class _Tensors:
    x_train: torch.Tensor  # (networks, n_train, d); set tasks: (networks, n_train, size, d)
    y_train: torch.Tensor  # (networks, n_train, 1)
    x_id: torch.Tensor  # (networks, n_test, d); set tasks: (networks, n_test, size, d)
    y_id: torch.Tensor
    x_ood: torch.Tensor
    y_ood: torch.Tensor
    params: list[torch.Tensor]  # W1, b1, ..., W_out, b_out, each (networks, ...)


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
        """Returns one TaskResult per job, in order; trains same-kind, same-settings jobs as one."""
        results: list[TaskResult | None] = [None] * len(jobs)
        groups: dict[_GroupKey, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(self._group_key(job.task), []).append(i)
        for indices in groups.values():
            for i, r in zip(indices, self._train_group([jobs[i] for i in indices]), strict=True):
                results[i] = r
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # every group answers for each of its jobs; anything else is our bug
            raise RuntimeError(f"no training result for jobs {missing}")
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------------------

    def _task_data(self, task: Task) -> TaskData:
        key = task.digest()
        if key not in self._data:
            self._data[key] = sample(task)
        return self._data[key]

    def _group_key(self, task: Task) -> _GroupKey:
        """Returns what networks must share to train as one: model, loss, settings, shapes."""
        s, data, g = task.settings, self._task_data(task), task.graph
        # The data's shapes (points, set sizes, nodes), not the settings: a dataset task has
        # as many rows as its table gives.
        shapes = tuple(x.shape[:-1] for x in (data.x_train, data.x_id, data.x_ood))
        graph = (g.rounds, g.aggregate) if g is not None else ()
        return (task.kind, task.loss, s.width, s.depth, s.steps, s.lr, *shapes, *graph)

    def _features(self, task: Task) -> int:
        return int(self._task_data(task).x_train.shape[-1])

    def _initial_params(self, task: Task, seed: int, d_max: int) -> list[torch.Tensor]:
        """Returns nn.Linear-style initial weights for one network, zero-padded to d_max."""
        key = (task.digest(), seed, d_max)
        if key not in self._init:
            s = task.settings
            gen = torch.Generator().manual_seed(_init_seed(task, seed))
            if task.graph is not None:
                self._init[key] = graph_params(gen, self._features(task), s.width, d_max)
                return self._init[key]
            rho = [s.width] if task.kind == "set" else []  # rho's hidden layer
            sizes = [self._features(task)] + [s.width] * s.depth + rho + [1]
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
        d_max = max(self._features(j.task) for j in jobs)
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("xt", "yt", "xi", "yi", "xo", "yo")}
        per_param: list[list[torch.Tensor]] = []
        for job in jobs:
            data = self._task_data(job.task)
            for seed in range(job.task.settings.seeds):
                for k, x, y, e in (
                    ("t", data.x_train, data.y_train, data.e_train),
                    ("i", data.x_id, data.y_id, data.e_id),
                    ("o", data.x_ood, data.y_ood, data.e_ood),
                ):
                    pad = [(0, 0)] * (x.ndim - 1) + [(0, d_max - x.shape[-1])]
                    x = np.pad(x, pad)
                    # Graphs: each node's features, then its row of edge weights (graph.py).
                    cols["x" + k].append(x if e is None else np.concatenate([x, e], axis=-1))
                    cols["y" + k].append(y.reshape(-1, 1))
                per_param.append(self._initial_params(job.task, seed, d_max))

        def t(key: str) -> torch.Tensor:
            return torch.from_numpy(np.stack(cols[key])).to(self.device, torch.float32)

        # One buffer for all parameters: Adam then updates them in one pass (adam.py).
        params = packed(
            [
                torch.stack([p[i] for p in per_param]).to(self.device)
                for i in range(len(per_param[0]))
            ]
        )
        return _Tensors(t("xt"), t("yt"), t("xi"), t("yi"), t("xo"), t("yo"), params)

    def _fit(
        self, forward: _Forward, loss_fn: _Loss, t: _Tensors, steps: int, lr: float, tracer: Tracer
    ) -> None:
        params = t.params
        opt = Adam(params, lr)
        for step in range(steps):
            if step in (0, steps // 2):
                tracer.snapshot(params, t.x_train)
            for p in params:
                p.grad = None
            loss = loss_fn(forward(t.x_train, params), t.y_train).sum()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()

    def _train_group(self, jobs: Sequence[Job]) -> list[TaskResult]:
        start = time.perf_counter()
        task = jobs[0].task
        s = task.settings
        loss_fn = _bce if task.loss == "bce" else _mse
        tensors = self._stack(jobs)
        pool_at = s.depth if task.kind == "set" else None
        forward_one: Callable[[Activation], _Forward]
        if task.graph is not None:
            rounds, aggregate = task.graph.rounds, task.graph.aggregate
            eager = graph_forward(_segment_act(_segments(jobs)), rounds, aggregate)

            def forward_one(fn: Activation) -> _Forward:
                return graph_forward(fn, rounds, aggregate)
        else:
            eager = _make_forward(_segments(jobs), pool_at)

            def forward_one(fn: Activation) -> _Forward:  # any number of networks
                return _make_forward([(0, 1, fn)], pool_at, readout=False)

        firsts = list(itertools.accumulate((j.task.settings.seeds for j in jobs[:-1]), initial=0))

        def tracer() -> Tracer:
            counts = [j.task.settings.seeds for j in jobs]
            fns = [j.fn for j in jobs]
            return Tracer(firsts, fns, forward_one, batched=task.graph is None, counts=counts)

        trace = tracer()
        forward = eager
        if self.compile_backend is not None:
            # A fresh graph per group: each batch brings new activations, and dynamo would
            # otherwise hit its recompile limit and silently fall back to eager.
            torch._dynamo.reset()
            mode = None if self.compile_backend != "inductor" else self.compile_mode
            forward = torch.compile(eager, backend=self.compile_backend, mode=mode, dynamic=False)
        try:
            self._fit(forward, loss_fn, tensors, s.steps, s.lr, trace)
        except Exception:
            if forward is eager:
                raise
            # What dynamo cannot trace still trains, eagerly, from the same initial weights.
            torch._dynamo.reset()
            tensors, trace = self._stack(jobs), tracer()
            self._fit(eager, loss_fn, tensors, s.steps, s.lr, trace)
        # Scored eagerly: three calls do not repay a recompile for no-grad mode.
        with torch.no_grad():
            p = tensors.params
            train_loss = loss_fn(eager(tensors.x_train, p), tensors.y_train)
            id_loss = loss_fn(eager(tensors.x_id, p), tensors.y_id)
            ood_loss = loss_fn(eager(tensors.x_ood, p), tensors.y_ood)
            finite = _finite_networks(p)
        trace.snapshot(p, tensors.x_train)
        trace.snapshot(p, tensors.x_ood)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / len(jobs)
        out: list[TaskResult] = []
        pos = 0
        for j, job in enumerate(jobs):
            n = job.task.settings.seeds
            tr = train_loss[pos : pos + n].tolist()
            idl = id_loss[pos : pos + n].tolist()
            ood = ood_loss[pos : pos + n].tolist()
            weights = finite[pos : pos + n].tolist()
            pos += n
            points = trace.sample(j, _init_seed(job.task, 0))
            out.append(_result(tr, idl, ood, seconds, points, weights))
        return out


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


def _finite_networks(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Returns, per network (the parameters' first axis), whether all its weights are finite."""
    rows = [p.detach().reshape(p.shape[0], -1).isfinite().all(dim=1) for p in params]
    return torch.stack(rows).all(dim=0)


def _result(
    train: list[float],
    id_: list[float],
    ood: list[float],
    seconds: float,
    trace: tuple[float, ...],
    weights: list[bool],
) -> TaskResult:
    """Returns a network group's result; `weights[i]`: seed i's weights are all finite.

    Finite losses alone do not make a result: an activation that maps NaN to numbers
    (`torch.nan_to_num`, `torch.where(x < c, ..., c)`) hides weights that a non-finite f'
    turned into NaN, and the network's output is then a constant, not what it learnt.
    """
    for what, values in (("training", train), ("ID test", id_), ("OOD test", ood)):
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            reason = f"{what} loss is {values[bad[0]]} for seed {bad[0]}"
            return TaskResult("nonfinite", reason, seconds=seconds, trace=trace, traced=len(ood))
    bad = [i for i, ok in enumerate(weights) if not ok]
    if bad:
        reason = (
            f"training made the weights non-finite for seed {bad[0]} (f' not finite at a "
            "pre-activation?), though the activation kept the losses finite"
        )
        return TaskResult("nonfinite", reason, seconds=seconds, trace=trace, traced=len(ood))
    # The trace covers every seed's inputs (trace.py): seed 0's sampled, the others' ends.
    return TaskResult("ok", "", tuple(ood), tuple(id_), seconds, trace, len(ood))


def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Returns each network's mean squared error."""
    return ((pred - y) ** 2).mean(dim=(1, 2))  # (networks,)


def _bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Returns each network's mean binary cross-entropy of `logits` against 0/1 `labels`."""
    # The stable softplus(z) - y*z. exp and log1p map a tensor's tail on the vector path too
    # (F.softplus and sigmoid take a scalar path there), so a point's loss does not depend on
    # where it sits in the batch.
    loss = torch.relu(logits) - logits * labels + torch.log1p(torch.exp(-logits.abs()))
    return loss.mean(dim=(1, 2))  # (networks,)


def _sum_pool(h: torch.Tensor, n_sets: int) -> torch.Tensor:
    """Returns the sum over each set: (networks, n_sets * k, width) -> (networks, n_sets, width)."""
    h = h.reshape(h.shape[0], n_sets, -1, h.shape[-1])  # (networks, sets, k, width)
    # Pairwise sums by exactly rounded adds, in an order fixed by k alone: a reduction kernel
    # could split or vectorise its work by the tensor's total size, that is by the batch.
    # (split, not slices: a slice's backward fills a zero tensor of h's full size.)
    while h.shape[2] > 1:
        half = h.shape[2] // 2
        low, high, rest = torch.split(h, [half, half, h.shape[2] - 2 * half], dim=2)
        h = torch.cat([low + high, rest], dim=2) if rest.shape[2] else low + high
    return h[:, :, 0]


def _segment_act(segments: Sequence[tuple[int, int, Activation]]) -> Activation:
    """Returns act(z) applying each segment's activation to its networks (z's first axis)."""
    sizes = [b - a for a, b, _ in segments]  # the segments tile the networks in order

    def act(z: torch.Tensor) -> torch.Tensor:
        if len(segments) == 1:
            return segments[0][2](z)
        # split, not z[a:b]: each slice's backward fills a zero tensor of z's full size, which
        # made a step cost grow with the square of the number of candidates in the batch.
        parts = torch.split(z, sizes)
        return torch.cat([fn(part) for part, (_, _, fn) in zip(parts, segments, strict=True)])

    return act


def _make_forward(
    segments: Sequence[tuple[int, int, Activation]],
    pool_at: int | None = None,
    readout: bool = True,
) -> _Forward:
    """Returns forward(x, params) applying each segment's activation to its networks.

    With `pool_at` (set tasks), x is (networks, sets, k, d) and the hidden layers before
    index `pool_at` see each element; their outputs are summed over each set. Without
    `readout` it returns the last hidden layer's output (what tracing needs).
    """

    act = _segment_act(segments)

    def forward(x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        h = x if pool_at is None else x.flatten(1, 2)  # (networks, points, d)
        for layer, i in enumerate(range(0, len(params) - 2, 2)):
            if layer == pool_at:
                h = _sum_pool(h, x.shape[1])  # (networks, sets, width)
            h = act(torch.baddbmm(params[i + 1], h, params[i]))  # (networks, points, width)
        if not readout:
            return h
        out: torch.Tensor = Readout.apply(params[-1], h, params[-2])  # type: ignore[no-untyped-call]
        return out  # (networks, points, 1)

    return forward
