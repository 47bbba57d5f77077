"""What a candidate is, and the closed set of ways it can fail.

Records here are frozen and flow forward: each stage returns new records. No I/O, and
no torch: the main process builds and reads these without loading it. score.py holds
the records of what evaluating a candidate gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NewType, cast, get_args

__all__ = [
    "FAILURE_KINDS",
    "Candidate",
    "FailureKind",
    "Hash",
    "Rejection",
    "Status",
    "failure_kind",
    "parse_status",
]

Hash = NewType("Hash", str)

FailureKind = Literal[
    "invalid",  # static validation refused the source (never executed)
    "error",  # the function raised an exception when called
    "bad_output",  # not a tensor, or shape/dtype/device changed, or the input was mutated
    "nonfinite",  # NaN/inf on the probe range, or a non-finite training/test loss
    "not_pointwise",  # output i depends on inputs other than i
    "too_costly",  # over the lab's FLOP budget relative to GELU
    "timeout",  # the worker ran past its wall-clock limit and was killed
    "crashed",  # the worker process died (segfault, out of memory, ...)
]
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)

# What a scored candidate's `status` says: it trained ("ok"), how it failed, or that the
# evaluation cascade stopped it after stage 1 ("screened": not a failure, a partial score).
Status = Literal["ok", "screened", FailureKind]


def failure_kind(text: str) -> FailureKind:
    """Returns `text` as a FailureKind, or raises ValueError naming the known kinds."""
    for kind in FAILURE_KINDS:
        if kind == text:
            return kind
    raise ValueError(f"unknown failure kind {text!r}; known: {', '.join(FAILURE_KINDS)}")


def parse_status(text: str) -> Status:
    """Returns `text` as a Status ("ok", "screened" or a failure kind), or raises ValueError."""
    if text in ("ok", "screened"):
        return cast(Status, text)
    return cast(Status, failure_kind(text))


@dataclass(frozen=True, slots=True)
class Candidate:
    """An activation function that passed static validation, not yet run.

    Attributes:
        source: normalised `def activation(x):` source (canonical aliases, no comments,
            docstrings or annotations); this text is what the worker executes.
        code_hash: sha256 of `source`.
        name: a label for tables (seed name, file stem), not part of the identity.
        parent: code hash of the candidate this one was derived from, if any.
    """

    source: str
    code_hash: Hash
    name: str = ""
    parent: Hash | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Source text that failed static validation, with the reason."""

    reason: str
    name: str = ""
    status: FailureKind = "invalid"
