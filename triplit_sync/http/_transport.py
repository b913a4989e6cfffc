"""The HTTP plumbing under :class:`~triplit_sync.http.HttpClient`: one pooled httpx client,
the Bearer token, JSON bodies in and out, and every failure turned into a ``TriplitError``.

Python values the server cannot read as JSON are sent in the forms its HTTP routes accept:
``datetime``/``date`` become ISO-8601 strings in UTC with milliseconds (JavaScript's
``toISOString``; naive datetimes are taken to be UTC, as the schema codec does), sets become
arrays (the HTTP routes read an array as a set). Anything else unknown is refused.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import date, datetime, timezone
from typing import Any, Callable, Dict, Optional, Union
from urllib.parse import urlsplit

import httpx

from .._util.jsonio import dumps as json_dumps
from .._util.jsonio import loads
from .._util.timeouts import DEFAULT, DEFAULT_TIMEOUT, check_timeout
from .._util.urls import as_http_url, is_loopback
from .._util.version import __version__
from ..errors import (
    AuthenticationError,
    ClientClosedError,
    NoActiveSessionError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProtocolError,
    ServerError,
    TokenDecodingError,
    TriplitConnectionError,
    TriplitError,
    TriplitTimeoutError,
    server_error_from_json,
)

__all__ = ["DEFAULT_TIMEOUT", "USE_DEFAULT", "HttpTransport", "check_timeout", "dumps", "loads", "iso_utc"]

logger = logging.getLogger(__name__)

#: "the client's timeout" for a per-call ``timeout`` argument (``None`` means no limit); the
#: client's own default (connect, each read, each write) is DEFAULT_TIMEOUT.
USE_DEFAULT: Any = DEFAULT

_STATUS_CLASSES = {401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
                   413: PayloadTooLargeError}


# ---------------------------------------------------------------------------------- JSON

_UTC = timezone.utc


def iso_utc(value: Union[datetime, date]) -> str:
    """``2024-01-02T03:04:05.678Z`` for a datetime (naive = UTC) or ``...T00:00:00.000Z`` for a date."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_UTC)
        v = value
        return (f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
                f".{v.microsecond // 1000:03d}Z")
    return value.isoformat() + "T00:00:00.000Z"


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return iso_utc(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, tuple):  # orjson hands tuple subclasses (named tuples) to default
        return list(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent as JSON: {value!r:.80}")


def dumps(obj: Any, what: str) -> bytes:
    """UTF-8 JSON for ``obj``; a value that has no JSON form raises ``TypeError`` naming ``what``."""
    try:
        return json_dumps(obj, _default)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} cannot be sent as JSON: {exc}") from None


# ---------------------------------------------------------------------------------- checks


def check_token(token: Any) -> str:
    """``token`` if it can go in a Bearer header. Messages never show the token itself."""
    if not isinstance(token, str):
        raise TypeError(f"the token must be a str (a JWT), got {type(token).__name__}")
    if not token or not token.isascii() or any(c.isspace() or not c.isprintable() for c in token):
        raise TokenDecodingError("the token is not a JWT: it is empty or holds whitespace or "
                                 "control characters")
    return token


def check_url(server_url: Any) -> str:
    """The server's base URL without a trailing slash; ``ws(s)://`` becomes ``http(s)://``."""
    if not isinstance(server_url, str):
        raise TypeError("server_url must be a str like 'http://127.0.0.1:6543', "
                        f"got {type(server_url).__name__}")
    url = as_http_url(server_url.strip().rstrip("/"))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("server_url must be an http(s) URL like 'http://127.0.0.1:6543' "
                         f"(ws:// and wss:// are read as http:// and https://), got {server_url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"server_url must not hold a query, fragment or credentials, got {server_url!r}")
    try:
        parts.port
    except ValueError:
        raise ValueError(f"server_url has a bad port: {server_url!r}") from None
    return url


# ---------------------------------------------------------------------------------- transport


class HttpTransport:
    """Requests to one server over one pooled, thread-safe httpx client.

    ``token`` is called for every authenticated request (so refreshed tokens are used).
    Environment proxy settings are ignored for loopback servers unless ``trust_env`` says
    otherwise: a ``HTTP_PROXY`` must not capture ``127.0.0.1``.
    """

    def __init__(self, server_url: str, token: Callable[[], Optional[str]], *, timeout: Optional[float],
                 verify: Union[bool, str] = True, trust_env: Optional[bool] = None) -> None:
        self.base = check_url(server_url)
        self._token = token
        self.timeout = check_timeout(timeout, positive=True)
        host = urlsplit(self.base).hostname or ""
        self._trust_env = (not is_loopback(host)) if trust_env is None else bool(trust_env)
        self._verify = verify
        self._lock = threading.Lock()
        self.closed = False
        self._pid = os.getpid()
        self._client = self._new_client()

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            timeout=httpx.Timeout(self.timeout),
            trust_env=self._trust_env,
            verify=self._verify,
            headers={"User-Agent": f"triplit-sync/{__version__} (python)", "Accept": "application/json"},
        )

    def _http(self) -> httpx.Client:
        if self.closed:
            raise ClientClosedError("this HttpClient has been closed")
        if self._pid != os.getpid():
            # A forked child must not share its parent's pooled sockets: start a fresh pool and
            # leave the parent's connections alone (closing them here would not help the parent).
            with self._lock:
                if self._pid != os.getpid():
                    self._client = self._new_client()
                    self._pid = os.getpid()
        return self._client

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            client = self._client
        client.close()

    def _auth_header(self) -> Dict[str, str]:
        token = self._token()
        if token is None:
            raise NoActiveSessionError("no token: start a session or give HttpClient a token", status=401)
        return {"Authorization": "Bearer " + check_token(token)}

    def send(self, method: str, route: str, *, auth: bool = True, timeout: Any = USE_DEFAULT,
             **kwargs: Any) -> httpx.Response:
        """One request; a non-2xx answer, a network failure or a timeout raises a TriplitError."""
        url = f"{self.base}/{route}"
        headers = self._auth_header() if auth else {}
        if "headers" in kwargs:
            headers.update(kwargs.pop("headers"))
        limit = self.timeout
        if timeout is not USE_DEFAULT:
            limit = check_timeout(timeout, positive=True)
            kwargs["timeout"] = httpx.Timeout(limit)
        client = self._http()
        try:
            response = client.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise TriplitTimeoutError(
                f"{method} {url} timed out ({type(exc).__name__}, timeout {limit} s)", status=504) from exc
        except httpx.RequestError as exc:
            raise TriplitConnectionError(
                f"cannot reach the Triplit server at {url}: {exc or type(exc).__name__}",
                name=type(exc).__name__, status=503) from exc
        except RuntimeError as exc:
            if self.closed:  # closed by another thread while this request was starting
                raise ClientClosedError("this HttpClient has been closed") from exc
            raise
        logger.debug("%s %s -> %s (%d bytes)", method, url, response.status_code, len(response.content))
        if not 200 <= response.status_code < 300:
            raise self._error(method, url, response)
        return response

    @staticmethod
    def _error(method: str, url: str, response: httpx.Response) -> TriplitError:
        status = response.status_code
        data: Any = None
        try:
            data = loads(response.content)
        except ValueError:
            pass
        if isinstance(data, dict) and ("name" in data or "message" in data):
            return server_error_from_json(data, status)
        # Not the server's error JSON: a bare framework answer ("404 Not Found"), a proxy page, a redirect.
        text = response.text.strip().replace("\n", " ")[:300] or response.reason_phrase
        location = response.headers.get("location")
        hint = f" (redirect to {location}: use that URL as server_url)" if location else ""
        cls = _STATUS_CLASSES.get(status, ServerError)
        return cls(f"{method} {url} failed with HTTP {status}: {text}{hint}", status=status,
                   data=data if isinstance(data, dict) else None)

    def post(self, route: str, body: Any, *, timeout: Any = USE_DEFAULT,
             params: Optional[Dict[str, str]] = None) -> Any:
        """POST ``body`` as JSON and return the decoded JSON answer (``None`` for an empty one)."""
        content = dumps(body, f"the /{route} request")
        response = self.send("POST", route, content=content, params=params, timeout=timeout,
                             headers={"Content-Type": "application/json"})
        return self.json(route, response)

    @staticmethod
    def json(route: str, response: httpx.Response) -> Any:
        raw = response.content
        if not raw.strip():
            return None
        try:
            return loads(raw)
        except ValueError:
            raise ProtocolError(f"/{route} answered HTTP {response.status_code} with a body that is "
                                f"not JSON: {response.text[:200]!r}", status=502) from None
