"""Tests for --backend and --ray-address where Ray is absent or not asked for."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minact.cli import app
from tests.conftest import TINY_TASKS

runner = CliRunner()


@pytest.mark.parametrize("command", [["score", "gelu"], ["evolve", "--offline"], ["rescore"]])
def test_a_ray_address_without_the_ray_backend_is_a_usage_error(
    tmp_path: Path, command: list[str]
) -> None:
    args = [*command, "--tasks", str(TINY_TASKS), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, [*args, "--ray-address", "auto"])
    assert result.exit_code == 2
    assert "--ray-address" in result.stderr and "needs --backend ray" in result.stderr
    assert not (tmp_path / "c").exists()


def test_the_ray_backend_without_ray_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    args = ["score", "gelu", "--tasks", str(TINY_TASKS), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, [*args, "--backend", "ray"])
    assert result.exit_code == 1
    assert "--backend ray needs Ray" in result.stderr
    assert "pip install 'minact[ray]'" in result.stderr
