"""Adam for stacked networks, with results that do not depend on what shares the batch."""

from __future__ import annotations

import torch

__all__ = ["Adam"]


class Adam:
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
        """Applies one update to every parameter that has a gradient."""
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
