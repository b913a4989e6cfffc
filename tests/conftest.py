"""Test base for the whole suite: the real-server fixtures and the background-thread guard."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest

pytest_plugins = ["triplit_sync.pytest_plugin"]

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_SCHEMA = FIXTURES / "sample-schema.json"


@pytest.fixture(scope="session")
def triplit_schema() -> Any:
    """The suite's shared server runs the sample schema (roles anonymous / user / admin)."""
    return SAMPLE_SCHEMA


@pytest.fixture(autouse=True)
def fail_on_thread_exceptions() -> Iterator[None]:
    """An exception on any background thread fails the test that caused it."""
    caught: List[threading.ExceptHookArgs] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        caught.append(args)
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous
    if caught:
        first = caught[0]
        name = first.thread.name if first.thread else "?"
        pytest.fail(f"exception on background thread {name}: {first.exc_type.__name__}: {first.exc_value}",
                    pytrace=False)
