"""A background worker on Triplit: a live query of the jobs it must do (open todos whose text starts
with ``auto:``), done as they arrive, with a token that expires and a refresh handler that renews it
on the open connection.

    TRIPLIT_URL=http://127.0.0.1:6543 TRIPLIT_SECRET=jwt-key-for-development-only python examples/worker.py

(``triplit-sync dev`` prints both.) Here the worker signs its own short-lived service tokens with
the server's secret, as an app with its own auth does; yours may ask an auth service instead.
Ctrl-C (or SIGTERM) stops it; ``--stop-on-eof`` also stops it when its stdin closes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any, Dict, List, Optional, Set

from triplit_sync import DEMO_SCHEMA, TriplitClient, mint_token


def say(text: str) -> None:
    # One write per line: callbacks and the refresh timer run on other threads.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run(url: str, secret: str, stop: threading.Event, *, token_lifetime: float = 3600.0,
        data_dir: Optional[str] = None) -> None:
    refreshes = 0

    def new_token() -> str:
        return mint_token(secret, token_type="secret", expires_in=token_lifetime)

    def refresh() -> str:
        # Called on a timer 1 s before the token's exp; the new token is swapped in on the live connection.
        nonlocal refreshes
        refreshes += 1
        say(f"refreshed the token ({refreshes})")
        return new_token()

    with TriplitClient(url, token=new_token(), refresh_handler=refresh, schema=DEMO_SCHEMA,
                       name="worker-example", data_dir=data_dir) as client:
        client.on_refresh_error(lambda error: say(f"refresh failed: {error}"))
        handled: Set[str] = set()
        jobs = client.query("todos").where("completed", "=", False).where("text", "like", "auto:%")

        def on_jobs(rows: List[Dict[str, Any]]) -> None:
            # Callbacks run in order on one thread; a job may still show in a result queued before
            # its own update, so remember what was done.
            for row in rows:
                if row["id"] not in handled:
                    handled.add(row["id"])
                    client.update("todos", row["id"], {"completed": True})
                    say(f"done: {row['text']}")

        with client.subscribe(jobs, on_jobs, on_remote_fulfilled=lambda: say("ready")):
            stop.wait()
        client.wait_for_sync(timeout=10)  # leave nothing unsent behind
    say("stopped")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-lifetime", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--data-dir", help="where the worker's local database lives (default: user data dir)")
    parser.add_argument("--stop-on-eof", action="store_true", help="stop when stdin closes")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.stop_on_eof:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    try:
        run(os.environ["TRIPLIT_URL"], os.environ["TRIPLIT_SECRET"], stop, token_lifetime=args.token_lifetime,
            data_dir=args.data_dir)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
