"""The process's Triplit clients, set by ``TodosConfig.ready()``: ``client`` (the app's service
identity, with its local cache and outbox) and ``as_user`` (one HTTP pool that sends the token of
the request being served)."""
import contextvars
from typing import Any, Optional

from triplit_sync import HttpClient, TriplitClient

client: Optional[TriplitClient] = None
as_user: Optional[HttpClient] = None
request_token: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("request_token", default=None)


def make_user_client(url: str, schema: Any) -> HttpClient:
    return HttpClient(url, request_token.get, schema=schema)
