"""A tour of triplit_sync: sessions, live queries, optimistic writes, the HTTP client.

Run it against a local server started here (needs Node.js):

    python examples/todos.py

or against your own: TRIPLIT_URL=... TRIPLIT_TOKEN=... TRIPLIT_SCHEMA=schema.json python examples/todos.py
"""

import os
import sys
import tempfile
from contextlib import ExitStack

from triplit_sync import DEMO_SCHEMA, TriplitClient, WriteError
from triplit_sync.testing import TriplitTestServer



def say(text: str) -> None:
    # One write per line: the live query's callback prints from another thread.
    sys.stdout.write(text + "\n")


SCHEMA = DEMO_SCHEMA  # the schema `triplit-sync dev` serves


def main(url: str, token: str, schema: str, data_dir: str) -> None:
    # A session starts with a token; the local database lives in data_dir/<name>/.
    with TriplitClient(url, token=token, schema=schema, data_dir=data_dir, name="todos-example") as client:
        client.wait_connected(timeout=10)
        say(f"signed in with roles {sorted(client.session.roles)}")

        # A live query: called now and whenever the results change.
        open_todos = client.query("todos").where("completed", "=", False).order("created_at", "DESC")
        with client.subscribe(open_todos, lambda rows: say(f"open todos: {[t['text'] for t in rows]}")):
            # Optimistic writes: visible locally at once, durable in the outbox, synced in the background.
            milk = client.insert("todos", {"text": "buy milk", "owner": "dev-user"})
            client.insert("todos", {"text": "call mum", "owner": "dev-user"})
            client.update("todos", milk["id"], {"completed": True})
            client.wait_for_sync(timeout=10)  # every write acknowledged by the server

            # Several writes as one batch.
            with client.transact() as tx:
                for text in ("wash car", "pay rent"):
                    tx.insert("todos", {"text": text, "owner": "dev-user"})
            client.wait_for_sync(timeout=10)

            # The server's permissions reject a todo owned by someone else: rolled back, reported.
            client.insert("todos", {"text": "not mine", "owner": "someone-else"})
            try:
                client.wait_for_sync(timeout=10)
            except WriteError as e:
                say(f"rejected: {e.name}")

        say(f"done: {client.fetch_one(client.query('todos').where('completed', '=', True))['text']}")
        say(f"via HTTP: {len(client.http.fetch(client.query('todos')))} todos")


if __name__ == "__main__":
    with ExitStack() as stack:
        data_dir = stack.enter_context(tempfile.TemporaryDirectory())
        if os.environ.get("TRIPLIT_URL"):
            main(os.environ["TRIPLIT_URL"], os.environ["TRIPLIT_TOKEN"], os.environ.get("TRIPLIT_SCHEMA"), data_dir)
        else:
            server = stack.enter_context(TriplitTestServer(SCHEMA))
            main(server.url, server.user_token("dev-user"), SCHEMA, data_dir)
