"""A cache whose database another process holds locked is said to be in use, not damaged."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from minact import cache as cache_module
from minact.cache import FitnessCache
from minact.errors import CacheError


def test_a_locked_cache_is_named_as_in_use_not_as_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What SQLite says once another process has held the write lock past the wait (a
    # minute in diskcache, which this test does not spend).
    def locked(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(cache_module.diskcache, "Cache", locked)
    with pytest.raises(CacheError) as e:
        FitnessCache(tmp_path / "c", "1")
    said = str(e.value)
    assert f"cannot open the cache at {tmp_path / 'c'}: another process kept" in said
    assert "damaged" not in said
