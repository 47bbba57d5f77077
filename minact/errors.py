"""minact's own errors; expected candidate failures are data, not exceptions.

The hierarchy:

* MinactError            exit code 1, the message names what is wrong and what to do
  + ConfigError          a tasks file, flag or setting is invalid
    + UsageError         exit code 2: an argument of the wrong form, found past parsing
  + CacheError           the cache directory cannot be opened
  + EvaluationError      the evaluator itself is broken (not a candidate's fault)
  + LLMError             the LLM server could not be used (after retries, or at once)
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "ConfigError",
    "EvaluationError",
    "LLMError",
    "MinactError",
    "UsageError",
]


class MinactError(Exception):
    """Base class for errors that stop a minact command with a message."""

    exit_code: int = 1


class ConfigError(MinactError):
    """A tasks file, flag or setting is invalid."""


class UsageError(ConfigError):
    """An argument of the wrong form that only a job can see (a HASH that is no hash
    prefix): a usage error, exit code 2, like the flags typer refuses; `param` names it."""

    exit_code = 2

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class CacheError(MinactError):
    """The fitness cache cannot be opened or written."""


class EvaluationError(MinactError):
    """The evaluator could not run (worker cannot start, device unavailable)."""


class LLMError(MinactError):
    """The LLM server could not be used (after retries, or a non-retryable error)."""
