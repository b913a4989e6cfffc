"""Shared test support (not test modules): every helper the test files import lives here.

- ``client``: collectors, a wire spy, server-row readers and client processes (``python_driver`` runs
  ``py_driver.py``, ``js_driver`` runs the official JS client with ``js_driver.mjs``, both by path).
- ``client_fixtures``: the ``make_client`` / ``rich`` pytest fixtures (``pytest_plugins``).
- ``session``, ``slots``, ``store``: helpers of the session, slot and store tests.
- ``relay`` (loopback TCP relay: stall, cut, refuse), ``fakeserver`` (a scripted websocket server),
  ``mini_triplit`` (a small Triplit on the fake server), ``recorder`` (transport event recorder).
- ``query_gen`` (seeded data and queries), ``rich_schema`` and ``schema_samples`` (schemas).

The fault suite (``python -m tests.faults``) stays in ``tests/faults``: it is a runnable suite of its
own, and imports its helpers from here.
"""
