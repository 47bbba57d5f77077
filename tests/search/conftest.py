"""Fixtures shared by the search tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.llm_server import LLMServer


@pytest.fixture
def server() -> Iterator[LLMServer]:
    """Yields a fresh loopback server (its default reply is GOOD_REPLY, streamed)."""
    with LLMServer() as s:
        yield s
