"""minact: mine activation functions that generalise out of distribution."""

from __future__ import annotations

__version__ = "0.1.0"
