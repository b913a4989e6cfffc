"""Live results as a blocking iterator (``watch``), for scripts and notebooks."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List, Optional

from .._util.callbacks import wait_until
from .._util.types import QueryJSON
from ..errors import TriplitTimeoutError
from ..sync import Subscription

__all__ = ["RowsStream"]

Row = Dict[str, Any]


class RowsStream:
    """The iterator returned by :meth:`DataAPI.watch`; close it (or leave ``with``) to stop."""

    def __init__(self, subscribe: Callable[..., Subscription], query: QueryJSON, timeout: Optional[float],
                 local_only: bool) -> None:
        self._cond = threading.Condition()
        self._latest: Optional[List[Row]] = None
        self._error: Optional[BaseException] = None
        self._closed = False
        self.timeout = timeout
        self._subscription = subscribe(query, self._on_results, self._on_error, local_only=local_only)

    def _on_results(self, rows: List[Row]) -> None:
        with self._cond:
            self._latest = rows
            self._cond.notify_all()

    def _on_error(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def __iter__(self) -> Iterator[List[Row]]:
        return self

    def __next__(self) -> List[Row]:
        with self._cond:
            if not wait_until(self._cond, lambda: self._error is not None or self._latest is not None
                              or self._closed, self.timeout):
                raise TriplitTimeoutError(f"no new results within {self.timeout} s")
            if self._error is not None:
                raise self._error
            if self._latest is not None:
                rows, self._latest = self._latest, None
                return rows
            raise StopIteration

    def close(self) -> None:
        self._subscription.unsubscribe()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> "RowsStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
