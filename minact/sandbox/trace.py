"""Traces: a sample of the pre-activations an activation saw in training, to verify reuse.

While a candidate trains on a task, the worker records the inputs its activation receives
in the task's first network (seed 0, every hidden layer): with the initial weights, half
way through training, and with the final weights on the training and the OOD inputs. A
sample of TRACE_POINTS of them (the EXTREMES largest in magnitude, the rest at random) is
kept with the task's result. Another code with the same behaviour hash may reuse that
result only if it computes the same f and f' at these points, in float32 (verify.py): it
is checked on what training actually fed the activation, not only on a probe grid.

The task's other networks (seeds 1, 2, ...) start from other weights and may reach further:
of theirs, the lowest and the highest finite input at the same moments are kept too, where
they lie beyond seed 0's, so the check (and the dense check's far points, out to the
trace's largest magnitude) reaches every input any seed's training fed the activation.
`F.gelu(torch.clamp(x, -100, 100))` does not reuse F.gelu's result where seed 0 reached
90 and seed 2 reached 150 (the dense check's grid over [-REACH, REACH] stops at 64).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch

from minact.sandbox import randperm
from minact.sandbox.loader import Activation

__all__ = ["EXTREMES", "TRACE_POINTS", "Tracer"]

TRACE_POINTS = 256
EXTREMES = 32
# Elements per network that batched tracing needs a multiple of: whole vectors, two at a time
# (AVX-512), in each thread's share too.
BLOCK = 128
# The extremes are found a chunk of pre-activations at a time (_extremes).
CHUNK = 1 << 20

_Forward = Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]


class Tracer:
    """Records the pre-activations of one network per job (its seed 0) at chosen moments,
    and the span of its other networks' (seeds 1, 2, ...)."""

    def __init__(
        self,
        firsts: Sequence[int],
        fns: Sequence[Activation],
        forward_one: Callable[[Activation], _Forward],
        batched: bool = False,
        counts: Sequence[int] | None = None,
    ) -> None:
        """`firsts[j]` is the index of job j's first network, `counts[j]` its number of
        networks (1 each where not given); `forward_one(fn)` a forward.

        With `batched`, the traced networks of consecutive jobs that share an activation
        run as one batch (forward_one must then take any number of networks), where each
        network's block of pre-activations is a multiple of BLOCK elements.
        """
        self._firsts = list(firsts)
        self._counts = list(counts) if counts is not None else [1] * len(self._firsts)
        self._fns = list(fns)
        self._forward_one = forward_one
        self._batched = batched
        self._seen: list[list[torch.Tensor]] = [[] for _ in self._firsts]
        # The lowest and highest finite input job j's other networks fed the activation.
        # Kept as tensors on the training device: a float() each would wait for the GPU.
        self._span: list[list[torch.Tensor]] = [[] for _ in self._firsts]

    def _widen(self, job: int, z: torch.Tensor) -> None:
        """Widens job's span of its other networks' inputs by the finite values of `z`
        (an infinite end where it has none)."""
        z = z.detach().reshape(-1)
        if z.numel():
            finite = torch.isfinite(z)
            lo = torch.where(finite, z, math.inf).amin()
            hi = torch.where(finite, z, -math.inf).amax()
            self._span[job].append(torch.stack([lo, hi]).float())

    def snapshot(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> None:
        """Runs each traced network on its inputs `x` and records what its activation sees."""
        with torch.no_grad():
            if self._batched and self._snapshot_batched(params, x):
                return
            for j, (first, fn) in enumerate(zip(self._firsts, self._fns, strict=True)):
                for n in range(first, first + self._counts[j]):

                    def tap(
                        z: torch.Tensor, fn: Activation = fn, j: int = j, n: int = n
                    ) -> torch.Tensor:
                        if n == self._firsts[j]:
                            self._seen[j].append(z.detach().reshape(-1).float().cpu())
                        else:  # only its ends are kept: no copy off the device
                            self._widen(j, z)
                        return fn(z)

                    self._forward_one(tap)(x[n : n + 1], [p[n : n + 1] for p in params])

    def _snapshot_batched(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> bool:
        """Records as `snapshot` does, a batch per activation; False (nothing kept) if it can't.

        One network alone or in a batch sees the same bits when elementwise kernels treat
        every element alike, that is when no network's block ends in a partial vector,
        which the vectorised kernels finish on a scalar path; otherwise the networks are
        traced one by one, as before. A forward per job cost 3% of the default lab's
        training (100 jobs, 4 snapshots).
        """
        runs: list[tuple[Activation, list[int]]] = []
        for j, fn in enumerate(self._fns):
            if runs and runs[-1][0] is fn:
                runs[-1][1].append(j)
            else:
                runs.append((fn, [j]))
        taps: list[tuple[list[int], list[torch.Tensor]]] = []
        for fn, jobs in runs:
            seen: list[torch.Tensor] = []

            def tap(
                z: torch.Tensor, fn: Activation = fn, seen: list[torch.Tensor] = seen
            ) -> torch.Tensor:
                seen.append(z.detach())
                return fn(z)

            nets = [range(self._firsts[j], self._firsts[j] + self._counts[j]) for j in jobs]
            idx = torch.tensor([n for r in nets for n in r])
            self._forward_one(tap)(x.index_select(0, idx), [p.index_select(0, idx) for p in params])
            if any(z[0].numel() % BLOCK for z in seen):
                self._batched = False
                return False
            taps.append((jobs, seen))
        for jobs, seen in taps:
            heads = list(itertools.accumulate((self._counts[j] for j in jobs[:-1]), initial=0))
            others = heads[-1] + self._counts[jobs[-1]] > len(jobs)
            # The first networks' blocks alone, where the batch held others too: on CPU, a
            # view kept until `sample` would hold every network's pre-activations.
            on_cpu = bool(seen) and seen[0].device.type == "cpu"
            at = torch.tensor(heads) if on_cpu and others else None
            for z in seen:
                first = z if at is None else z.index_select(0, at)
                for i, (j, k) in enumerate(zip(jobs, heads, strict=True)):
                    self._seen[j].append(first[i].reshape(-1).float().cpu())
                    if self._counts[j] > 1:
                        self._widen(j, z[k + 1 : k + self._counts[j]])
        return True

    def sample(self, job: int, seed: int) -> tuple[float, ...]:
        """Returns job's trace: up to TRACE_POINTS finite pre-activations, float32-exact.

        The job's recorded pre-activations are let go of: each job is sampled once.
        """
        seen, self._seen[job] = self._seen[job], []
        z = torch.cat(seen) if seen else torch.zeros(0)
        del seen  # the pieces are views of what training computed: only z is needed now
        finite = torch.isfinite(z)
        if not bool(finite.all()):  # a boolean index costs a full pass more; mostly a copy
            z = z[finite]
        del finite
        beyond = self._beyond(job, z)
        room = TRACE_POINTS - len(beyond)
        if z.numel() > room:
            # topk, not a full sort: sorting every pre-activation of 100 tasks took 0.7 s
            # of a candidate's 11 s on a loaded CPU (bench/RESULTS.md, overhead).
            top = _extremes(z)
            rest = _rest(z.numel(), top.numpy(), room - EXTREMES, seed)
            z = z[torch.cat([top, rest])]
        # 9 significant digits round-trip a float32 exactly and keep the JSON short.
        return tuple(float(f"{v:.9g}") for v in z.tolist() + beyond)

    def _beyond(self, job: int, z: torch.Tensor) -> list[float]:
        """Returns the ends of job's span of other networks' inputs that lie outside the
        finite values `z` of its first network, lowest first; the span is let go of."""
        spans, self._span[job] = self._span[job], []
        if not spans:
            return []
        both = torch.stack(spans)
        lo, hi = float(both[:, 0].amin()), float(both[:, 1].amax())
        low, high = (float(z.min()), float(z.max())) if z.numel() else (math.inf, -math.inf)
        return [v for v, out in ((lo, lo < low), (hi, hi > high)) if out and math.isfinite(v)]


def _extremes(z: torch.Tensor) -> torch.Tensor:
    """Returns z.abs().topk(EXTREMES).indices, from the top of each CHUNK where that is the
    same: torch's topk holds a (value, index) pair, 16 bytes, for each of z's elements."""
    if z.numel() <= CHUNK:
        return z.abs().topk(EXTREMES).indices
    values, indices = [], []
    for start in range(0, z.numel(), CHUNK):
        v, i = z[start : start + CHUNK].abs().topk(min(EXTREMES + 1, len(z) - start))
        values.append(v)
        indices.append(i + start)
    v, order = torch.cat(values).topk(EXTREMES + 1)
    # Ties leave topk's choice (and order) to its sort: only distinct values decide alone.
    if bool((v[1:] == v[:-1]).any()):
        return z.abs().topk(EXTREMES).indices
    return torch.cat(indices)[order[:EXTREMES]]


def _rest(n: int, top: npt.NDArray[np.int64], k: int, seed: int) -> torch.Tensor:
    """Returns k indices of range(n) not in `top`, drawn as randperm of the others chose them.

    The others in increasing order, permuted by torch.randperm(n - len(top)) of a generator
    seeded with `seed`, give the first k: only those k are computed here (randperm.py).
    Materialising the others and the permutation took 4 bytes for each of the n float32
    pre-activations, twice over, at once: the worker's memory peak on large tasks.
    """
    m = n - len(top)
    picks = randperm.head(m, k, seed)
    if picks is None:  # a torch whose randperm we cannot reproduce: the full permutation
        gen = torch.Generator().manual_seed(seed)
        picks = torch.randperm(m, generator=gen)[:k].numpy()
    # The rank-r index not in `top` is r plus the number of top indices at or below it;
    # top's k-th smallest (0-based) minus k is the first rank that passes it.
    gaps = np.sort(top) - np.arange(len(top))
    chosen = picks + np.searchsorted(gaps, picks, side="right")
    return torch.from_numpy(chosen.astype(np.int64))
