"""Adam for stacked networks, with results that do not depend on what shares the batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["Adam", "packed"]


def packed(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Returns leaf copies of `tensors` that require grad, stored back to back in one buffer."""
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    out: list[torch.Tensor] = []
    for t, part in zip(tensors, torch.split(flat, [t.numel() for t in tensors]), strict=True):
        out.append(part.view(t.shape).detach().requires_grad_(True))
    return out


class Adam:
    """Adam (Kingma & Ba 2015, bias-corrected) written with exactly rounded elementwise ops.

    torch.optim.Adam's fused and foreach kernels take vectorised paths (with FMA) for the
    bulk of a tensor and scalar paths for its tail, so a network's update depended on its
    position in the batch by an ulp, which 400 steps amplify into visible score changes.
    Multiply, add, divide and sqrt round the same on either path, so here a network's
    numbers are the same whatever else shares its batch.

    For the same reason an element's update does not depend on which tensor holds it:
    parameters made by `packed` lie in one buffer, and each step updates that buffer with
    one pass of the same ops instead of one pass per parameter.
    """

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params = params
        self.lr = lr
        self.beta1, self.beta2, self.eps = 0.9, 0.999, 1e-8
        self.t = 0
        sizes = [p.numel() for p in params]
        self._flat = _buffer(params)
        like = params[0] if params else torch.zeros(0)
        m, v = (like.new_zeros(sum(sizes)) for _ in range(2))
        self._flat_m, self._flat_v = m, v
        self._flat_g = torch.empty_like(m) if self._flat is not None else None
        self._tmp: tuple[torch.Tensor, torch.Tensor] | None = None
        # Per-parameter views of the same moments, for a step where some grads are missing.
        self._m = [s.view(p.shape) for s, p in zip(torch.split(m, sizes), params, strict=True)]
        self._v = [s.view(p.shape) for s, p in zip(torch.split(v, sizes), params, strict=True)]

    @torch.no_grad()
    def step(self) -> None:
        """Applies one update to every parameter that has a gradient."""
        self.t += 1
        c1 = 1 - self.beta1**self.t
        c2 = 1 - self.beta2**self.t
        grads = [p.grad for p in self.params]
        if (
            self._flat is not None
            and self._flat_g is not None
            and all(g is not None for g in grads)
        ):
            torch.cat([g.reshape(-1) for g in grads if g is not None], out=self._flat_g)
            self._update(self._flat, self._flat_g, self._flat_m, self._flat_v, c1, c2)
            return
        for p, g, m, v in zip(self.params, grads, self._m, self._v, strict=True):
            if g is not None:
                self._update(p, g, m, v, c1, c2)

    def _update(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        m: torch.Tensor,
        v: torch.Tensor,
        c1: float,
        c2: float,
    ) -> None:
        # The same ops as m = b1 m + (1 - b1) g, ..., into two scratch buffers: a step's
        # temporaries were 5 allocations the size of all parameters.
        a, b = self._scratch(g)
        m.mul_(self.beta1).add_(torch.mul(g, 1 - self.beta1, out=a))
        v.mul_(self.beta2).add_(torch.mul(g, g, out=a).mul_(1 - self.beta2))
        denom = torch.div(v, c2, out=b).sqrt_().add_(self.eps)
        p.sub_(torch.div(m, denom, out=a).mul_(self.lr / c1))

    def _scratch(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns two buffers of `like`'s shape, kept for the packed update."""
        if self._tmp is not None and self._tmp[0].shape == like.shape:
            return self._tmp
        pair = (torch.empty_like(like), torch.empty_like(like))
        if self._flat is not None and like.shape == self._flat.shape:
            self._tmp = pair
        return pair


def _buffer(params: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """Returns a flat view of all `params` if they lie back to back, in order, in one buffer."""
    if not params:
        return None
    first = params[0]
    storage = first.untyped_storage().data_ptr()
    ptr = first.data_ptr()
    for p in params:
        if (
            not p.is_contiguous()
            or p.dtype != first.dtype
            or p.untyped_storage().data_ptr() != storage
            or p.data_ptr() != ptr
        ):
            return None
        ptr += p.numel() * p.element_size()
    return first.detach().as_strided((sum(p.numel() for p in params),), (1,))
