"""Traces: a sample of the pre-activations an activation saw in training, to verify reuse.

While a candidate trains on a task, the worker records the inputs its activation receives
in the task's first network (seed 0, every hidden layer): with the initial weights, half
way through training, and with the final weights on the training and the OOD inputs. A
sample of TRACE_POINTS of them (the EXTREMES largest in magnitude, the rest at random) is
kept with the task's result. Another code with the same behaviour hash may reuse that
result only if it computes the same f and f' at these points, in float32 (verify.py): it
is checked on what training actually fed the activation, not only on a probe grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from minact.sandbox.loader import Activation

__all__ = ["EXTREMES", "TRACE_POINTS", "Tracer"]

TRACE_POINTS = 256
EXTREMES = 32

_Forward = Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]


class Tracer:
    """Records the pre-activations of one network per job (its seed 0) at chosen moments."""

    def __init__(
        self,
        firsts: Sequence[int],
        fns: Sequence[Activation],
        forward_one: Callable[[Activation], _Forward],
    ) -> None:
        """`firsts[j]` is the index of job j's first network; `forward_one(fn)` a forward."""
        self._firsts = list(firsts)
        self._fns = list(fns)
        self._forward_one = forward_one
        self._seen: list[list[torch.Tensor]] = [[] for _ in self._firsts]

    def snapshot(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> None:
        """Runs each traced network on its inputs `x` and records what its activation sees."""
        with torch.no_grad():
            for n, fn, seen in zip(self._firsts, self._fns, self._seen, strict=True):

                def tap(
                    z: torch.Tensor, fn: Activation = fn, seen: list[torch.Tensor] = seen
                ) -> torch.Tensor:
                    seen.append(z.detach().reshape(-1).float().cpu())
                    return fn(z)

                self._forward_one(tap)(x[n : n + 1], [p[n : n + 1] for p in params])

    def sample(self, job: int, seed: int) -> tuple[float, ...]:
        """Returns job's trace: up to TRACE_POINTS finite pre-activations, float32-exact."""
        seen = self._seen[job]
        z = torch.cat(seen) if seen else torch.zeros(0)
        z = z[torch.isfinite(z)]
        if z.numel() > TRACE_POINTS:
            # topk, not a full sort: sorting every pre-activation of 100 tasks took 0.7 s
            # of a candidate's 11 s on a loaded CPU (bench/RESULTS.md, overhead).
            top = z.abs().topk(EXTREMES).indices
            others = torch.ones(z.numel(), dtype=torch.bool)
            others[top] = False
            rest = others.nonzero().squeeze(1)
            gen = torch.Generator().manual_seed(seed)
            rest = rest[torch.randperm(rest.numel(), generator=gen)[: TRACE_POINTS - EXTREMES]]
            z = z[torch.cat([top, rest])]
        # 9 significant digits round-trip a float32 exactly and keep the JSON short.
        return tuple(float(f"{v:.9g}") for v in z.tolist())
