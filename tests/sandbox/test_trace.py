"""Tests for minact.sandbox.trace's sample: the same points as the full permutation gave."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from minact.sandbox import randperm, trace
from minact.sandbox.loader import Activation
from minact.sandbox.trace import BLOCK, EXTREMES, TRACE_POINTS, Tracer


def _full_permutation_sample(z: torch.Tensor, seed: int) -> tuple[float, ...]:
    """Returns the trace as sample() drew it with every index and a full randperm."""
    z = z[torch.isfinite(z)]
    if z.numel() > TRACE_POINTS:
        top = z.abs().topk(EXTREMES).indices
        rest = torch.from_numpy(np.delete(np.arange(z.numel(), dtype=np.int64), top.numpy()))
        gen = torch.Generator().manual_seed(seed)
        rest = rest[torch.randperm(rest.numel(), generator=gen)[: TRACE_POINTS - EXTREMES]]
        z = z[torch.cat([top, rest])]
    return tuple(float(f"{v:.9g}") for v in z.tolist())


def _tracer(pieces: list[torch.Tensor]) -> Tracer:
    tracer = Tracer([0], [torch.tanh], lambda fn: lambda x, params: fn(x))
    tracer._seen[0] = list(pieces)
    return tracer


@pytest.mark.parametrize("n", [0, 10, 256, 257, 300, 5_000, 200_003])
@pytest.mark.parametrize("seed", [0, 7, 2**59 + 12345])
def test_sample_is_bit_for_bit_the_full_permutations(n: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(n)
    z = torch.randn(n, generator=gen) * 3
    z[::97] = torch.round(z[::97])  # ties among the extremes and elsewhere
    z[5:n:1013] = float("nan")
    z[7:n:2011] = float("inf")
    pieces = [z[: n // 3], z[n // 3 :]]
    tracer = _tracer(pieces)
    assert tracer.sample(0, seed) == _full_permutation_sample(z, seed)
    assert tracer._seen[0] == []  # let go of: the pre-activations were the memory peak


@pytest.mark.parametrize("ties", [False, True])
def test_extremes_found_by_chunks_are_topks(monkeypatch: pytest.MonkeyPatch, ties: bool) -> None:
    monkeypatch.setattr(trace, "CHUNK", 1000)  # 50 chunks, the last one of 7 elements
    z = torch.randn(49_007, generator=torch.Generator().manual_seed(3))
    if ties:  # equal magnitudes among the extremes: topk's own choice is kept
        z[[10, 20_000, 49_006]] = torch.tensor([9.0, -9.0, 9.0])
    for seed in (0, 5):
        assert _tracer([z]).sample(0, seed) == _full_permutation_sample(z, seed)


@pytest.mark.parametrize("n", [1, 2, 3, 224, 225, 1000, 3_000_001])
def test_randperm_head_is_torchs(n: int) -> None:
    for seed in (0, 1, 2**40 + 3):
        expected = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:224]
        got = randperm.head(n, 224, seed)
        assert got is not None and np.array_equal(got, expected.numpy())


def test_randperm_head_declines_what_it_cannot_reproduce() -> None:
    assert randperm.head(randperm.SMALL_N, 224, 0) is None  # torch's 64-bit shuffle
    assert randperm.head(1000, 224, -1) is None


@pytest.mark.parametrize("batched", [False, True])
def test_other_seeds_add_the_ends_of_their_range_beyond_seed_0s(batched: bool) -> None:
    # Three jobs of 3, 1 and 2 networks; network n's pre-activations are the inputs, -1 to
    # 1, times (n + 1), so a later seed reaches further than its job's first.
    x = torch.linspace(-1.0, 1.0, 3 * BLOCK).reshape(1, -1, 1).repeat(6, 1, 1)
    x[5, 5, 0] = float("nan")  # a non-finite input is never a bound
    scale = torch.arange(1.0, 7.0).reshape(6, 1, 1)

    def forward_one(fn: Activation) -> Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]:
        return lambda x, params: fn(x * params[0])

    tracer = Tracer([0, 3, 4], [torch.tanh] * 3, forward_one, batched, counts=[3, 1, 2])
    tracer.snapshot([scale], x)
    first, alone, pair = (tracer.sample(j, 0) for j in range(3))
    assert len(first) == len(alone) == len(pair) == TRACE_POINTS
    assert first[-2:] == (-3.0, 3.0) and max(map(abs, first[:-2])) == 1.0
    assert max(map(abs, alone)) == 4.0 and alone[:2] == (-4.0, 4.0)  # a seed alone: its own
    assert pair[-2:] == (-6.0, 6.0) and max(map(abs, pair[:-2])) == 5.0
    tracer.snapshot([scale], x)  # the ranges are let go of with the sample, and found again
    assert tracer.sample(0, 0)[-2:] == (-3.0, 3.0)


def test_a_batched_trace_keeps_only_the_first_networks_pre_activations() -> None:
    # Two jobs of 3 networks: the other networks' pre-activations give only their ends, so
    # what the tracer keeps until `sample` must not be views holding all six networks'.
    x = torch.randn(6, BLOCK, 4)

    def forward_one(fn: Activation) -> Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]:
        return lambda x, params: fn(x * params[0])

    tracer = Tracer([0, 3], [torch.tanh] * 2, forward_one, batched=True, counts=[3, 3])
    tracer.snapshot([torch.ones(6, 1, 1)], x)
    kept = [z for seen in tracer._seen for z in seen]
    held = {z.untyped_storage().data_ptr(): z.untyped_storage().nbytes() for z in kept}
    assert sum(held.values()) == sum(z.numel() * z.element_size() for z in kept)
    assert [z.tolist() for z in kept] == [x[0].reshape(-1).tolist(), x[3].reshape(-1).tolist()]
