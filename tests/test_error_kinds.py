"""The error tree: every class under its kind and its old bases, server twins, and one
real-server error per kind caught by that kind (errors.py docstring, README "Errors")."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterator, Set, Tuple, Type

import pytest

import triplit_sync
from triplit_sync import errors
from triplit_sync.errors import (
    AnyConnectionError,
    AnyQueryError,
    AnySessionError,
    AnyStorageError,
    AnyWriteError,
    AuthenticationError,
    EntityNotFoundError,
    InvalidQueryError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    SchemaValidationError,
    ServerEntityNotFoundError,
    ServerError,
    ServerInvalidQueryError,
    ServerSchemaValidationError,
    ServerTokenExpiredError,
    StorageLockedError,
    TokenExpiredError,
    TriplitConnectionError,
    TriplitError,
    WriteError,
    server_error_from_json,
)
from triplit_sync.http import HttpClient
from triplit_sync.testing import TriplitTestServer

from .conftest import SAMPLE_SCHEMA

pytest_plugins = ["tests.support.client_fixtures"]  # make_client

Make = Callable[..., triplit_sync.TriplitClient]

KINDS = (AnyConnectionError, AnySessionError, AnyQueryError, AnyWriteError, AnyStorageError)

#: Every error class, with every triplit_sync or builtin base it must be catchable by: its kind,
#: and the bases it had before the kinds existed (TriplitError, ServerError, ValueError...).
TREE: Dict[str, Set[str]] = {
    "TriplitConnectionError": {"AnyConnectionError", "ConnectionError"},
    "TriplitTimeoutError": {"AnyConnectionError", "TimeoutError"},
    "ProtocolError": {"AnyConnectionError"},
    "ClientClosedError": {"AnyConnectionError"},
    "AuthenticationError": {"AnySessionError", "ServerError"},
    "ServerTokenExpiredError": {"AnySessionError", "ServerError", "AuthenticationError", "TokenExpiredError"},
    "PermissionDeniedError": {"AnySessionError", "ServerError"},
    "NoActiveSessionError": {"AnySessionError"},
    "TokenDecodingError": {"AnySessionError", "ValueError"},
    "TokenExpiredError": {"AnySessionError"},
    "SessionRolesMismatchError": {"AnySessionError"},
    "InvalidQueryError": {"AnyQueryError", "ValueError"},
    "ServerInvalidQueryError": {"AnyQueryError", "ServerError", "InvalidQueryError", "ValueError"},
    "QueryError": {"AnyQueryError", "ServerError"},
    "WriteError": {"AnyWriteError", "ServerError"},
    "SchemaValidationError": {"AnyWriteError", "ValueError"},
    "ServerSchemaValidationError": {"AnyWriteError", "ServerError", "SchemaValidationError", "ValueError"},
    "EntityNotFoundError": {"AnyWriteError", "LookupError"},
    "ServerEntityNotFoundError": {"AnyWriteError", "ServerError", "NotFoundError", "EntityNotFoundError",
                                  "LookupError"},
    "PayloadTooLargeError": {"AnyWriteError", "ServerError"},
    "StorageLockedError": {"AnyStorageError"},
    "StorageCorruptError": {"AnyStorageError"},
    "StorageUnsafeError": {"AnyStorageError"},
    "NotFoundError": {"ServerError"},
    "ServerError": set(),
}
BUILTINS = {"ValueError": ValueError, "LookupError": LookupError, "ConnectionError": ConnectionError,
            "TimeoutError": TimeoutError}


def error_classes() -> Dict[str, Type[TriplitError]]:
    return {name: getattr(errors, name) for name in errors.__all__
            if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), TriplitError)}


def test_every_error_class_is_placed_in_the_tree() -> None:
    placed = set(TREE) | {k.__name__ for k in KINDS} | {"TriplitError"}
    assert set(error_classes()) == placed
    for name in error_classes():  # and exported from the package
        assert getattr(triplit_sync, name) is getattr(errors, name), name


@pytest.mark.parametrize("name", sorted(TREE))
def test_class_is_catchable_by_its_kind_and_old_bases(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, TriplitError)
    for base in TREE[name]:
        assert issubclass(cls, BUILTINS.get(base) or getattr(errors, base)), (name, base)
    # exactly the listed kinds, and a ServerError only where the tree says so
    assert {k.__name__ for k in KINDS if issubclass(cls, k)} == {b for b in TREE[name] if b.startswith("Any")}
    assert issubclass(cls, ServerError) == (name == "ServerError" or "ServerError" in TREE[name])


def test_kinds_are_direct_children_of_triplit_error() -> None:
    for kind in KINDS:
        assert kind.__bases__ == (TriplitError,)
    direct = {c for c in error_classes().values() if TriplitError in c.__bases__}
    assert direct == set(KINDS) | {ServerError}


def test_every_error_the_server_names_is_a_server_error() -> None:
    """The old map made a server InvalidQueryError (and the serialization errors) miss ``except ServerError``."""
    for name in errors._BY_NAME:
        error = server_error_from_json({"name": name, "message": "m", "status": 400})
        assert isinstance(error, ServerError), name
        assert error.name == name and error.status == 400


@pytest.mark.parametrize("name, twin, local", [
    ("EntityNotFoundError", ServerEntityNotFoundError, EntityNotFoundError),
    ("TokenExpiredError", ServerTokenExpiredError, TokenExpiredError),
    ("InvalidFilterError", ServerInvalidQueryError, InvalidQueryError),
    ("DBSerializationError", ServerSchemaValidationError, SchemaValidationError),
])
def test_a_server_error_named_like_a_local_class_is_that_class(name: str, twin: type, local: type) -> None:
    error = server_error_from_json({"name": name, "message": "m"}, 404)
    assert type(error) is twin and isinstance(error, local) and isinstance(error, ServerError)
    if local is EntityNotFoundError:
        assert isinstance(error, NotFoundError)  # what it was before
    if local is TokenExpiredError:
        assert isinstance(error, AuthenticationError)  # what it was before


# ------------------------------------------------------------------ one real error per kind


@pytest.fixture
def service(triplit: TriplitTestServer) -> Iterator[HttpClient]:
    with HttpClient(triplit.url, triplit.service_token()) as http:
        yield http


def caught_by(error: BaseException) -> Tuple[str, ...]:
    return tuple(k.__name__ for k in KINDS if isinstance(error, k))


def test_connection_kind(service: HttpClient) -> None:
    with pytest.raises(AnyConnectionError) as info:
        HttpClient("http://127.0.0.1:9", "t.o.k").fetch("todos")  # port 9: nothing listens
    assert isinstance(info.value, TriplitConnectionError) and caught_by(info.value) == ("AnyConnectionError",)
    # the real server's health check answers text, not JSON: a protocol break, of the same kind
    with pytest.raises(AnyConnectionError) as info:
        service._json("healthcheck", service._send("GET", "healthcheck", auth=False))
    assert isinstance(info.value, ProtocolError)


def test_session_kind_an_expired_token_is_token_expired(triplit: TriplitTestServer,
                                                        make_client: Make) -> None:
    expired = triplit.user_token("alice", expires_in=-60)
    with HttpClient(triplit.url, expired) as http:
        with pytest.raises(TokenExpiredError) as info:  # the server noticed
            http.fetch("todos")
    error = info.value
    assert type(error) is ServerTokenExpiredError and isinstance(error, AuthenticationError)
    assert isinstance(error, ServerError) and caught_by(error) == ("AnySessionError",)
    assert (error.name, error.status) == ("InvalidTokenSignatureError", 401)  # the server's own name stays
    assert expired not in str(error) and expired not in repr(error)
    client = make_client(triplit, schema=SAMPLE_SCHEMA)
    with pytest.raises(TokenExpiredError) as local:  # the client noticed: the same class catches it
        client.start_session(expired)
    assert not isinstance(local.value, ServerError) and caught_by(local.value) == ("AnySessionError",)
    with HttpClient(triplit.url, triplit.user_token("alice")) as alice:
        with pytest.raises(AnySessionError) as denied:
            alice.insert("todos", {"text": "x", "owner": "bob"})
    assert isinstance(denied.value, PermissionDeniedError)


def test_query_kind_a_refused_query_is_a_server_error(service: HttpClient) -> None:
    with pytest.raises(ServerError) as info:  # the old map missed this
        service.fetch({"collectionName": "todos", "where": [["text", "~~", "x"]]})
    error = info.value
    assert type(error) is ServerInvalidQueryError and isinstance(error, InvalidQueryError)
    assert isinstance(error, ValueError) and caught_by(error) == ("AnyQueryError",)
    assert (error.name, error.status) == ("InvalidFilterError", 400)
    with pytest.raises(AnyQueryError) as local:
        service.fetch("")
    assert type(local.value) is InvalidQueryError  # refused at the call, never sent


def test_write_kind(triplit: TriplitTestServer, make_client: Make) -> None:
    client = make_client(triplit, triplit.user_token("alice"), schema=SAMPLE_SCHEMA)
    assert client.wait_connected(10)
    with pytest.raises(AnyWriteError) as local:
        client.update("todos", "missing", lambda t: t.update(text="x"))
    assert type(local.value) is EntityNotFoundError and not isinstance(local.value, ServerError)
    client.insert("todos", {"id": "bad", "text": "x", "owner": "bob"})  # alice may not write bob's todos
    with pytest.raises(AnyWriteError) as info:
        client.wait_for_sync(10)
    assert type(info.value) is WriteError and info.value.name == "WritePermissionError"
    assert caught_by(info.value) == ("AnyWriteError",)


def test_storage_kind(triplit: TriplitTestServer, tmp_path: Path) -> None:
    first = triplit_sync.TriplitClient(triplit.url, triplit.service_token(), data_dir=tmp_path, name="kinds")
    try:
        with pytest.raises(AnyStorageError) as info:
            triplit_sync.TriplitClient(triplit.url, data_dir=tmp_path, name="kinds")
        assert type(info.value) is StorageLockedError and caught_by(info.value) == ("AnyStorageError",)
    finally:
        first.close()
