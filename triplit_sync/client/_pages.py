"""Paginated and expanding live queries (JS ``subscribeWithPagination``, ``subscribeWithExpand``).

A page is a live subscription of the query with one row more than the page (to know whether
another page follows) that starts after a cursor: the order values of the last row of the
previous page (or, going back, the first row of the next one, in reversed order). The rows of
the page stay live, and so do its boundaries: when rows before the cursor are inserted or
deleted the page does not shift, as with the JS client; ``has_next`` / ``has_previous`` follow
the data. ``id`` is added as the last order key so that every cursor is exact.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from ..errors import InvalidQueryError
from ..query import MISSING, get_path, to_filter_value

__all__ = ["Page", "PagedSubscription", "ExpandingSubscription"]

Row = Dict[str, Any]
QueryJSON = Dict[str, Any]


class Page(NamedTuple):
    """What a paginated or expanding subscription delivers.

        def show(page):
            print(f"page {page.number}:", [t["text"] for t in page.rows],
                  "more ->" if page.has_next else "")

        pages = client.subscribe_pages(client.query("todos").order("created_at", "DESC"), show, page_size=20)
        pages.next_page()
    """

    rows: List[Row]
    #: another page follows (expanding: more rows can be loaded with ``load_more``)
    has_next: bool
    #: a page comes before this one (expanding: always False)
    has_previous: bool
    #: the page's number, from 1 (expanding: how many pages are loaded)
    number: int


def _check_size(page_size: Any) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise InvalidQueryError(f"page_size must be a positive integer (or the query's limit), not {page_size!r}")
    return page_size


def page_size_of(query: QueryJSON, page_size: Optional[int]) -> int:
    return _check_size(page_size if page_size is not None else query.get("limit"))


class _Windowed:
    """One live window at a time; a new one replaces the old (deliveries of the old are dropped)."""

    def __init__(self, subscribe: Callable[..., Any], on_error: Optional[Callable[[BaseException], Any]]) -> None:
        self._subscribe = subscribe
        self._on_error = on_error
        self._lock = threading.RLock()
        self._sub: Any = None
        self._gen = 0
        self.active = True

    def _open(self, query: QueryJSON) -> None:
        with self._lock:
            if not self.active:
                return
            self._gen += 1
            gen = self._gen
            old = self._sub
            self._sub = self._subscribe(query, lambda rows: self._deliver(gen, rows), self._on_error)
        if old is not None:
            old.unsubscribe()

    def _deliver(self, gen: int, rows: List[Row]) -> None:
        with self._lock:
            if gen != self._gen or not self.active:
                return
        self._on_rows(rows)

    def _on_rows(self, rows: List[Row]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def unsubscribe(self) -> None:
        with self._lock:
            self.active = False
            sub, self._sub = self._sub, None
        if sub is not None:
            sub.unsubscribe()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unsubscribe()


class PagedSubscription(_Windowed):
    """The handle of :meth:`TriplitClient.subscribe_pages`: ``next_page()``,
    ``previous_page()``, :attr:`page` (the last delivered) and ``unsubscribe()``."""

    def __init__(self, subscribe: Callable[..., Any], query: QueryJSON, page_size: int,
                 on_page: Callable[[Page], Any], on_error: Optional[Callable[[BaseException], Any]],
                 raw: Callable[[str, str], Optional[Dict[str, Any]]]) -> None:
        super().__init__(subscribe, on_error)
        order = [list(c) for c in query.get("order") or []]
        if not order or order[-1][0] != "id":
            order.append(["id", "ASC"])
        self._base = {k: v for k, v in query.items() if k not in ("limit", "after", "order")}
        self._order = order
        self._size = page_size
        self._on_page = on_page
        self._raw = raw
        self._cursor: Optional[List[Any]] = None
        self._backward = False
        self._number = 1
        self.page: Optional[Page] = None
        self._open_page()

    def _open_page(self) -> None:
        q = dict(self._base)
        q["order"] = [[a, ("DESC" if d == "ASC" else "ASC") if self._backward else d] for a, d in self._order]
        q["limit"] = self._size + 1
        if self._cursor is not None:
            q["after"] = [self._cursor, False]
        self._open(q)

    def _cursor_of(self, row: Row) -> List[Any]:
        raw = self._raw(str(self._base["collectionName"]), str(row.get("id"))) or row
        values = []
        for attr, _ in self._order:
            v = get_path(raw, attr.split("."))
            if v is MISSING:
                v = get_path(row, attr.split("."))
            values.append(None if v is MISSING else to_filter_value(v))
        return values

    def _on_rows(self, rows: List[Row]) -> None:
        size = self._size
        if self._backward:
            # Going back only finds where the previous page starts; the page itself is then
            # held from its start, like a page reached going forward (a row deleted in it is
            # replaced from the next page, not the previous). With no row before it, or fewer
            # than a page, it is the first page, full.
            with self._lock:
                self._backward = False
                if len(rows) <= size:
                    self._cursor, self._number = None, 1
                else:
                    self._cursor = self._cursor_of(rows[size])
            self._open_page()
            return
        page = Page(rows[:size], len(rows) > size, self._cursor is not None, self._number)
        if page == self.page:
            return
        self.page = page
        self._on_page(page)

    def next_page(self) -> bool:
        """Move to the next page (its rows arrive in ``on_page``); False when there is none."""
        page = self.page
        if page is None or not page.has_next or not page.rows:
            return False
        with self._lock:
            self._cursor, self._backward = self._cursor_of(page.rows[-1]), False
            self._number += 1
        self._open_page()
        return True

    def previous_page(self) -> bool:
        """Move to the previous page; False when this is the first."""
        page = self.page
        if page is None or not page.has_previous or not page.rows:
            return False
        with self._lock:
            self._cursor, self._backward = self._cursor_of(page.rows[0]), True
            self._number = max(1, self._number - 1)
        self._open_page()
        return True


class ExpandingSubscription(_Windowed):
    """The handle of :meth:`TriplitClient.subscribe_expanding`: ``load_more()`` and ``unsubscribe()``."""

    def __init__(self, subscribe: Callable[..., Any], query: QueryJSON, page_size: int,
                 on_results: Callable[[Page], Any], on_error: Optional[Callable[[BaseException], Any]]) -> None:
        super().__init__(subscribe, on_error)
        self._base = {k: v for k, v in query.items() if k != "limit"}
        self._size = page_size
        self._limit = page_size
        self._pages = 1
        self._on_results = on_results
        self.page: Optional[Page] = None
        self._open_window()

    def _open_window(self) -> None:
        q = dict(self._base)
        q["limit"] = self._limit + 1
        self._open(q)

    def _on_rows(self, rows: List[Row]) -> None:
        page = Page(rows[: self._limit], len(rows) > self._limit, False, self._pages)
        self.page = page
        self._on_results(page)

    def load_more(self, page_size: Optional[int] = None) -> None:
        """Grow the results by ``page_size`` rows (default: the subscription's page size)."""
        n = _check_size(page_size if page_size is not None else self._size)
        with self._lock:
            self._limit += n
            self._pages += 1
        self._open_window()
