"""What an HTTP error status says about one attempt: why it failed, whether another may
help, and how long the server asked to wait first (as openai-python decides).

Pure, like minact.search.sse, whose Failure it returns; llm.py asks here.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

from minact.search import sse
from minact.untrusted import clip

__all__ = ["failure", "retry_after"]

_HINTS = {401: "check the API key", 403: "check the API key",
          404: "check the URL (the base, ending in /v1) and the model name"}  # fmt: skip


def retry_after(headers: httpx.Headers) -> float | None:
    """Returns how many seconds the server asked us to wait, if it said."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name, "").strip()
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    try:  # an HTTP date
        when = parsedate_to_datetime(headers.get("retry-after", ""))
    except (TypeError, ValueError, IndexError, OverflowError):  # Overflow: a year of 20 digits
        return None
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def failure(
    status: int, headers: httpx.Headers, body: bytes, secret: str | None, model: str = ""
) -> sse.Failure:
    """Returns why an HTTP error status failed the attempt, and whether to retry; a 404
    names `model`, the name asked for, which is as likely wrong as the URL."""
    message = sse.error_message(body, secret)
    reason = f"{status} {httpx.codes.get_reason_phrase(status)}: {message}"
    hint = _HINTS.get(status, "")
    hint += f" {clip(model, 80, secret)!r}" if status == 404 and model else ""
    reason += f" ({hint})" if hint else ""
    retryable = status in (408, 409, 429) or status >= 500  # as openai-python does
    flag = headers.get("x-should-retry", "").strip().lower()
    retryable = flag == "true" if flag in ("true", "false") else retryable
    return sse.Failure(reason, retryable, retry_after(headers) if retryable else None, status)
