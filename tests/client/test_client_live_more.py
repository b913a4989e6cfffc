"""Issue 16, items 3, 4, 5 and 7 against the real server: paginated and expanding
subscriptions, background subscriptions, sync state of rows and queries, and changes instead of
snapshots (also with the official JS client writing).

Rich schema (no permissions on todos).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List

import pytest

from triplit_sync import Page, QueryState, RowChanges, TriplitClient
from triplit_sync.errors import InvalidQueryError, TriplitTimeoutError
from triplit_sync.testing import TriplitTestServer

from ..support.client import Collector, js_driver
from ..support.rich_schema import rich_schema

pytest_plugins = ["tests.support.client_fixtures"]  # make_client, rich

Make = Callable[..., TriplitClient]
TODOS = {"collectionName": "todos", "order": [["id", "ASC"]]}


def client_for(make_client: Make, server: TriplitTestServer, who: str = "py") -> TriplitClient:
    client = make_client(server, server.user_token(who), schema=rich_schema())
    assert client.wait_connected(10)
    return client


def ids(rows: Any) -> List[str]:
    return [r["id"] for r in rows]


def put(server: TriplitTestServer, *eids: str) -> None:
    """Insert todos on the server (HTTP, service token), as another client would."""
    for eid in eids:
        status, body = server.post("insert", {"collectionName": "todos", "entity": {
            "id": eid, "text": eid, "n": 0, "completed": False, "created_at": "2024-01-01T00:00:00.000Z",
            "tags": {}, "meta": {"prio": 1}}})
        assert status == 200, body


# ---------------------------------------------------------------------------------- 4. background


def test_a_background_subscription_keeps_the_local_database_synced(rich: TriplitTestServer, make_client: Make) -> None:
    client = client_for(make_client, rich)
    runner = client._engine.runner
    decoded: List[Any] = []
    original = runner.decoder
    runner.decoder = lambda q: (decoded.append(q), original(q))[1]  # type: ignore[method-assign]
    fulfilled = threading.Event()
    bg = client.subscribe_background(TODOS, on_fulfilled=fulfilled.set)
    assert bg.background and fulfilled.wait(10)
    put(rich, "b1", "b2")
    local = Collector()
    client.subscribe({"collectionName": "todos", "order": [["id", "DESC"]]}, local, local_only=True)
    local.wait_ids(["b1", "b2"])  # arrived without anyone asking, through the background query
    assert TODOS not in decoded  # and nothing was decoded for it
    bg.unsubscribe()
    with pytest.raises(TypeError):
        client.subscribe_background(TODOS, on_fulfilled="no")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- 5. sync state


def test_query_state_says_loading_fulfilled_and_which_rows_are_pending(
        rich: TriplitTestServer, make_client: Make) -> None:
    put(rich, "s1")
    client = client_for(make_client, rich)
    states: List[QueryState] = []
    cond = threading.Condition()

    def on_state(state: QueryState) -> None:
        with cond:
            states.append(state)
            cond.notify_all()

    def wait_for(pred: Callable[[QueryState], bool]) -> QueryState:
        with cond:
            assert cond.wait_for(lambda: bool(states) and pred(states[-1]), 10), states[-1:]
            return states[-1]

    with client.subscribe_with_status(TODOS, on_state) as sub:
        state = wait_for(lambda s: s.status == "fulfilled")
        assert ids(state.rows) == ["s1"] and state.pending == frozenset() and state.error is None
        assert states[0].status == "loading"
        client.disconnect()
        client.insert("todos", {"id": "s2", "text": "offline", "meta": {"prio": 1}})
        state = wait_for(lambda s: ids(s.rows or []) == ["s1", "s2"])
        assert state.pending == {"s2"} and client.is_pending("todos", "s2")
        assert not client.is_pending("todos", "s1")
        client.connect()
        # the ACK changes no row, only the sync state: still delivered
        state = wait_for(lambda s: s.pending == frozenset())
        assert ids(state.rows) == ["s1", "s2"] and sub.state == state
    n = len(states)
    client.insert("todos", {"id": "s3", "text": "after", "meta": {"prio": 1}})
    client.wait_for_sync(10)
    assert len(states) == n  # unsubscribed


def test_query_state_says_error_when_the_server_refuses_the_query(
        rich: TriplitTestServer, make_client: Make) -> None:
    client = make_client(rich, rich.user_token("py"))  # schemaless: the server knows better
    assert client.wait_connected(10)
    got = threading.Event()
    seen: List[QueryState] = []
    client.subscribe_with_status({"collectionName": "nope"},
                                 lambda s: (seen.append(s), s.status == "error" and got.set()))
    assert got.wait(10)
    assert seen[-1].error is not None and seen[-1].error.name == "InvalidCollectionNameError"  # type: ignore[attr-defined]


def test_local_only_status_is_fulfilled_with_the_local_results(rich: TriplitTestServer, make_client: Make) -> None:
    client = client_for(make_client, rich)
    got = threading.Event()
    seen: List[QueryState] = []
    client.subscribe_with_status(TODOS, lambda s: (seen.append(s), got.set()), local_only=True)
    assert got.wait(10) and seen[-1].status == "fulfilled" and seen[-1].rows == []


# ---------------------------------------------------------------------------------- 7. changes


def test_changes_say_what_was_added_changed_and_removed(rich: TriplitTestServer, make_client: Make) -> None:
    put(rich, "c1", "c2")
    client = client_for(make_client, rich)
    got: List[RowChanges] = []
    cond = threading.Condition()

    def on_changes(changes: RowChanges) -> None:
        with cond:
            got.append(changes)
            cond.notify_all()

    def next_change(n: int) -> RowChanges:
        with cond:
            assert cond.wait_for(lambda: len(got) > n, 10), got
            return got[n]

    client.subscribe_changes(TODOS, on_changes)
    first = next_change(0)
    while ids(first.rows) != ["c1", "c2"]:  # the first delivery may be the empty local one
        first = next_change(len(got))
    js = js_driver()
    try:
        js.call("init", url=rich.url, token=rich.user_token("js"), schema=rich_schema().to_json())
        js.call("fetch", query=TODOS, policy="remote-first")  # JS updates only entities it holds
        n = len(got)
        js.call("update", collection="todos", entityId="c1", ops=[["set", ["text"], "edited by js"]])
        change = next_change(n)
        assert ids(change.changed) == ["c1"] and change.changed[0]["text"] == "edited by js"
        assert change.added == [] and change.removed == [] and ids(change.rows) == ["c1", "c2"]
        n = len(got)
        js.call("delete", collection="todos", entityId="c2")
        change = next_change(n)
        assert ids(change.removed) == ["c2"] and change.added == change.changed == []
        n = len(got)
        js.call("insert", collection="todos", entity={"id": "c3", "text": "new", "meta": {"prio": 1}})
        change = next_change(n)
        assert ids(change.added) == ["c3"] and change.changed == change.removed == []
    finally:
        js.close()


def test_watch_changes_sums_up_what_arrived_meanwhile(rich: TriplitTestServer, make_client: Make) -> None:
    client = client_for(make_client, rich)
    with client.watch_changes(TODOS, timeout=10) as stream:
        first = next(stream)
        assert first.added == first.rows
        with client.transact() as tx:
            tx.insert("todos", {"id": "w1", "text": "a", "meta": {"prio": 1}})
        client.insert("todos", {"id": "w2", "text": "b", "meta": {"prio": 1}})
        client.update("todos", "w1", {"text": "a2"})
        client.wait_for_sync(10)
        seen: List[str] = []
        while sorted(seen) != ["w1", "w2"]:
            change = next(stream)
            assert change.removed == []
            seen.extend(ids(change.added))
        assert [r["text"] for r in client.fetch(TODOS)] == ["a2", "b"]
    with pytest.raises(ValueError):
        client.watch_changes(TODOS, timeout=0)
    with pytest.raises(TriplitTimeoutError):
        with client.watch_changes(TODOS, timeout=0.2) as quiet:
            next(quiet)  # the first (local) delivery
            next(quiet)


# ---------------------------------------------------------------------------------- 3. pages


class Pages:
    def __init__(self) -> None:
        self.pages: List[Page] = []
        self.cond = threading.Condition()

    def __call__(self, page: Page) -> None:
        with self.cond:
            self.pages.append(page)
            self.cond.notify_all()

    def wait(self, pred: Callable[[Page], bool]) -> Page:
        with self.cond:
            assert self.cond.wait_for(lambda: bool(self.pages) and pred(self.pages[-1]), 10), self.pages[-1:]
            return self.pages[-1]


def test_pages_move_forward_and_back_and_stay_live(rich: TriplitTestServer, make_client: Make) -> None:
    put(rich, *[f"p{i}" for i in range(7)])
    client = client_for(make_client, rich)
    got = Pages()
    pages = client.subscribe_pages(client.query("todos").order("id", "ASC"), got, page_size=3)
    page = got.wait(lambda p: ids(p.rows) == ["p0", "p1", "p2"])
    assert page.has_next and not page.has_previous and page.number == 1
    assert pages.next_page()
    page = got.wait(lambda p: ids(p.rows) == ["p3", "p4", "p5"])
    assert page.has_next and page.has_previous and page.number == 2
    assert pages.next_page()
    page = got.wait(lambda p: ids(p.rows) == ["p6"])
    assert not page.has_next and page.has_previous and page.number == 3
    assert not pages.next_page()
    put(rich, "p7")  # the last page is live: it grows
    got.wait(lambda p: ids(p.rows) == ["p6", "p7"])
    assert pages.previous_page()
    page = got.wait(lambda p: ids(p.rows) == ["p3", "p4", "p5"] and p.number == 2)
    client.delete("todos", "p4")  # the page keeps its start and fills up from the next one
    page = got.wait(lambda p: ids(p.rows) == ["p3", "p5", "p6"])
    assert pages.previous_page()
    page = got.wait(lambda p: ids(p.rows) == ["p0", "p1", "p2"])
    assert not page.has_previous and page.number == 1 and not pages.previous_page()
    pages.unsubscribe()
    with pytest.raises(InvalidQueryError):
        client.subscribe_pages(TODOS, got)  # no limit and no page_size


def test_an_expanding_subscription_loads_more(rich: TriplitTestServer, make_client: Make) -> None:
    put(rich, *[f"e{i}" for i in range(5)])
    client = client_for(make_client, rich)
    got = Pages()
    feed = client.subscribe_expanding(client.query("todos").order("id", "DESC").limit(2), got)
    page = got.wait(lambda p: ids(p.rows) == ["e4", "e3"])
    assert page.has_next
    feed.load_more()
    page = got.wait(lambda p: ids(p.rows) == ["e4", "e3", "e2", "e1"])
    assert page.has_next and page.number == 2
    feed.load_more(5)
    page = got.wait(lambda p: len(p.rows) == 5)
    assert not page.has_next
    put(rich, "e5")  # live: the newest comes in at the top
    got.wait(lambda p: ids(p.rows)[:1] == ["e5"] and len(p.rows) == 6)
    feed.unsubscribe()
