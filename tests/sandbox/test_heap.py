"""Tests for minact.sandbox.heap: keeping freed memory is allowed where glibc is."""

from __future__ import annotations

import platform
import sys

from minact.sandbox import heap


def test_keep_freed_memory_takes_effect_on_glibc_and_is_a_no_op_elsewhere() -> None:
    glibc = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert heap.keep_freed_memory() is glibc
    assert heap.keep_freed_memory() is glibc  # calling it again is harmless
