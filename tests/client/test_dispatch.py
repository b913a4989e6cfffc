"""The callback thread: order, errors, flush and close from inside callbacks."""

from __future__ import annotations

import logging
import threading
from typing import List

import pytest

from triplit_sync.errors import ClientClosedError
from triplit_sync.sync.dispatch import Dispatcher


@pytest.fixture
def dispatcher() -> "Dispatcher":
    d = Dispatcher()
    yield d
    d.close(2)


def test_callbacks_run_in_order_on_one_daemon_thread(dispatcher: Dispatcher) -> None:
    seen: List[int] = []
    threads = set()

    def cb(i: int) -> None:
        seen.append(i)
        threads.add(threading.current_thread())

    for i in range(200):
        dispatcher.submit(cb, i)
    assert dispatcher.flush(5)
    assert seen == list(range(200))
    (thread,) = threads
    assert thread is not threading.current_thread() and thread.daemon


def test_kwargs_are_passed(dispatcher: Dispatcher) -> None:
    got = []
    dispatcher.submit(lambda a, b=0: got.append((a, b)), 1, b=2)
    assert dispatcher.flush(5) and got == [(1, 2)]


def test_an_exception_is_logged_reported_and_the_next_callback_runs(caplog: pytest.LogCaptureFixture) -> None:
    errors: List[BaseException] = []
    d = Dispatcher(error_hook=errors.append)
    ran = []

    def bad() -> None:
        raise RuntimeError("boom in callback")

    d.submit(bad)
    d.submit(ran.append, "after")
    with caplog.at_level(logging.ERROR, logger="triplit_sync.sync.dispatch"):
        assert d.flush(5)
    assert ran == ["after"]
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert any("boom in callback" in r.getMessage() for r in caplog.records)
    d.close()


def test_a_failing_error_hook_does_not_stop_the_thread() -> None:
    def hook(exc: BaseException) -> None:
        raise ValueError("hook broke")

    d = Dispatcher(error_hook=hook)
    ran = []
    d.submit(lambda: 1 / 0)
    d.submit(ran.append, 1)
    assert d.flush(5) and ran == [1]
    d.close()


def test_flush_inside_a_callback_runs_what_was_queued_without_deadlock(dispatcher: Dispatcher) -> None:
    order: List[str] = []
    results = []
    release = threading.Event()

    def first() -> None:
        release.wait(5)  # make sure "second" is queued behind us
        order.append("first-start")
        results.append(dispatcher.flush(5))
        order.append("first-end")

    dispatcher.submit(first)
    dispatcher.submit(order.append, "second")
    release.set()
    assert dispatcher.flush(5)
    assert results == [True]
    assert order == ["first-start", "second", "first-end"]


def test_flush_from_another_thread_waits_for_a_running_callback(dispatcher: Dispatcher) -> None:
    started, release = threading.Event(), threading.Event()
    dispatcher.submit(lambda: (started.set(), release.wait(5)))
    assert started.wait(5)
    assert dispatcher.flush(0.05) is False  # still running
    release.set()
    assert dispatcher.flush(5) is True


def test_close_from_inside_a_callback_does_not_join_itself() -> None:
    d = Dispatcher()
    closed, queued = threading.Event(), threading.Event()
    later = []

    def cb() -> None:
        queued.wait(5)
        d.close(5)
        closed.set()

    d.submit(cb)
    d.submit(later.append, "queued before close still runs")
    queued.set()
    assert closed.wait(5)
    assert d._thread is not None
    d._thread.join(5)
    assert not d._thread.is_alive()
    assert later == ["queued before close still runs"]


def test_close_drains_and_then_refuses(dispatcher: Dispatcher) -> None:
    ran = []
    for i in range(10):
        dispatcher.submit(ran.append, i)
    assert dispatcher.close(5) is True
    assert ran == list(range(10))
    with pytest.raises(ClientClosedError):
        dispatcher.submit(ran.append, 99)
    assert dispatcher.flush(1) is True


def test_flush_and_close_on_an_unused_dispatcher() -> None:
    d = Dispatcher()
    assert d.flush(0.1) is True
    assert d.close() is True


def test_submit_needs_a_callable(dispatcher: Dispatcher) -> None:
    with pytest.raises(TypeError, match="callable"):
        dispatcher.submit(42)  # type: ignore[arg-type]
