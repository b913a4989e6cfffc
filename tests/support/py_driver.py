"""A TriplitClient in its own process, driven by JSON lines (see tests/support/client.py).

argv[1] is a JSON object of TriplitClient keyword arguments plus ``url``; the client is built at
start. Requests ``{"id", "cmd", ...}`` on stdin, one reply per request on stdout. Rows go out
normalized (dates as ISO strings, sets as sorted lists).

Events (lines with an ``"event"`` key and no ``"id"``) go out unasked: ``writeLoop`` starts a
thread of random writes and reports each as ``begin`` before the call and ``done`` after it
returned, so a parent that kills this process knows exactly which calls had returned
(tests/faults/kill9.py); every write the server rejects is reported as ``sync_error``.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import sys
import threading
import time
from typing import Any, Dict, List

# Run as a script (python tests/support/py_driver.py): the repository root makes `tests` importable.
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.dirname(
    __import__("os").path.abspath(__file__)))))

from tests.support.client import Collector, SentLog, normalize  # noqa: E402
from triplit_sync import TriplitClient  # noqa: E402
from triplit_sync.errors import WriteError  # noqa: E402
from triplit_sync.wire.messages import ConnectQuery, EntityData  # noqa: E402

logging.basicConfig(stream=sys.stderr, level=logging.WARNING)


def untag(value: Any) -> Any:
    """Tagged JSON from the test -> Python values: {"$date": iso} -> datetime, {"$set": [...]} -> set."""
    if isinstance(value, dict):
        if "$date" in value:
            return datetime.datetime.fromisoformat(value["$date"].replace("Z", "+00:00"))
        if "$set" in value:
            return {untag(v) for v in value["$set"]}
        return {k: untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untag(v) for v in value]
    return value


def summarize(changes: Any) -> Dict[str, Any]:
    """{collection: {"sets": {id: text}, "deletes": [ids]}} of a WriteError's changes."""
    out: Dict[str, Any] = {}
    for coll, c in (changes or {}).items():
        sets = c.get("sets") or {}
        out[coll] = {"sets": {k: (v or {}).get("text") if isinstance(v, dict) else None for k, v in sets.items()},
                     "deletes": sorted(c.get("deletes") or [])}
    return out


def write_loop(client: TriplitClient, emit: Any, req: Dict[str, Any]) -> None:
    """Random inserts, updates, deletes and small transactions on this loop's own entities
    (ids ``prefix + n``), ``count`` of them, each reported before (``begin``) and after (``done``)."""
    rng = random.Random(req.get("seed", 0))
    prefix, owner = req["prefix"], req["owner"]
    live: List[str] = []
    n = 0
    pause = float(req.get("pause", 0.005))
    for seq in range(int(req.get("count", 50))):
        ops: List[List[Any]] = []
        r = rng.random()
        if not live or r < 0.45:
            ops.append(["insert", f"{prefix}{n}", f"{prefix}v{seq}"])
            n += 1
        elif r < 0.75:
            ops.append(["update", rng.choice(live), f"{prefix}v{seq}"])
        elif r < 0.9:
            ops.append(["delete", rng.choice(live), None])
        else:  # a transaction: one insert and one update in one batch
            ops.append(["insert", f"{prefix}{n}", f"{prefix}v{seq}a"])
            n += 1
            ops.append(["update", rng.choice(live), f"{prefix}v{seq}b"])
        emit({"event": "begin", "seq": seq, "ops": ops})
        try:
            with client.transact() as tx:
                for kind, eid, text in ops:
                    if kind == "insert":
                        tx.insert("todos", {"id": eid, "text": text, "owner": owner})
                    elif kind == "update":
                        tx.update("todos", eid, {"text": text})
                    else:
                        tx.delete("todos", eid)
        except Exception as e:  # reported: the parent counts it as a failed call
            emit({"event": "error", "seq": seq, "error": f"{type(e).__name__}: {e}"})
            continue
        emit({"event": "done", "seq": seq})
        for kind, eid, _ in ops:
            if kind == "insert":
                live.append(eid)
            elif kind == "delete" and eid in live:
                live.remove(eid)
        if pause:
            threading.Event().wait(rng.random() * pause)  # pacing, so kills land between writes too
    emit({"event": "finished"})


def main() -> None:
    options: Dict[str, Any] = json.loads(sys.argv[1])
    url = options.pop("url")
    client = TriplitClient(url, **options)
    sent = SentLog(client)
    received: List[Dict[str, Any]] = []
    original = client._engine.handle_message

    def handle(msg: Any) -> None:
        if isinstance(msg, EntityData):
            received.append({
                "for": list(msg.for_queries),
                "sets": {c: sorted(v["sets"]) for c, v in msg.changes.items()},
                "deletes": {c: sorted(v["deletes"]) for c, v in msg.changes.items()},
            })
        original(msg)

    client._engine.handle_message = handle  # type: ignore[method-assign]
    subs: Dict[str, Any] = {}
    out_lock = threading.Lock()

    def emit(obj: Dict[str, Any]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(obj, default=str) + "\n")
            sys.stdout.flush()

    def sync_error(error: WriteError) -> None:
        emit({"event": "sync_error", "name": error.name, "message": str(error)[:300],
              "changes": summarize(error.changes)})

    client.on_sync_error(sync_error)

    def results(sub: str) -> Dict[str, Any]:
        col, s = subs[sub]
        latest = col.latest
        return {"results": None if latest is None else normalize(latest), "count": col.count,
                "fulfilled": col.fulfilled.is_set(), "error": str(col.errors[0]) if col.errors else None}

    def handle_cmd(req: Dict[str, Any]) -> Any:
        cmd = req["cmd"]
        if cmd == "subscribe":
            col = Collector()
            s = client.subscribe(req["query"], col, col.on_error, on_remote_fulfilled=col.on_remote_fulfilled)
            subs[req["sub"]] = (col, s)
            return True
        if cmd == "results":
            return results(req["sub"])
        if cmd == "waitResults":
            col, _ = subs[req["sub"]]
            expected = req["expected"]
            deadline = time.monotonic() + req.get("timeout", 10)
            while True:
                with col.cond:  # the count and the rows it counts, read together
                    n, latest = col.count, col.latest
                if latest is not None and normalize(latest) == expected:
                    return results(req["sub"])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return results(req["sub"])
                with col.cond:
                    col.cond.wait_for(lambda: col.count != n, remaining)
        if cmd == "unsubscribe":
            subs.pop(req["sub"])[1].unsubscribe()
            return True
        if cmd == "waitFulfilled":
            col, _ = subs[req["sub"]]
            return col.fulfilled.wait(req.get("timeout", 10))
        if cmd == "fetch":
            return normalize(client.fetch(req["query"], policy=req.get("policy", "local-first"),
                                          timeout=req.get("timeout")))
        if cmd == "insert":
            return normalize(client.insert(req["collection"], untag(req["entity"])))
        if cmd == "update":
            client.update(req["collection"], req["entityId"], untag(req["changes"]))
            return True
        if cmd == "delete":
            client.delete(req["collection"], req["entityId"])
            return True
        if cmd == "waitSync":
            try:
                client.wait_for_sync(req.get("timeout", 10))
            except WriteError as e:  # reported, for the test to judge
                return {"refused": [{"name": f.name, "message": f.message,
                                     "sets": any(c["sets"] for c in (f.changes or {}).values())}
                                    for f in e.failures]}
            return True
        if cmd == "waitConnected":
            return client.wait_connected(req.get("timeout", 10))
        if cmd == "disconnect":
            client.disconnect()
            return True
        if cmd == "connect":
            client.connect()
            return True
        if cmd == "stats":
            state = [{"id": m.id, "state": m.state} for m in sent.messages if isinstance(m, ConnectQuery)]
            return {"bytes_received": client._transport.bytes_received,
                    "bytes_sent": client._transport.bytes_sent,
                    "sent": sent.types(), "connect_queries": state, "received": received}
        if cmd == "writeLoop":
            threading.Thread(target=write_loop, args=(client, emit, req), name="driver-writer",
                             daemon=True).start()
            return True
        if cmd == "close":
            client.close()
            return True
        raise ValueError(f"unknown command {cmd!r}")

    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            reply = {"id": req["id"], "ok": True, "result": handle_cmd(req)}
        except Exception as e:  # reported to the test, which fails with it
            detail = f" changes={getattr(e, 'changes', None)!r}" if hasattr(e, "changes") else ""
            reply = {"id": req["id"], "ok": False, "error": f"{type(e).__name__}: {e}{detail}"}
        emit(reply)
        if req["cmd"] == "close":
            break
    client.close()


if __name__ == "__main__":
    main()
