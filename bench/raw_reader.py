"""The floors: bare websocket-client peers that only ``json.loads`` / ``json.dumps`` the frames.

No cache, no query evaluation, no outbox. P1: connect, wait for READY, send the same
CONNECT_QUERY the clients send, decode every frame until the ENTITY_DATA that fulfils it. P2 and
P3a: hand-written CHANGES frames (one full todo each) and a subscriber socket on its own thread.
P4: a resume with the same ``state`` the clients send. What the server and the loopback cost,
without any client.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from typing import Any, Dict, List
from urllib.parse import urlencode

import websocket

from bench._worker import main, now, rss

P2_QUERY = {"collectionName": "todos", "where": [["completed", "=", False]],
            "order": [["created_at", "DESC"]], "limit": 50}


def connect(job: Dict[str, Any]) -> "websocket.WebSocket":
    query = urlencode({"sync-schema": "false", "token": job["token"]})
    url = "ws://" + job["url"].split("://", 1)[1] + "?" + query
    # UTF-8 is checked anyway when the frame is decoded to str; websocket-client's own
    # pure-Python validator would only double that work.
    ws = websocket.create_connection(url, skip_utf8_validation=True, enable_multithread=True)
    while json.loads(ws.recv())["type"] != "READY":
        pass
    return ws


def p1(job: Dict[str, Any]) -> Dict[str, Any]:
    rss0 = rss()
    ws = connect(job)
    t0 = now()
    ws.send(json.dumps({"type": "CONNECT_QUERY",
                        "payload": {"id": "bench-all", "params": {"collectionName": "todos"}}}))
    rows = received = 0
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


def _load(ws: "websocket.WebSocket", query_id: str, state: Any = None) -> Dict[str, Any]:
    payload: Dict[str, Any] = {"id": query_id, "params": {"collectionName": "todos"}}
    if state is not None:
        payload["state"] = state
    ws.send(json.dumps({"type": "CONNECT_QUERY", "payload": payload}))
    ids: List[str] = []
    while True:
        msg = json.loads(ws.recv())
        if msg["type"] == "ENTITY_DATA":
            ids.extend(i for c in msg["payload"]["changes"]["json"].values() for i, _ in c.get("sets", ()))
            if query_id in msg["payload"]["forQueries"]:
                return {"timestamp": msg["payload"]["timestamp"], "ids": ids}
        elif msg["type"] == "ERROR":
            raise RuntimeError(f"server error: {msg['payload']}")


def p4_load(job: Dict[str, Any]) -> Dict[str, Any]:
    """Keeps what a resuming client needs (the last timestamp, the ids) in a file."""
    ws = connect(job)
    t0 = now()
    got = _load(ws, "bench-all")
    t1 = now()
    ws.close()
    os.makedirs(job["data_dir"], exist_ok=True)
    with open(os.path.join(job["data_dir"], "raw-state.json"), "w") as f:
        json.dump(got, f)
    return {"load_ms": (t1 - t0) * 1000, "rows": len(got["ids"])}


def p4_resume(job: Dict[str, Any]) -> Dict[str, Any]:
    """The floor of a resume: CONNECT_QUERY with the state every client sends (the checkpoint and
    all the ids it holds), until the answer is decoded; the server's share of P4."""
    with open(os.path.join(job["data_dir"], "raw-state.json")) as f:
        state = json.load(f)
    ws = connect(job)
    t0 = now()
    _load(ws, "bench-all", {"timestamp": state["timestamp"], "entityIds": {"todos": sorted(state["ids"])}})
    t1 = now()
    ws.close()
    return {"resume_ms": (t1 - t0) * 1000}


def _insert_frame(job: Dict[str, Any], i: int) -> "tuple[str, str]":
    tid = f"{job['id_prefix']}{i:06d}"
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    todo = {"id": tid, "text": f"bench write {i} #7", "completed": False, "created_at": stamp,
            "owner": job["user_id"]}
    changes = {"json": {"todos": {"sets": [[tid, todo]], "deletes": []}},
               "meta": {"values": {"todos.sets": ["map"], "todos.deletes": ["set"]}}}
    return tid, json.dumps({"type": "CHANGES", "payload": {"changes": changes}})


def _await_ack(ws: "websocket.WebSocket") -> None:
    while True:
        msg = json.loads(ws.recv())
        if msg["type"] == "CHANGES_ACK":
            return
        if msg["type"] == "ERROR":
            raise RuntimeError(f"write rejected: {msg['payload']}")


def p3a(job: Dict[str, Any]) -> Dict[str, Any]:
    ws = connect(job)
    ms: List[float] = []
    for i in range(job["count"]):
        _, frame = _insert_frame(job, i)
        t0 = now()
        ws.send(frame)
        _await_ack(ws)
        ms.append((now() - t0) * 1000)
    ws.close()
    return {"ack_ms": ms}


def p2(job: Dict[str, Any]) -> Dict[str, Any]:
    sub = connect(job)
    writer = connect(job)
    seen: Dict[str, float] = {}
    wanted = [f"{job['id_prefix']}{i:06d}" for i in range(job["count"])]
    fulfilled = threading.Event()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                frame = sub.recv()
            except Exception:
                return
            t = now()
            msg = json.loads(frame)
            if msg["type"] != "ENTITY_DATA":
                continue
            for coll in msg["payload"]["changes"]["json"].values():
                for tid, _ in coll.get("sets", ()):
                    seen.setdefault(tid, t)
            if "bench-p2" in msg["payload"]["forQueries"]:
                fulfilled.set()
            if len(seen) >= job["count"] and all(tid in seen for tid in wanted):
                done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sub.send(json.dumps({"type": "CONNECT_QUERY", "payload": {"id": "bench-p2", "params": P2_QUERY}}))
    if not fulfilled.wait(60):
        raise TimeoutError("the raw subscriber got no answer")
    started: Dict[str, float] = {}
    ack_ms: List[float] = []
    for i in range(job["count"]):
        tid, frame = _insert_frame(job, i)
        t0 = now()
        started[tid] = t0
        writer.send(frame)
        _await_ack(writer)
        ack_ms.append((now() - t0) * 1000)
    if not done.wait(30):
        raise TimeoutError("the raw subscriber did not see every insert")
    writer.close()
    sub.close()
    return {"latency_ms": [(seen[t] - started[t]) * 1000 for t in started], "ack_ms": ack_ms}


if __name__ == "__main__":
    main("raw", {"P1": p1, "P2": p2, "P3a": p3a, "P4_load": p4_load, "P4_resume": p4_resume})
