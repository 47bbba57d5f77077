"""The worker's C heap: keep freed memory for the next training step instead of returning it.

Every training step allocates and frees the same few tensors of about 1 MB each (a
layer's activations and their gradients, for 30 networks of 256 points x 32 units).
glibc's malloc gives large freed blocks back to the kernel (munmap, or trimming the top
of the heap), so the next step takes fresh pages, and each first touch of a page is a
fault: up to 640,000 faults per candidate on the classic lab, and as much system time as
training itself (bench/training.py). With fixed thresholds, blocks of up to 32 MB come
from the heap, which is never trimmed, and steps reuse the same pages. The numbers do
not change: torch aligns every tensor the same way wherever its memory comes from.
"""

from __future__ import annotations

import ctypes

__all__ = ["keep_freed_memory"]

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest on 64-bit (HEAP_MAX_SIZE / 2)
_TRIM_THRESHOLD = 2**31 - 1  # an int; in effect never


def keep_freed_memory() -> bool:
    """Returns whether malloc now keeps freed memory for reuse (glibc only; elsewhere a no-op)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows): left as it is
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Both: setting either one also stops glibc from moving the other with each free.
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
