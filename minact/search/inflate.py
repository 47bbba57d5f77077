"""A compressed body inflated a bounded piece at a time: a compression bomb cannot stall a run.

httpx inflates each chunk it receives whole: 64 KiB of gzip (or deflate) may become 64 MiB
at once, which the event reader then takes seconds over with the event loop held, so that
no deadline can end it, other requests wait and memory grows by a gigabyte. Here the raw
body is inflated at most `piece` bytes at a time, and the loop runs between pieces. llm.py
and server.py read every body through `decoded`; it needs no httpx.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncGenerator
from contextlib import aclosing

__all__ = ["CODINGS", "PIECE", "DecodeError", "decoded"]

PIECE = 1 << 16  # bytes of inflated body handed on at once (httpcore reads 64 KiB too)

# zlib's window bits for each coding httpx itself decodes (brotli and zstd only when their
# packages are installed, which minact does not ask for): gzip, and deflate with its zlib
# header (as the HTTP spec says), or raw (as some servers send it; httpx accepts both).
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
CODINGS = ("gzip", "deflate")  # what a request offers (Accept-Encoding)


class DecodeError(ValueError):
    """The body does not decode as its Content-Encoding header says."""


def decoded(
    raw: AsyncGenerator[bytes, None], encoding: str, piece: int = PIECE
) -> AsyncGenerator[bytes, None]:
    """Returns the body of `raw` chunks decoded as the Content-Encoding `encoding` says
    (codings listed in the order they were applied), in chunks of at most `piece` bytes
    where a coding inflates it; raises DecodeError for a body that does not decode or a
    coding that is not supported. Closing what it returns closes `raw`."""
    stream = raw
    for coding in reversed([c.strip().lower() for c in encoding.split(",")]):
        if coding not in ("", "identity"):
            stream = _inflated(stream, coding, piece)
    return stream


async def _inflated(
    chunks: AsyncGenerator[bytes, None], coding: str, piece: int
) -> AsyncGenerator[bytes, None]:
    """Yields `chunks` inflated as `coding` says, at most `piece` bytes at a time."""
    if coding not in _WBITS:
        shown = coding[:40].encode("ascii", "replace").decode()
        raise DecodeError(f"Content-Encoding {shown!r} is not supported (gzip or deflate are)")
    inflater, first = zlib.decompressobj(_WBITS[coding]), True
    async with aclosing(chunks):
        async for chunk in chunks:
            data = chunk
            while True:
                try:
                    out = inflater.decompress(data, piece)
                except zlib.error as e:
                    if coding != "deflate" or not first:
                        raise DecodeError(f"{coding}: {e}") from None
                    inflater, first = zlib.decompressobj(-zlib.MAX_WBITS), False  # raw deflate
                    continue
                first, data = False, inflater.unconsumed_tail
                if out:
                    yield out
                # A bomb is inflated piece by piece: let the deadline and the other requests
                # in between pieces (a loop without an await cannot be cancelled).
                await asyncio.sleep(0)
                if not data and len(out) < piece:  # a full piece may have more behind it
                    break
    try:
        rest = inflater.flush()
    except zlib.error as e:
        raise DecodeError(f"{coding}: {e}") from None
    if rest:
        yield rest
