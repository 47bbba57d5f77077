"""Tests for minact.sandbox.devices: whether --device auto could be a GPU, without torch."""

from __future__ import annotations

from pathlib import Path

import pytest

from minact.sandbox.devices import gpu_possible


@pytest.mark.parametrize("node", ["nvidiactl", "nvidia0", "dxg", "kfd"])
def test_a_gpu_device_node_makes_a_gpu_possible(tmp_path: Path, node: str) -> None:
    (tmp_path / node).touch()
    assert gpu_possible(tmp_path, {})
    assert gpu_possible(tmp_path, {"CUDA_VISIBLE_DEVICES": "0"})


@pytest.mark.parametrize("hidden", ["", "-1", " -1 "])
def test_cuda_visible_devices_can_hide_every_gpu(tmp_path: Path, hidden: str) -> None:
    (tmp_path / "nvidia0").touch()
    assert not gpu_possible(tmp_path, {"CUDA_VISIBLE_DEVICES": hidden})


def test_no_device_node_is_the_cpu(tmp_path: Path) -> None:
    (tmp_path / "null").touch()
    (tmp_path / "nvme0").touch()  # a disk, not a GPU
    assert not gpu_possible(tmp_path, {})
