"""The server URL rules every room shares: which URLs name a server, how ``ws(s)://`` is read,
and which hosts are this machine (for them, proxies from the environment are ignored)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

__all__ = ["as_http_url", "is_http_url", "is_loopback"]

_HTTP_OF_SOCKET = {"ws": "http", "wss": "https"}
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def as_http_url(server_url: str) -> str:
    """The one rule for ``server_url`` that ``TriplitClient`` and ``HttpClient`` share: it names
    the server by its ``http://`` or ``https://`` base URL, and ``ws://`` / ``wss://`` (the same
    server's socket form) are read as ``http://`` / ``https://``. Other schemes come back
    unchanged, for the caller's check to refuse by name.

        >>> as_http_url("wss://db.example.com/triplit")
        'https://db.example.com/triplit'
    """
    scheme, sep, rest = server_url.partition("://")
    http = _HTTP_OF_SOCKET.get(scheme.lower()) if sep else None
    return f"{http}://{rest}" if http else server_url


def is_http_url(server_url: Any) -> bool:
    """An ``http://`` or ``https://`` URL that names a host.

        >>> is_http_url("http://127.0.0.1:6543"), is_http_url("ws://h"), is_http_url("http://")
        (True, False, False)
    """
    if not isinstance(server_url, str):
        return False
    parts = urlsplit(server_url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback addresses (``[::1]`` with or without brackets)."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
