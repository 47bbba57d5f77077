"""The one-unit output layer of the batched MLPs: baddbmm's numbers, at a fraction of its cost.

With an output of one unit, both matrix-vector products of the layer took slow paths of
torch's batched gemm: `baddbmm(b, h, w)` forward and `h^T @ grad` backward each cost as much
as the 32 x 32 hidden layer's product (340 and 420 us for 100 networks of 128 x 32 on one
thread; bench/RESULTS.md, 2026-11-30). Written as products that MKL computes on its fast
path (about 160 us, the concatenation included, and 45 us), they give the same bits: each
output is the same sequence of exactly rounded products and adds, in the same order (checked by
tests/sandbox/test_trainer.py and, for whole trainings, bench/bitwise.py).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Readout", "readout"]


def readout(b: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Returns `torch.baddbmm(b, h, w)`, bit for bit: (networks, points, outputs)."""
    if not _one_unit(h, w) or b.shape[-2:] != (1, 1):
        return torch.baddbmm(b, h, w)
    # baddbmm computes each output as ((b + h_0 w_0) + h_1 w_1) + ..., one product and one add
    # at a time. A dot product that starts from 0 computes the same sum once b is its first
    # term (0 + 1 * b is b): a column of ones in front of h, b in front of w.
    ones = h.new_ones(h.shape[0], h.shape[1], 1)
    h1 = torch.cat([ones, h], dim=2)  # (networks, points, 1 + width)
    w1 = torch.cat([b.expand(h.shape[0], 1, 1), w], dim=1)  # (networks, 1 + width, 1)
    # (1 x k) @ (k x points), k contiguous: the form whose sum MKL adds in order.
    return w1.transpose(1, 2).bmm(h1.transpose(1, 2)).transpose(1, 2)


def _one_unit(h: torch.Tensor, w: torch.Tensor) -> bool:
    """Returns whether the fast forms apply: one output, h laid out as the tests check it."""
    return w.shape[-1] == 1 and h.dim() == 3 and h.is_contiguous()


class Readout(torch.autograd.Function):
    """baddbmm(b, h, w) for a one-unit output layer: (networks, points, 1).

    Its backward computes what autograd's baddbmm backward computes. The gradient for h,
    grad @ w^T with an inner size of 1, is a broadcast product: bmm took as long for that
    outer product as for the 32 x 32 hidden layer's. Each element is one product either
    way, exactly rounded; `+ 0.0` gives an exact zero bmm's sign (+0, where -0 * w is -0).
    The gradient for w, h^T @ grad, is computed as (grad^T @ h)^T: the same sums in the same
    order, on MKL's fast path (module docstring).
    """

    @staticmethod
    def forward(ctx: Any, b: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, w)
        return readout(b, h, w)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, w = ctx.saved_tensors
        need_b, need_h, need_w = ctx.needs_input_grad
        one = _one_unit(h, w)
        # b's gradient is grad itself: autograd sums it over the points, as for baddbmm.
        grad_b = grad if need_b else None
        grad_h = None
        if need_h:
            grad_h = (grad * w.transpose(1, 2)).add_(0.0) if one else grad.bmm(w.transpose(1, 2))
        grad_w = None
        if need_w:
            if one:
                grad_w = grad.contiguous().transpose(1, 2).bmm(h).transpose(1, 2)
            else:
                grad_w = h.transpose(1, 2).bmm(grad)
        return grad_b, grad_h, grad_w
