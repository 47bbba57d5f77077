"""The head of torch.randperm on the CPU, without the permutation: the trace's sampler.

torch.randperm(n, generator=g) on the CPU, for n below SMALL_N, is a forward Fisher-Yates
shuffle of range(n): for i in 0 .. n-2 it swaps places i and i + (r_i mod (n - i)), where r_i
is the i-th 32-bit output of g's Mersenne Twister (MT19937 seeded by init_genrand with the
seed's low 32 bits, numpy's legacy RandomState seeding). Its first k places are settled by the
first k draws, so they can be had in O(k) memory; randperm itself takes 8 bytes per element.
Above SMALL_N torch draws 64-bit numbers in an inside-out shuffle, where every place depends
on all n draws: `head` returns None there, and for a torch whose randperm this does not
reproduce (checked once per process, on a permutation small enough to compute).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["SMALL_N", "head"]

# torch's randperm_cpu keeps the 32-bit shuffle for n < uint32 max / 20 (its "old behavior").
SMALL_N = (2**32 - 1) // 20


def head(n: int, k: int, seed: int) -> npt.NDArray[np.int64] | None:
    """Returns torch.randperm(n, generator=manual_seed(seed))[:k] on the CPU, as int64, or
    None where it cannot be computed without the permutation (module docstring)."""
    if not 0 <= seed < 2**64 or n >= SMALL_N or not _reproduces_torch():
        return None
    return _head(n, k, seed)


def _head(n: int, k: int, seed: int) -> npt.NDArray[np.int64]:
    """Returns the first min(k, n) places of the forward shuffle of range(n) (docstring)."""
    k = min(k, n)
    draws = max(0, min(k, n - 1))
    # The raw 32-bit outputs, as torch's generator gives them (a range of exactly 2**32
    # takes each output as it is; RandomState's stream is fixed by numpy's NEP 19).
    raw = np.random.RandomState(seed & 0xFFFFFFFF).randint(0, 2**32, draws, dtype=np.uint64)
    moved: dict[int, int] = {}  # place -> the value swapped into it; the others hold their own
    out = np.empty(k, dtype=np.int64)
    for i in range(k):
        if i < draws:
            j = i + int(raw[i]) % (n - i)
            out[i] = moved.get(j, j)
            moved[j] = moved.get(i, i)
        else:  # the last place of range(n): no draw, it keeps what it holds
            out[i] = moved.get(i, i)
    return out


@functools.cache
def _reproduces_torch() -> bool:
    """Returns whether `_head` agrees with this torch's randperm on a few small cases."""
    for n, seed in ((1, 3), (2, 5), (300, 7), (5000, 2**40 + 11)):
        gen = torch.Generator().manual_seed(seed)
        expected = torch.randperm(n, generator=gen)[:224].numpy()
        if not np.array_equal(_head(n, 224, seed), expected):
            return False
    return True
