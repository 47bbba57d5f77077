"""Loading candidate code in the worker: the normalised source becomes a callable.

The source has passed static validation (minact.validate) in the main process; here it
is executed with a minimal set of builtins and only `torch`, `F` and `math` bound. This
is not a sandbox by itself: the worker process around it is (process.py says what it
does and does not protect against).
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from minact.candidate import FailureKind
from minact.validate import primitives

__all__ = ["Activation", "CandidateError", "describe", "load_activation"]

Activation = Callable[[torch.Tensor], torch.Tensor]


class CandidateError(Exception):
    """A candidate failed a dynamic check; `kind` is its failure kind."""

    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def load_activation(source: str) -> Activation:
    """Returns the `activation` defined by normalised `source`, run with minimal builtins."""
    safe_builtins: dict[str, Any] = {n: getattr(builtins, n) for n in primitives.BUILTINS}
    # torch's C++ side imports torch modules through the calling frame's builtins (for
    # instance under a dispatch mode); candidate code itself cannot name `__import__`.
    safe_builtins["__import__"] = _torch_only_import
    namespace: dict[str, Any] = {
        "__builtins__": safe_builtins,
        "torch": torch,
        "F": F,
        "math": math,
    }
    try:
        exec(compile(source, "<candidate>", "exec"), namespace)
    except Exception as e:  # definition-time failure is the candidate's, not ours
        raise CandidateError("error", f"defining activation raised {describe(e)}") from None
    fn = namespace.get("activation")
    if not callable(fn):
        raise CandidateError("error", "the source does not define activation")
    return fn  # type: ignore[no-any-return]


def _torch_only_import(name: str, *args: Any, **kwargs: Any) -> Any:
    if name != "torch" and not name.startswith("torch."):
        raise ImportError(f"import of {name!r} is not available to candidates")
    return builtins.__import__(name, *args, **kwargs)


def describe(e: BaseException) -> str:
    """Returns "Type: first line of the message" for an exception a candidate raised."""
    text = str(e).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
