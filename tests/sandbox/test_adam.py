"""Tests for minact.sandbox.adam: the hand-written Adam against torch.optim.Adam."""

from __future__ import annotations

import itertools

import pytest
import torch

from minact.sandbox.adam import Adam


def _train(dtype: torch.dtype, use_torch: bool, steps: int = 50) -> list[torch.Tensor]:
    """Returns the weights of a 3-16-16-1 tanh MLP after `steps` full-batch Adam steps,
    with minact's Adam or `torch.optim.Adam(foreach=False)`."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=gen, dtype=dtype)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    sizes = [3, 16, 16, 1]
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        params.append(torch.randn(fan_in, fan_out, generator=gen, dtype=dtype) / fan_in**0.5)
        params.append(torch.zeros(fan_out, dtype=dtype))
    for p in params:
        p.requires_grad_(True)
    opt: torch.optim.Optimizer | Adam
    opt = torch.optim.Adam(params, lr=0.01, foreach=False) if use_torch else Adam(params, 0.01)
    for _ in range(steps):
        for p in params:
            p.grad = None
        h = x
        for i in range(0, len(params) - 2, 2):
            h = torch.tanh(h @ params[i] + params[i + 1])
        loss = ((h @ params[-2] + params[-1] - y) ** 2).mean()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize(
    ("dtype", "rtol", "atol"), [(torch.float64, 1e-10, 1e-13), (torch.float32, 1e-4, 1e-6)]
)
def test_adam_follows_torch_optim_adam(dtype: torch.dtype, rtol: float, atol: float) -> None:
    # Not bit for bit: torch's single-tensor Adam updates m with lerp, divides sqrt(v) by
    # sqrt(1 - beta2^t) and applies the step with addcdiv, where ours computes m*beta1 +
    # g*(1-beta1), sqrt(v / (1 - beta2^t)) and p - m / denom * step, each exactly rounded
    # (adam.py says why). Same algorithm, different rounding: after 50 steps the weights
    # agree to ~1e-15 in float64, and in float32 to the few ulps that training amplifies.
    ours = _train(dtype, use_torch=False)
    theirs = _train(dtype, use_torch=True)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    start = _train(dtype, use_torch=False, steps=0)
    assert any(not torch.equal(a, s) for a, s in zip(ours, start, strict=True))  # it moved
