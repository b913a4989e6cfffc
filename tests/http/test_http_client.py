"""HttpClient against the real server (sample schema: todos / messages, roles anonymous / user / admin)."""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List

import pytest

from triplit_sync.errors import (
    AuthenticationError,
    ClientClosedError,
    InvalidQueryError,
    NoActiveSessionError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProtocolError,
    SchemaValidationError,
    ServerError,
    TriplitError,
)
from triplit_sync.http import HttpClient
from triplit_sync.testing import TriplitTestServer, mint_token


@pytest.fixture
def service(triplit: TriplitTestServer) -> Iterator[HttpClient]:
    with HttpClient(triplit.url, triplit.service_token()) as http:
        yield http


@pytest.fixture
def alice(triplit: TriplitTestServer) -> Iterator[HttpClient]:
    with HttpClient(triplit.url, triplit.user_token("alice")) as http:
        yield http


def todo(i: int, owner: str = "alice") -> Dict[str, Any]:
    return {"id": f"t{i}", "text": f"todo {i}", "owner": owner}


# ---------------------------------------------------------------------------------- reads


def test_insert_returns_the_stored_entity_with_server_defaults(service: HttpClient) -> None:
    stored = service.insert("todos", {"text": "milk", "owner": "alice"})
    assert stored["text"] == "milk" and stored["owner"] == "alice"
    assert stored["completed"] is False  # the server filled the default
    assert isinstance(stored["id"], str) and stored["id"]
    assert isinstance(stored["created_at"], str)  # no schema on the client: plain JSON
    assert service.fetch_by_id("todos", stored["id"]) == stored


def test_fetch_where_order_limit_select(service: HttpClient) -> None:
    for i in range(5):
        service.insert("todos", {**todo(i), "completed": i % 2 == 0})
    rows = service.fetch({"collectionName": "todos", "where": [["completed", "=", True]],
                          "order": [["id", "DESC"]], "limit": 2, "select": ["id"]})
    assert rows == [{"id": "t4"}, {"id": "t2"}]
    assert [r["id"] for r in service.fetch("todos")] == [f"t{i}" for i in range(5)]


def test_fetch_accepts_an_object_with_to_json(service: HttpClient) -> None:
    service.insert("todos", todo(1))

    class Built:
        def to_json(self) -> Dict[str, Any]:
            return {"collectionName": "todos", "where": [["id", "=", "t1"]]}

    assert [r["id"] for r in service.fetch(Built())] == ["t1"]


def test_fetch_one_and_fetch_by_id_return_none_when_nothing_matches(service: HttpClient) -> None:
    assert service.fetch_one({"collectionName": "todos"}) is None
    assert service.fetch_by_id("todos", "nope") is None
    service.insert("todos", todo(1))
    service.insert("todos", todo(2))
    last = service.fetch_one({"collectionName": "todos", "order": [["id", "DESC"]]})
    assert last is not None and last["id"] == "t2"


def test_read_permissions_filter_rows_for_a_user(triplit: TriplitTestServer, service: HttpClient) -> None:
    service.bulk_insert({"messages": [{"id": "m1", "text": "hi bob", "author_id": "alice", "to": "bob"},
                                      {"id": "m2", "text": "carol's", "author_id": "carol"}]})
    with HttpClient(triplit.url, triplit.user_token("bob")) as bob:
        assert [m["id"] for m in bob.fetch("messages")] == ["m1"]
    with HttpClient(triplit.url, triplit.anon_token()) as anon:
        assert anon.fetch("messages") == []  # anonymous has no read rule on messages


# ---------------------------------------------------------------------------------- writes


def test_update_merges_a_partial_patch(service: HttpClient) -> None:
    service.insert("todos", todo(1))
    service.update("todos", "t1", {"completed": True, "text": "done"})
    got = service.fetch_by_id("todos", "t1")
    assert got is not None and got["completed"] is True and got["text"] == "done" and got["owner"] == "alice"
    service.update("todos", "missing", {"text": "x"})  # the server answers success for a missing entity
    assert service.fetch_by_id("todos", "missing") is None


def test_update_refuses_to_change_the_id(service: HttpClient) -> None:
    with pytest.raises(ValueError, match="'id'"):
        service.update("todos", "t1", {"id": "t2"})


def test_delete_and_delete_all(service: HttpClient) -> None:
    service.bulk_insert({"todos": [todo(i) for i in range(3)], "messages": [{"text": "m", "author_id": "a"}]})
    service.delete("todos", "t0")
    assert [r["id"] for r in service.fetch("todos")] == ["t1", "t2"]
    service.delete("todos", "t0")  # twice: no error
    assert service.delete_all("todos") == 2
    assert service.fetch("todos") == []
    assert service.delete_all("todos") == 0
    assert len(service.fetch("messages")) == 1


def test_apply_changes_inserts_updates_and_deletes_in_one_batch(service: HttpClient) -> None:
    service.bulk_insert({"todos": [todo(1), todo(2)]})
    complete = {"id": "t3", "text": "new", "owner": "bob", "completed": False,
                "created_at": "2024-01-01T00:00:00.000Z"}
    service.apply_changes({"todos": {"sets": {"t3": complete, "t1": {"text": "patched"}}, "deletes": {"t2"}}})
    rows = {r["id"]: r for r in service.fetch("todos")}
    assert set(rows) == {"t1", "t3"}
    assert rows["t1"]["text"] == "patched" and rows["t1"]["owner"] == "alice"
    assert rows["t3"]["created_at"] == "2024-01-01T00:00:00.000Z"


def test_apply_changes_rejects_the_whole_batch_on_one_bad_document(service: HttpClient) -> None:
    with pytest.raises(SchemaValidationError) as info:  # no defaults are filled for changes
        ok = {"id": "ok", "text": "a", "owner": "o", "completed": False,
              "created_at": "2024-01-01T00:00:00.000Z"}
        bad = {"id": "bad", "text": "a", "owner": "o"}
        service.apply_changes({"todos": {"sets": {"ok": ok, "bad": bad}, "deletes": set()}})
    assert info.value.name == "DBSerializationError" and info.value.status == 400
    assert service.fetch("todos") == []


def test_stats_and_clear(service: HttpClient) -> None:
    service.bulk_insert({"todos": [todo(i) for i in range(3)], "messages": [{"text": "m", "author_id": "a"}]},
                        no_return=True)
    assert service.stats() == {"todos": 3, "messages": 1}
    service.clear_server()
    assert service.stats() == {"todos": 0, "messages": 0}
    assert service.schema() is not None  # clear_server() keeps the schema


def test_schema_returns_the_server_schema(service: HttpClient) -> None:
    schema = service.schema()
    assert schema is not None
    assert set(schema["collections"]) == {"todos", "messages"}
    assert schema["roles"]["user"] == {"match": {"sub": "$userId"}}


def test_healthcheck(triplit: TriplitTestServer) -> None:
    with HttpClient(triplit.url) as http:  # no token needed
        assert http.healthcheck() is True


# ---------------------------------------------------------------------------------- bulk


def test_bulk_insert_10000_entities_then_fetch_them_back(service: HttpClient) -> None:
    # Text that could upset the server's hand-made multipart parser: CRLFs, dashes, non-ASCII.
    entities = [{"id": f"b{i:05d}", "text": f"ünïcode {i} \r\n\r\n--", "owner": f"u{i % 7}"}
                for i in range(10_000)]
    result = service.bulk_insert({"todos": entities}, timeout=120)
    assert result is not None and len(result["todos"]) == 10_000
    assert result["todos"][42]["text"] == "ünïcode 42 \r\n\r\n--"
    assert result["todos"][42]["completed"] is False
    fetched = service.fetch({"collectionName": "todos", "order": [["id", "ASC"]]}, timeout=120)
    assert [r["id"] for r in fetched] == [e["id"] for e in entities]
    assert fetched[9_999]["text"] == entities[9_999]["text"]
    assert service.stats()["todos"] == 10_000


def test_bulk_insert_no_return_and_several_collections(service: HttpClient) -> None:
    assert service.bulk_insert({"todos": [todo(1)], "messages": [{"id": "m", "text": "x", "author_id": "a"}]},
                               no_return=True) is None
    assert service.stats() == {"todos": 1, "messages": 1}


def test_bulk_insert_is_all_or_nothing(service: HttpClient) -> None:
    with pytest.raises(SchemaValidationError):
        service.bulk_insert({"todos": [todo(1), {"id": "bad", "text": 5, "owner": "x"}]})
    assert service.fetch("todos") == []


def test_payload_too_large(service: HttpClient) -> None:
    # The server's body limit is maxPayloadMb (100 MB by default); one 101 MB string is the
    # cheapest body over it. The server answers from Content-Length, before inserting anything.
    huge = "x" * (101 * 1024 * 1024)
    with pytest.raises(PayloadTooLargeError) as info:
        service.bulk_insert({"todos": [{"text": huge, "owner": "a"}]})
    del huge
    assert info.value.status == 413
    assert "100 MB" in info.value.message
    assert service.fetch("todos") == []  # and the pooled connection still works


# ---------------------------------------------------------------------------------- errors


def test_write_permission_denied_for_a_user(triplit: TriplitTestServer, service: HttpClient,
                                            alice: HttpClient) -> None:
    alice.insert("todos", todo(1, owner="alice"))  # allowed: her own
    with pytest.raises(PermissionDeniedError) as info:
        alice.insert("todos", todo(2, owner="bob"))
    assert info.value.name == "WritePermissionError" and info.value.status == 401
    assert "roles were [user]" in info.value.message
    service.insert("todos", todo(3, owner="bob"))
    with pytest.raises(PermissionDeniedError):
        alice.update("todos", "t3", {"text": "mine now"})
    with pytest.raises(PermissionDeniedError):
        alice.delete("todos", "t3")
    with pytest.raises(PermissionDeniedError):
        alice.bulk_insert({"todos": [todo(4, owner="alice"), todo(5, owner="bob")]})
    assert sorted(r["id"] for r in service.fetch("todos")) == ["t1", "t3"]


@pytest.mark.parametrize("call", [
    lambda h: h.stats(), lambda h: h.schema(), lambda h: h.clear_server(), lambda h: h.delete_all("todos"),
    lambda h: h.apply_changes({"todos": {"sets": {}, "deletes": {"x"}}}),
    lambda h: h.override_schema({"collections": {}}),
])
def test_admin_routes_need_a_service_token(alice: HttpClient, call: Any) -> None:
    with pytest.raises(PermissionDeniedError) as info:
        call(alice)
    assert info.value.name == "ServiceKeyRequiredError" and info.value.status == 401


def test_bad_tokens(triplit: TriplitTestServer) -> None:
    cases = {
        "not-a-jwt": ("InvalidTokenPayloadError", 400),
        mint_token("wrong-secret", sub="alice"): ("InvalidTokenSignatureError", 401),
        triplit.user_token("alice", expires_in=-60): ("InvalidTokenSignatureError", 401),  # expired
    }
    for token, (name, status) in cases.items():
        with HttpClient(triplit.url, token) as http:
            with pytest.raises(AuthenticationError) as info:
                http.fetch("todos")
        assert (info.value.name, info.value.status) == (name, status)
        assert token not in str(info.value) and token not in repr(info.value)


def test_expired_token_names_the_expiry(triplit: TriplitTestServer) -> None:
    with HttpClient(triplit.url, triplit.user_token("alice", expires_in=-60)) as http:
        with pytest.raises(AuthenticationError, match='"exp" claim'):
            http.insert("todos", todo(1))


def test_invalid_filter(service: HttpClient) -> None:
    with pytest.raises(InvalidQueryError) as info:
        service.fetch({"collectionName": "todos", "where": [["text", "~~", "x"]]})
    assert info.value.name == "InvalidFilterError" and info.value.status == 400
    assert "Operator '~~'" in info.value.message
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidQueryError, match="bogus"):
        service.fetch({"collectionName": "todos", "where": [["bogus", "=", 1]]})
    with pytest.raises(InvalidQueryError) as info:
        service.fetch({"collectionName": "todos", "order": [["nope", "ASC"]]})
    assert info.value.name == "InvalidOrderClauseError"


def test_unknown_collection(service: HttpClient) -> None:
    with pytest.raises(InvalidQueryError) as info:
        service.fetch("nope")
    assert info.value.name == "InvalidCollectionNameError" and info.value.status == 400
    # The server's insert route crashes on an unknown collection and says only that it failed.
    with pytest.raises(ServerError) as err:
        service.insert("nope", {"a": 1})
    assert err.value.status == 500


def test_token_provider_follows_refreshes(triplit: TriplitTestServer) -> None:
    tokens: List[Any] = [triplit.user_token("alice")]
    with HttpClient(triplit.url, lambda: tokens[-1]) as http:
        with pytest.raises(PermissionDeniedError):
            http.stats()
        tokens.append(triplit.service_token())
        assert http.stats() == {"todos": 0, "messages": 0}
        tokens.append(None)
        with pytest.raises(NoActiveSessionError):
            http.stats()
        assert http.healthcheck() is True  # needs no token


def test_non_json_error_bodies(triplit: TriplitTestServer, service: HttpClient) -> None:
    # The server answers some requests with plain text; no public method sends these, so the
    # private request helper provokes them.
    with pytest.raises(NotFoundError) as info:
        service._send("GET", "fetch")  # data routes are POST only: "404 Not Found" (text)
    assert info.value.status == 404 and "404 Not Found" in info.value.message
    with pytest.raises(ServerError) as err:  # a non-multipart body makes its parser throw
        service._send("POST", "bulk-insert-file", content=b"{}", headers={"Content-Type": "application/json"})
    assert err.value.status == 500 and "Internal server error" in err.value.message
    with pytest.raises(ProtocolError, match="not JSON"):
        service._json("healthcheck", service._send("GET", "healthcheck", auth=False))


def test_unknown_route_is_not_found(service: HttpClient) -> None:
    with pytest.raises(NotFoundError) as info:
        service._post("no-such-route", {})
    assert info.value.name == "RouteNotFoundError"


def test_closed_client_raises(triplit: TriplitTestServer) -> None:
    http = HttpClient(triplit.url, triplit.service_token())
    http.close()
    http.close()
    with pytest.raises(ClientClosedError):
        http.fetch("todos")
    assert "closed" in repr(http)


# ---------------------------------------------------------------------------------- threads


def test_threads_share_one_client(triplit: TriplitTestServer, service: HttpClient) -> None:
    n_threads, per_thread = 8, 25
    errors: List[BaseException] = []
    start = threading.Barrier(n_threads, timeout=30)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                service.insert("todos", todo(t * 1000 + i, owner=f"w{t}"))
                rows = service.fetch({"collectionName": "todos", "where": [["owner", "=", f"w{t}"]]})
                assert len(rows) == i + 1
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,), name=f"http-worker-{t}") for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads)
    assert errors == []
    assert service.stats()["todos"] == n_threads * per_thread


def test_errors_are_triplit_errors(service: HttpClient) -> None:
    with pytest.raises(TriplitError):
        service.fetch({"collectionName": "todos", "where": [["text", "~~", "x"]]})
