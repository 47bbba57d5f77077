"""Whether `--device auto` could choose a GPU on this machine, told without importing torch.

The worker resolves `auto` with torch.cuda.is_available(), which the main process cannot
ask (it never imports torch) without starting a worker, seconds of a run that may need
none. A GPU that torch's CUDA (or ROCm) build can use shows device nodes: /dev/nvidia*
(NVIDIA's driver), /dev/dxg (WSL 2), /dev/kfd (AMD's ROCm). Where none exists, `auto` is
the CPU for sure; where one does, only the worker can tell. CUDA_VISIBLE_DEVICES set empty
or to -1 hides every GPU from torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["gpu_possible"]

DEV = Path("/dev")
_NODES = ("nvidiactl", "nvidia0", "dxg", "kfd")


def gpu_possible(dev: Path = DEV, environ: Mapping[str, str] | None = None) -> bool:
    """Returns whether torch might find a GPU here (False: `--device auto` is the CPU)."""
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any((dev / name).exists() for name in _NODES)
