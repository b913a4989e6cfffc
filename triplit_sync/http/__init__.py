"""The HTTP client: ``HttpClient`` for the server's HTTP API (fetch, writes, bulk insert, schema,
admin), over one shared connection pool.

May import :mod:`triplit_sync.wire` (the change encoding), :mod:`triplit_sync.schema`,
:mod:`triplit_sync._util` and :mod:`triplit_sync.errors`.
"""

from .client import DEFAULT_TIMEOUT, HttpClient

__all__ = ["DEFAULT_TIMEOUT", "HttpClient"]
