"""How many CPU cores this process may use: its affinity, capped by a cgroup CPU quota.

A container started with `docker run --cpus=2` on a 64-core host sees 64 cores in its
affinity mask, but the kernel throttles it to two cores' worth of time per period. Sized by
the mask, `--workers auto` would start eight single-thread workers (and torch its default
threads) that wait on each other in turn. The quota is read from the cgroup file system
(v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) along the process's cgroup
path; the smallest limit on the way to the root is the one that binds. This module does not
import torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

__all__ = ["affinity_cores", "cgroup_cpu_limit", "cpu_cores"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def affinity_cores() -> int:
    """Returns the cores in this process's affinity mask (os.cpu_count() where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_cores(root: Path = CGROUP_ROOT, proc: Path = PROC_CGROUP) -> int:
    """Returns the cores this process may run on: its affinity, capped by a CPU quota."""
    cores = affinity_cores()
    limit = cgroup_cpu_limit(root, proc)
    return cores if limit is None else max(1, min(cores, limit))


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc: Path = PROC_CGROUP) -> int | None:
    """Returns the cgroup CPU quota in whole cores (rounded up), or None without one or
    where the cgroup files cannot be read."""
    try:
        lines = proc.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    limits = [q for folder in _folders(root, lines) if (q := _quota(folder)) is not None]
    return min(limits) if limits else None


def _folders(root: Path, lines: list[str]) -> Iterator[Path]:
    """Yields the cgroup folders of the CPU controller from the process's cgroup down to
    the root: v2's unified hierarchy ("0::/path") and v1's cpu hierarchy ("N:cpu,...:/path")."""
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2; a hybrid system mounts it at unified/
            base = root / "unified" if (root / "unified").is_dir() else root
        elif "cpu" in controllers.split(","):
            base = next((d for d in (root / controllers, root / "cpu") if d.is_dir()), root)
        else:
            continue
        here = PurePosixPath(path if path.startswith("/") else "/" + path)
        # The namespace may hide the path above the container: its folders may not exist.
        for p in (here, *here.parents):
            folder = base / str(p).lstrip("/")
            if folder.is_dir():
                yield folder


def _quota(folder: Path) -> int | None:
    """Returns the quota set in one cgroup folder in whole cores, or None where unlimited."""
    try:
        if (folder / "cpu.max").is_file():
            fields = (folder / "cpu.max").read_text(encoding="ascii").split()
            quota, period = fields[0], fields[1] if len(fields) > 1 else "100000"
        elif (folder / "cpu.cfs_quota_us").is_file():
            quota = (folder / "cpu.cfs_quota_us").read_text(encoding="ascii").strip()
            period = (folder / "cpu.cfs_period_us").read_text(encoding="ascii").strip()
        else:
            return None
        if quota == "max" or int(quota) <= 0 or int(period) <= 0:
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
