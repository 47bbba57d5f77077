"""Static validation of candidate source, in the main process, without running anything.

`validate(source)` returns a normalised Candidate (with its code hash) or a Rejection with
a reason the author can act on. The rules are an allow-list (primitives.py); the normal
form (normalise.py) makes `code_hash` independent of formatting, comments and import style.
"""

from __future__ import annotations

from minact.validate.limits import MAX_LOOP_ITERATIONS, ValidationError
from minact.validate.source import (
    MAX_NODES,
    MAX_SOURCE_CHARS,
    MAX_TEXT_CHARS,
    MAX_TEXT_NODES,
    code_hash,
    decode_source,
    validate,
)

__all__ = [
    "MAX_LOOP_ITERATIONS",
    "MAX_NODES",
    "MAX_SOURCE_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_TEXT_NODES",
    "ValidationError",
    "code_hash",
    "decode_source",
    "validate",
]
