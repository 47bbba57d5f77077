"""minact's own errors; expected candidate failures are data, not exceptions.

The hierarchy:

* MinactError            exit code 1, the message names what is wrong and what to do
  + ConfigError          a tasks file, flag or setting is invalid
  + CacheError           the cache directory cannot be opened
  + EvaluationError      the evaluator itself is broken (not a candidate's fault)
  + LLMError             the LLM server could not be used (after retries, or at once)
"""

from __future__ import annotations

__all__ = ["CacheError", "ConfigError", "EvaluationError", "LLMError", "MinactError"]


class MinactError(Exception):
    """Base class for errors that stop a minact command with a message."""

    exit_code: int = 1


class ConfigError(MinactError):
    """A tasks file, flag or setting is invalid."""


class CacheError(MinactError):
    """The fitness cache cannot be opened or written."""


class EvaluationError(MinactError):
    """The evaluator could not run (worker cannot start, device unavailable)."""


class LLMError(MinactError):
    """The LLM server could not be used (after retries, or a non-retryable error)."""
