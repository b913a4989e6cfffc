"""on_connection_status_change against the real server, through a relay that cuts and refuses
connections: every change, in order, on the callback thread; wait_connected as before."""

from __future__ import annotations

from typing import Iterator, List

import pytest

from tests.support.relay import Relay
from tests.support.session import ClientFactory, Events, client_factory
from triplit_sync import ConnectionStatus
from triplit_sync.testing import TriplitTestServer

C = ConnectionStatus


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    yield from client_factory()


def _statuses(events: Events) -> List[ConnectionStatus]:
    return list(events.values("status"))


def test_each_change_is_told_on_the_callback_thread_through_a_cut_and_a_refusal(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    with Relay(triplit.port) as relay:
        client = clients(relay.url, triplit.user_token("alice"), auto_connect=False)
        client._transport.backoff_initial, client._transport.backoff_max = 0.05, 0.2
        events = Events()
        client.on_connection_status_change(events.recorder("status"), run_immediately=True)
        events.wait_count("status", 1)
        assert _statuses(events) == [C.CLOSED]  # a session, not connected yet

        client.connect()
        assert client.wait_connected(10)
        events.wait_for(lambda: _statuses(events)[-1:] == [C.OPEN])
        assert _statuses(events) == [C.CLOSED, C.CONNECTING, C.OPEN]

        relay.refuse(True)  # the connection drops and cannot come back for now
        assert events.wait_for(lambda: C.CLOSED in _statuses(events)[3:])
        assert not client.wait_connected(0.5)
        relay.refuse(False)
        assert client.wait_connected(10)
        assert events.wait_for(lambda: _statuses(events)[-1:] == [C.OPEN])
        after_cut = _statuses(events)[3:]
        assert after_cut[0] is C.CLOSED and after_cut[-1] is C.OPEN
        assert set(after_cut) == {C.CLOSED, C.CONNECTING, C.OPEN}
        assert all(a is not b for a, b in zip(after_cut, after_cut[1:]))  # no repeats
        assert {thread for _, _, thread, _ in events.of("status")} == {"triplit-callbacks"}

        relay.cut()  # a plain network drop: the client resumes on its own
        assert events.wait_for(lambda: _statuses(events).count(C.OPEN) >= 3)
        assert client.wait_connected(10)

        seen = len(events.of("status"))
        client.end_session()
        assert events.wait_for(lambda: _statuses(events)[-1:] == [C.UNINITIALIZED])
        assert C.OPEN not in _statuses(events)[seen:]


def test_the_remover_stops_the_callback_and_callbacks_may_call_the_client(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    # Not connected before the callbacks are there: on a busy machine the socket can open
    # between the constructor's return and the next line, and OPEN would then never be told.
    client = clients(triplit.url, triplit.user_token("alice"), auto_connect=False)
    events = Events()
    late = Events()

    def on_status(status: ConnectionStatus) -> None:
        events.add("status", status)
        if status is C.OPEN:
            events.add("fetched", client.fetch(client.query("todos"), policy="local-only"))

    remove = client.on_connection_status_change(on_status)
    remove_late = client.on_connection_status_change(late.recorder("status"))
    client.connect()
    assert client.wait_connected(10)
    events.wait_count("fetched", 1)
    remove()
    client.disconnect()
    assert late.wait_for(lambda: _statuses(late)[-1:] == [C.CLOSED])
    client._dispatcher.flush(2)
    assert C.CLOSED not in _statuses(events)
    remove_late()
    remove_late()  # twice is harmless
    with pytest.raises(TypeError):
        client.on_connection_status_change("not callable")  # type: ignore[arg-type]


def test_without_a_session_the_status_is_uninitialized_and_start_session_is_told(
        triplit: TriplitTestServer, clients: ClientFactory) -> None:
    client = clients(triplit.url)
    events = Events()
    client.on_connection_status_change(events.recorder("status"), run_immediately=True)
    events.wait_count("status", 1)
    client.start_session(triplit.user_token("alice"))
    assert client.wait_connected(10)
    assert events.wait_for(lambda: _statuses(events)[-1:] == [C.OPEN])
    statuses = _statuses(events)
    assert statuses[0] is C.UNINITIALIZED and statuses[-2:] == [C.CONNECTING, C.OPEN]
