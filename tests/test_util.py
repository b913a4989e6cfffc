"""The shared utilities (_util): their docstring examples, and the one timer facility."""

from __future__ import annotations

import doctest
import importlib
import threading

import pytest

from triplit_sync._util.jsonio import dumps, loads
from triplit_sync._util.timers import OneShot

MODULES = ["jsonio", "jsnumber", "timers", "urls"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"triplit_sync._util.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_json_hands_datetimes_to_default_with_either_library() -> None:
    import datetime

    when = datetime.datetime(2024, 1, 2, 3, 4, 5)
    with pytest.raises(TypeError, match="datetime"):
        dumps({"at": when})
    assert loads(dumps({"at": when}, default=lambda v: v.isoformat())) == {"at": "2024-01-02T03:04:05"}


def test_a_one_shot_runs_once_and_a_new_schedule_replaces_the_pending_call() -> None:
    ran = []
    done = threading.Event()
    timer = OneShot("test")
    timer.schedule(60, ran.append, "replaced")
    timer.schedule(0, lambda: (ran.append("ran"), done.set()))
    assert done.wait(5)
    timer.join(5)
    assert ran == ["ran"] and not timer.pending


def test_a_call_may_schedule_the_next_one_itself() -> None:
    calls = []
    done = threading.Event()
    timer = OneShot("test")

    def tick() -> None:
        calls.append(timer.pending)  # not pending while it runs
        if len(calls) < 3:
            timer.schedule(0, tick)
        else:
            done.set()

    timer.schedule(0, tick)
    assert done.wait(5)
    assert calls == [False, False, False]


def test_cancel_drops_the_pending_call() -> None:
    ran = []
    timer = OneShot("test")
    timer.schedule(60, ran.append, 1)
    timer.cancel()
    timer.join(5)
    assert ran == [] and not timer.pending
