"""Global variables against the real server, differentially: a query using ``$global`` gives the
same entities whether it is answered locally (over a cache holding everything) or by the server
(a fresh client's cache holds exactly what the server sent for it), and both are what the
values say. The official client would disagree: it never sends its globals, so the server reads
``$global.x`` as undefined (shown below with the query as written)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Iterator, List, Mapping, Set, Tuple

import pytest

from tests.support.session import SAMPLE_SCHEMA, ClientFactory, Events, WireSpy, client_factory
from triplit_sync import or_
from triplit_sync.testing import TriplitTestServer

UTC = dt.timezone.utc
OWNERS = ["alice", "bob", "carol", "dave"]
DOCS = [
    {"id": f"t{i:02d}", "text": f"todo {i}", "owner": OWNERS[i % 4], "completed": i % 3 == 0,
     "created_at": dt.datetime(2026, 1, 1 + i, tzinfo=UTC).isoformat().replace("+00:00", ".000Z")}
    for i in range(12)
]

# (global variables, the query's where clause, which documents it selects)
CASES: List[Tuple[Dict[str, Any], List[Any], Any]] = [
    ({"owner": "alice"}, [["owner", "=", "$global.owner"]], lambda d, g: d["owner"] == "alice"),
    ({"owners": ["alice", "carol"]}, [["owner", "in", "$global.owners"]],
     lambda d, g: d["owner"] in ("alice", "carol")),
    ({"owners": {"bob"}}, [["owner", "nin", "$global.owners"]], lambda d, g: d["owner"] != "bob"),
    ({"since": dt.datetime(2026, 1, 8, tzinfo=UTC)}, [["created_at", ">", "$global.since"]],
     lambda d, g: d["created_at"] > "2026-01-08T00:00:00.000Z"),
    ({"user": {"name": "dave", "done": True}},
     [["owner", "=", "$global.user.name"], ["completed", "=", "$global.user.done"]],
     lambda d, g: d["owner"] == "dave" and d["completed"]),
    # A name without a value stays a reference: undefined on both sides.
    ({"done": False}, [or_(["completed", "=", "$global.done"], ["owner", "=", "$global.nobody"])],
     lambda d, g: not d["completed"]),
]


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


@pytest.fixture
def seeded(triplit: TriplitTestServer) -> TriplitTestServer:
    status, body = triplit.post("bulk-insert", {"todos": DOCS})
    assert status == 200, body
    return triplit


def _ids(rows: List[Mapping[str, Any]]) -> Set[str]:
    return {r["id"] for r in rows}


@pytest.mark.parametrize("case", range(len(CASES)))
def test_a_query_using_global_variables_answers_the_same_locally_and_remotely(
        seeded: TriplitTestServer, clients: ClientFactory, case: int) -> None:
    variables, where, selects = CASES[case]
    expected = {d["id"] for d in DOCS if selects(d, variables)}
    assert expected and expected != {d["id"] for d in DOCS}  # a case that tells answers apart
    token = seeded.user_token("alice")

    # Remotely: a fresh client's cache holds what the server sent for this query, nothing else.
    remote = clients(seeded.url, token, schema=SAMPLE_SCHEMA, variables=variables)
    spy = WireSpy(remote)
    query = remote.query("todos").where(*where)
    assert _ids(remote.fetch(query, policy="remote-first")) == expected
    assert _ids(remote.fetch(remote.query("todos"), policy="local-only")) == expected  # all it got
    sent = [m.params for m in spy.sent("CONNECT_QUERY")]
    assert sent and not any(f"$global.{name}" in repr(sent[-1]) for name in variables)  # values went along

    # Locally: a client that holds every todo answers from its cache.
    local = clients(seeded.url, token, schema=SAMPLE_SCHEMA, variables=variables)
    everything = Events()
    sub = local.subscribe(local.query("todos"), everything.recorder("rows"),
                          on_remote_fulfilled=lambda: everything.add("fulfilled"))
    everything.wait_count("fulfilled", 1)
    assert len(local.fetch(local.query("todos"), policy="local-only")) == len(DOCS)
    assert _ids(local.fetch(local.query("todos").where(*where), policy="local-only")) == expected
    sub.unsubscribe()


def test_the_server_alone_does_not_know_the_clients_globals(seeded: TriplitTestServer) -> None:
    # The query as written, as the official client sends it: the server's $global is empty.
    status, rows = seeded.post("fetch", {"query": {"collectionName": "todos",
                                                   "where": [["owner", "=", "$global.owner"]]}})
    assert status == 200 and rows == []


def test_update_global_variables_applies_to_the_next_queries_not_live_ones(
        seeded: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(seeded.url, seeded.user_token("alice"), schema=SAMPLE_SCHEMA, variables={"owner": "alice"})
    query = client.query("todos").where("owner", "=", "$global.owner")
    live = Events()
    sub = client.subscribe(query, live.recorder("rows"), on_remote_fulfilled=lambda: live.add("fulfilled"))
    live.wait_count("fulfilled", 1)
    alice = {d["id"] for d in DOCS if d["owner"] == "alice"}
    assert _ids(live.values("rows")[-1]) == alice

    client.update_global_variables({"owner": "bob", "since": dt.datetime(2026, 1, 1, tzinfo=UTC)})
    assert client.global_variables == {"owner": "bob", "since": "2026-01-01T00:00:00.000Z"}
    bob = {d["id"] for d in DOCS if d["owner"] == "bob"}
    assert _ids(client.fetch(query, policy="remote-first")) == bob
    assert _ids(client.fetch(query, policy="local-only")) == bob
    client._dispatcher.flush(2)
    assert _ids(live.values("rows")[-1]) == alice  # a live subscription keeps the values it began with
    sub.unsubscribe()

    with pytest.raises(TypeError, match="'bad'"):
        client.update_global_variables({"bad": object()})
    with pytest.raises(TypeError):
        client.update_global_variables(["not", "a", "dict"])  # type: ignore[arg-type]
    assert client.global_variables["owner"] == "bob"  # a refused update changes nothing


def test_session_variables_are_the_servers_scope_included(
        seeded: TriplitTestServer, clients: ClientFactory) -> None:
    # The server turns a `scope` string claim into the array `_scope` (and so does the client).
    token = seeded.user_token("alice", scope="t01 t05")
    where = ["id", "in", "$session._scope"]
    remote = clients(seeded.url, token, schema=SAMPLE_SCHEMA)
    assert _ids(remote.fetch(remote.query("todos").where(where), policy="remote-first")) == {"t01", "t05"}
    assert _ids(remote.fetch(remote.query("todos"), policy="local-only")) == {"t01", "t05"}
    local = clients(seeded.url, token, schema=SAMPLE_SCHEMA)
    done = Events()
    sub = local.subscribe(local.query("todos"), lambda rows: None, on_remote_fulfilled=lambda: done.add("ok"))
    done.wait_count("ok", 1)
    assert _ids(local.fetch(local.query("todos").where(where), policy="local-only")) == {"t01", "t05"}
    sub.unsubscribe()
