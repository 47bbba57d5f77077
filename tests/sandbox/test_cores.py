"""Tests for minact.sandbox.cores: the cores a process may use under a cgroup CPU quota."""

from __future__ import annotations

from pathlib import Path

import pytest

from minact.sandbox import cores, pool
from minact.sandbox.client import WorkerClient, WorkerSettings


def _tree(tmp_path: Path, files: dict[str, str], proc: str) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "proc").write_text(proc)
    return root, tmp_path / "proc"


def test_v2_quota_is_rounded_up_and_the_tightest_ancestor_binds(tmp_path: Path) -> None:
    root, proc = _tree(
        tmp_path,
        {"cpu.max": "max 100000\n", "a/cpu.max": "250000 100000\n", "a/b/cpu.max": "max 100000\n"},
        "0::/a/b\n",
    )
    assert cores.cgroup_cpu_limit(root, proc) == 3
    (root / "a/b/cpu.max").write_text("50000 100000\n")  # half a core still gets one
    assert cores.cgroup_cpu_limit(root, proc) == 1


def test_no_quota_unreadable_or_malformed_files_mean_no_limit(tmp_path: Path) -> None:
    root, proc = _tree(tmp_path, {"cpu.max": "max 100000\n"}, "0::/\n")
    assert cores.cgroup_cpu_limit(root, proc) is None
    (root / "cpu.max").write_text("lots\n")
    assert cores.cgroup_cpu_limit(root, proc) is None
    (root / "cpu.max").write_text("100000 0\n")
    assert cores.cgroup_cpu_limit(root, proc) is None
    assert cores.cgroup_cpu_limit(root, tmp_path / "missing") is None
    # A path the namespace hides (its folders absent) is searched from what exists.
    (proc).write_text("0::/../outside/x\n")
    assert cores.cgroup_cpu_limit(root, proc) is None


def test_v1_and_hybrid_hierarchies(tmp_path: Path) -> None:
    files = {
        "cpu,cpuacct/docker/c1/cpu.cfs_quota_us": "150000\n",
        "cpu,cpuacct/docker/c1/cpu.cfs_period_us": "100000\n",
        "unified/cgroup.procs": "",
    }
    root, proc = _tree(tmp_path, files, "12:memory:/docker/c1\n3:cpu,cpuacct:/docker/c1\n0::/\n")
    assert cores.cgroup_cpu_limit(root, proc) == 2
    (root / "cpu,cpuacct/docker/c1/cpu.cfs_quota_us").write_text("-1\n")
    assert cores.cgroup_cpu_limit(root, proc) is None
    (root / "unified/cpu.max").write_text("400000 100000\n")  # v2 beside v1 (hybrid)
    assert cores.cgroup_cpu_limit(root, proc) == 4


def test_cpu_cores_is_the_affinity_capped_by_the_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, proc = _tree(tmp_path, {"cpu.max": "100000 100000\n"}, "0::/\n")
    monkeypatch.setattr(cores, "affinity_cores", lambda: 64)
    assert cores.cpu_cores(root, proc) == 1
    (root / "cpu.max").write_text("max 100000\n")
    assert cores.cpu_cores(root, proc) == 64


def test_a_quota_sizes_auto_workers_and_a_single_worker_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A container limited to 2 cores on a 64-core host: two single-thread workers, not eight,
    # and one worker asked for by number gets the quota's threads, not torch's 64.
    monkeypatch.setattr(pool, "affinity_cores", lambda: 64)
    monkeypatch.setattr(pool, "cpu_cores", lambda: 2)
    auto = pool.local_workers(tmp_path / "w", WorkerSettings(device="cpu"), 0)
    assert isinstance(auto, pool.WorkerPool) and auto.size == 2
    assert [c.settings.threads for c in auto.clients] == [1, 1]
    one = pool.local_workers(tmp_path / "w", WorkerSettings(device="cpu"), 1)
    assert isinstance(one, WorkerClient) and one.settings.threads == 2
