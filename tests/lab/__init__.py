"""Tests of the lab: its records, the tasks.toml loader, the expression language, sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from minact.errors import ConfigError
from minact.lab.loader import load_lab


def load_error(tmp_path: Path, text: str) -> str:
    """Returns the message of the ConfigError that loading `text` as a tasks file raises,
    checked to be one line that names the file."""
    path = tmp_path / "lab.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_lab(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message
