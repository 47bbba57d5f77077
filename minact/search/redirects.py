"""Redirects, which minact never follows: one could send the prompt and the API key to
another host. Where a redirect points is said, the API key masked (untrusted.clip), and
one whose Location header is no URL is refused as plainly as any other.

httpx parses a redirect's Location before it returns the response, even when it is not
to follow it, and one it cannot parse raised httpx.RemoteProtocolError: a transport error,
retried as such by llm.py and said as "cannot reach the LLM server" by server.py, without
the Location. `watch` has a client raise NoURL instead, which keeps the Location.
"""

from __future__ import annotations

import httpx

from minact.untrusted import clip

__all__ = ["NoURL", "refusal", "target", "watch"]


class NoURL(Exception):
    """A redirect whose Location header is not a URL."""

    def __init__(self, status: int, location: str) -> None:
        super().__init__(f"{status} redirect")  # never the Location: it may hold the key
        self.status, self.location = status, location

    def reason(self, key: str | None) -> str:
        """Returns what to say of the redirect, its Location clipped and `key` masked."""
        shown = clip(self.location, 300, key)
        return f"{self.status} redirect to '{shown}', which is not a URL: not followed"


async def _check_location(response: httpx.Response) -> None:
    """Raises NoURL for a redirect whose Location httpx cannot parse (a response hook)."""
    location = response.headers.get("location")
    if not response.has_redirect_location or location is None:
        return
    try:
        # Its host too: httpx decodes an IDNA host ('xn--a.com') to read it, and one that
        # does not decode raised idna's error (a UnicodeError) out of the request.
        httpx.URL(location).host  # noqa: B018
    except (httpx.InvalidURL, UnicodeError):  # what httpx would fail on
        raise NoURL(response.status_code, location) from None


def watch(http: httpx.AsyncClient) -> None:
    """Has `http` raise NoURL for a redirect whose Location is not a URL (once a client)."""
    # A response hook is the one public place where httpx shows the response before it
    # parses the Location; the hook acts only on what httpx would fail on anyway.
    hooks = http.event_hooks
    if _check_location not in hooks["response"]:
        http.event_hooks = {
            "request": list(hooks["request"]),
            "response": [*hooks["response"], _check_location],
        }


def target(response: httpx.Response) -> httpx.URL:
    """Returns where redirect `response` points, its Location joined with the URL asked;
    raises NoURL when the Location is not a URL."""
    location = response.headers.get("location", "")
    try:
        url = response.request.url.join(location)
        url.host  # noqa: B018  (an IDNA host that does not decode, as _check_location)
        return url
    except (httpx.InvalidURL, UnicodeError):
        raise NoURL(response.status_code, location) from None


def refusal(response: httpx.Response, key: str | None) -> str:
    """Returns why the chat request's redirect `response` is not followed, and what to do;
    raises NoURL when its Location is not a URL."""
    location = target(response)
    shown = clip(str(location), 300, key)
    why = f"{response.status_code} redirect to {shown}, not followed: "
    if location == response.request.url:
        return why + "it redirects to the URL asked; is a proxy or a login page in front of it?"
    if shown.endswith("/chat/completions"):
        why += f"set --llm-url to {shown.removesuffix('/chat/completions')}"
        if location.host != response.request.url.host:  # the key would go there
            why += " if you trust that host with the API key"
        return why
    return why + "not an API endpoint; is a proxy or a login page in front of it?"
