"""The floor for P1: a bare websocket-client reader that only ``json.loads`` the same frames.

No cache, no query evaluation, no threads: connect, wait for READY, send the same CONNECT_QUERY
the clients send, and decode every frame until the ENTITY_DATA that fulfils the query.
"""

from __future__ import annotations

import json
from typing import Any, Dict
from urllib.parse import urlencode

import websocket

from bench._worker import main, now, rss


def p1(job: Dict[str, Any]) -> Dict[str, Any]:
    rss0 = rss()
    url = "ws://" + job["url"].split("://", 1)[1] + "?" + urlencode({"sync-schema": "false", "token": job["token"]})
    # UTF-8 is checked anyway when the frame is decoded to str; websocket-client's own
    # pure-Python validator would only double that work.
    ws = websocket.create_connection(url, skip_utf8_validation=True, enable_multithread=False)
    received = 0
    while True:
        frame = ws.recv()
        received += len(frame)
        if json.loads(frame)["type"] == "READY":
            break
    t0 = now()
    ws.send(json.dumps({"type": "CONNECT_QUERY", "payload": {"id": "bench-all", "params": {"collectionName": "todos"}}}))
    rows = 0
    while True:
        frame = ws.recv()
        received += len(frame)  # characters; the frames are ASCII here
        msg = json.loads(frame)
        if msg["type"] == "ENTITY_DATA":
            rows += sum(len(c.get("sets", ())) for c in msg["payload"]["changes"]["json"].values())
            if "bench-all" in msg["payload"]["forQueries"]:
                break
        elif msg["type"] == "ERROR":
            raise RuntimeError(f"server error: {msg['payload']}")
    t1 = now()
    rss1 = rss()
    ws.close()
    return {"load_ms": (t1 - t0) * 1000, "rows": rows, "rss_before": rss0, "rss_after": rss1,
            "rss_growth": rss1 - rss0, "bytes_received": received}


if __name__ == "__main__":
    main("raw", {"P1": p1})
