"""Tests for minact.sandbox.adam: the hand-written Adam against torch.optim.Adam."""

from __future__ import annotations

import itertools

import pytest
import torch

from minact.sandbox.adam import Adam, packed


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


def _shapes_and_grads() -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Returns stacked initial weights and 20 steps' gradients, with zeros of both signs."""
    gen = torch.Generator().manual_seed(1)
    start = [
        torch.randn(*s, generator=gen) for s in [(5, 3, 16), (5, 1, 16), (5, 16, 1), (5, 1, 1)]
    ]
    grads = []
    for _ in range(20):
        step = [torch.randn(p.shape, generator=gen) for p in start]
        step[0][:, 0] = 0.0
        step[0][:, 1] = -0.0
        grads.append(step)
    return start, grads


def _run(params: list[torch.Tensor], grads: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    opt = Adam(params, 0.01)
    for step in grads:
        for p, g in zip(params, step, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach().clone() for p in params]


def test_packed_parameters_update_bit_for_bit_like_separate_ones() -> None:
    start, grads = _shapes_and_grads()
    separate = _run([p.clone().requires_grad_(True) for p in start], grads)
    params = packed(start)
    assert all(p.is_leaf and p.requires_grad for p in params)
    together = _run(params, grads)
    for a, b in zip(separate, together, strict=True):
        assert torch.equal(a.view(torch.int32), b.view(torch.int32))  # bits, zeros' signs too


def test_a_packed_parameter_without_a_gradient_is_left_alone() -> None:
    start, grads = _shapes_and_grads()
    params = packed(start)
    opt = Adam(params, 0.01)
    for p, g in zip(params, grads[0], strict=True):
        p.grad = g
    params[1].grad = None
    opt.step()
    assert torch.equal(params[1].detach(), start[1])
    assert not torch.equal(params[0].detach(), start[0])
