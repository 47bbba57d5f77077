"""Loopback hosts: those whose requests never leave this machine, so never go to a proxy.

A proxy cannot reach a server on this machine (it reaches its own), and the request,
the API key in it included, would be sent to the proxy for nothing. Which hosts are
loopback is decided here for the choice of whether proxy variables apply at all
(minact.jobs.proposing) and for the hosts the HTTP client always reaches directly
(llm.http_client).
"""

from __future__ import annotations

import ipaddress
import re
import socket

__all__ = ["NAMES", "is_loopback"]

# The names every resolver maps to loopback; "*.localhost" stands for every name under it.
NAMES = ("localhost", "*.localhost", "127.0.0.1", "::1")
_NUMERIC = re.compile(r"[0-9a-fx.]+")  # the legacy IPv4 forms (127.1, 0x7f.1, 2130706433)


def is_loopback(host: str) -> bool:
    """Returns whether a URL's `host` (as urlsplit or httpx give it: no port, IPv6 with
    or without brackets) is this machine: any address of 127.0.0.0/8 or ::1, the same
    mapped into IPv6 (::ffff:127.0.0.2), the unspecified address (0.0.0.0 and ::, which
    a connection reaches this machine through: servers print it as where they listen),
    and `localhost` and every name under it (RFC 6761, 6.3: resolvers and libraries
    should answer loopback for all of them; a proxy would resolve them to itself)."""
    host = host.strip("[]").lower().removesuffix(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC.fullmatch(host):
            return False
        try:  # what the connection itself does with 127.1 or 0x7f000001: inet_aton's forms
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # Python before 3.13 calls ::ffff:127.0.0.1 global
    return address.is_loopback or address.is_unspecified
