"""A Flask app on Triplit: the app's own work through one ``TriplitClient`` per process (service
token, local cache, outbox), the requesting user's work through one shared ``HttpClient`` that sends
each request's own token, so the server applies that user's permissions.

    TRIPLIT_URL=http://127.0.0.1:6543 TRIPLIT_SERVICE_TOKEN=... flask --app examples/flask_app run

(``triplit-sync dev`` prints both.) Users call it with ``Authorization: Bearer <their token>``.
``examples/test_app.py`` tests it with unittest against a real server.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any, Optional, Tuple

from flask import Flask, jsonify, request

from triplit_sync import DEMO_SCHEMA, HttpClient, PermissionDeniedError, Query, TriplitClient, TriplitError

request_token: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("request_token", default=None)


def create_app(url: Optional[str] = None, service_token: Optional[str] = None, schema: Any = DEMO_SCHEMA,
               **client_options: Any) -> Flask:
    url = url or os.environ["TRIPLIT_URL"]
    service_token = service_token or os.environ["TRIPLIT_SERVICE_TOKEN"]
    app = Flask(__name__)
    # The app's identity: one client per process, shared by every thread (its calls are thread-safe).
    app.extensions["triplit"] = triplit = TriplitClient(url, token=service_token, schema=schema,
                                                        name=client_options.pop("name", "flask-example"),
                                                        **client_options)
    # Each user's identity: one pool for all, the token read per request from the context variable.
    app.extensions["triplit_http"] = as_user = HttpClient(url, request_token.get, schema=schema)

    @app.before_request
    def take_token() -> None:
        header = request.headers.get("Authorization", "")
        request_token.set(header[len("Bearer "):] if header.startswith("Bearer ") else None)

    @app.errorhandler(TriplitError)
    def triplit_error(error: TriplitError) -> Tuple[Any, int]:
        # Every error of an HTTP call carries a status: the server's, or 502/503/504 when it did not answer.
        # A 1.1.8 server answers a refused permission with 401; to this app's callers it is a 403.
        status = 403 if isinstance(error, PermissionDeniedError) else error.status or 500
        return jsonify(error=error.name, message=error.message), status

    @app.get("/todos")
    def list_todos() -> Any:
        return jsonify(as_user.fetch(Query("todos").where("completed", "=", False).order("created_at", "DESC")))

    @app.post("/todos")
    def add_todo() -> Any:
        body = request.get_json(force=True)
        return jsonify(as_user.insert("todos", {"text": body["text"], "owner": body["owner"]})), 201

    @app.post("/admin/announce")
    def announce() -> Any:
        # The app's own write: optimistic, durable in the outbox before this returns.
        todo = triplit.insert("todos", {"text": request.get_json(force=True)["text"], "owner": "service"})
        triplit.wait_for_sync(timeout=10)
        return jsonify(todo), 201

    @app.get("/admin/count")
    def count() -> Any:
        return jsonify(open=len(triplit.fetch(triplit.query("todos").where("completed", "=", False))))

    return app
