"""Test base for the whole suite: the real-server fixtures, the ``server`` marker and the
background-thread guard.

``server`` marks every test that needs Node (the real Triplit server, the JS client, ``triplit-sync
dev``), so ``pytest -m "not server"`` runs the rest without Node. Marking is automatic for tests that
use a fixture starting a server (see ``_needs_server``); a module that starts servers in its test
bodies sets ``pytestmark = pytest.mark.server``. A test that reaches Node without the marker fails
(``_node_guard``), so a missing marker shows in every run, not only in a run without Node.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

import triplit_sync.testing
import triplit_sync.testing._install

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


# --------------------------------------------------------------------------- the server marker

# Fixtures that give a test a running server; any fixture whose body starts one (module-local fixtures
# such as ``plain_server`` or ``durable``) is found by _starts_server.
SERVER_FIXTURES = {"triplit", "triplit_server", "rich"}
_STARTS_SERVER = re.compile(r"\b(shared_server|TriplitTestServer|js_driver|ensure_server_installed|ensure_js_client_installed)\(")
_fixture_verdicts: Dict[Any, bool] = {}


def _starts_server(func: Callable[..., Any]) -> bool:
    if func not in _fixture_verdicts:
        try:
            source = inspect.getsource(func)
        except (OSError, TypeError):
            source = ""
        _fixture_verdicts[func] = bool(_STARTS_SERVER.search(source))
    return _fixture_verdicts[func]


def _needs_server(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for name in item.fixturenames:  # type: ignore[attr-defined]  # the closure, transitive fixtures too
        if name in SERVER_FIXTURES:
            return True
        for fixturedef in info.name2fixturedefs.get(name, ()):
            if _starts_server(fixturedef.func):
                return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("server") is None and _needs_server(item):
            item.add_marker(pytest.mark.server)


# Every way the suite reaches Node goes through these functions of triplit_sync.testing._install (the
# server start, the npm install, the JS client driver); the package re-exports one of them.
NODE_ENTRY_POINTS = ("_which", "ensure_server_installed", "ensure_js_client_installed")
_current: Optional[pytest.Item] = None


def _node_guard(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        item = _current
        if item is not None and item.get_closest_marker("server") is None:
            pytest.fail(f"{item.nodeid} reaches Node (triplit_sync.testing.{name}) but is not marked `server`: "
                        f"add `pytestmark = pytest.mark.server` to its module, @pytest.mark.server to the test, "
                        f"or its fixture's name to SERVER_FIXTURES in tests/conftest.py", pytrace=False)
        return func(*args, **kwargs)

    return guarded


def pytest_configure(config: pytest.Config) -> None:
    for name in NODE_ENTRY_POINTS:
        func = getattr(triplit_sync.testing._install, name, None)
        assert func is not None, (f"tests/conftest.py guards triplit_sync.testing._install.{name}, which is gone: "
                                  f"update NODE_ENTRY_POINTS to the functions that now start Node")
        if not hasattr(func, "__wrapped__"):
            guarded = _node_guard(name, func)
            setattr(triplit_sync.testing._install, name, guarded)
            if hasattr(triplit_sync.testing, name):
                setattr(triplit_sync.testing, name, guarded)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Optional[pytest.Item]) -> Iterator[None]:
    global _current
    _current = item
    try:
        yield
    finally:
        _current = None
