"""Just enough of a Triplit server to run a TriplitClient against, plus :meth:`inject` to slip
a hostile frame into the current connection (what the real server cannot be made to send).

It answers READY, CONNECT_QUERY (every entity of the collection, or of the listed ids for an
``id in [...]`` query, with deletes for the missing ones), CHANGES (applied, acked, pushed to
the live queries) and PING (PONG). Nothing else of the protocol is modelled.

    with MiniTriplit() as server:
        client = TriplitClient(server.url, token=mint_token("x", sub="u"), storage="memory")
        server.inject('{"type":"ENTITY_DATA"...')
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, List, Optional, Set, Union

from tests.support.fakeserver import FakeConnection, FakeServer

__all__ = ["MiniTriplit"]


def _envelope(coll: str, sets: Dict[str, Any], deletes: Set[str]) -> Dict[str, Any]:
    return {"json": {coll: {"sets": list(sets.items()), "deletes": sorted(deletes)}},
            "meta": {"values": {f"{coll}.sets": ["map"], f"{coll}.deletes": ["set"]}, "v": 1}}


class MiniTriplit:
    def __init__(self) -> None:
        self._fake = FakeServer()
        self.entities: Dict[str, Dict[str, Dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._conn: Optional[FakeConnection] = None
        self._queries: Dict[str, Dict[str, Any]] = {}  # live query id -> query (current conn)
        self._clock = int(time.time() * 1000)
        self.connections = 0
        self.changes_received = 0
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return self._fake.url

    def __enter__(self) -> "MiniTriplit":
        self._fake.start()
        threading.Thread(target=self._accept_loop, name="mini-triplit", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._fake.stop()

    def query_ids(self) -> List[str]:
        with self._lock:
            return list(self._queries)

    def inject(self, frame: Union[str, bytes]) -> bool:
        """Send ``frame`` on the current connection; False if there is none."""
        with self._lock:
            conn = self._conn
        if conn is None:
            return False
        try:
            if isinstance(frame, bytes):
                conn.ws.send(frame, text=True)  # a text frame, even if not UTF-8
            else:
                conn.ws.send(frame)
            return True
        except Exception:
            return False

    # -- the server side --------------------------------------------------------------------

    def _ts(self) -> List[Any]:
        self._clock += 1
        return [self._clock, 0, "server"]

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._fake.accept(timeout=0.2)
            except AssertionError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _send(self, conn: FakeConnection, obj: Any) -> None:
        try:
            conn.send_json(obj)
        except Exception:
            pass

    def _serve(self, conn: FakeConnection) -> None:
        with self._lock:
            self._conn = conn
            self._queries = {}
            self.connections += 1
        queries = self._queries
        self._send(conn, {"type": "READY", "payload": {"clientId": f"c{self.connections}"}})
        while not self._stop.is_set():
            try:
                text = conn.ws.recv(0.5)
            except TimeoutError:
                continue
            except Exception:
                break
            msg = json.loads(text)
            mtype, payload = msg.get("type"), msg.get("payload") or {}
            with self._lock:
                if self._conn is not conn:
                    break
                if mtype == "PING":
                    out = {"type": "PONG", "payload": {"serverTimestamp": self._clock}}
                    if "clientTimestamp" in payload:
                        out["payload"]["clientTimestamp"] = payload["clientTimestamp"]
                    self._send(conn, out)
                elif mtype == "CONNECT_QUERY":
                    qid, query = payload["id"], payload["params"]
                    queries[qid] = query
                    self._send(conn, self._answer(qid, query))
                elif mtype == "DISCONNECT_QUERY":
                    queries.pop(payload.get("id"), None)
                elif mtype == "CHANGES":
                    self.changes_received += 1
                    self._apply(conn, payload["changes"]["json"], queries)

    def _answer(self, qid: str, query: Dict[str, Any]) -> Dict[str, Any]:
        coll = query["collectionName"]
        have = self.entities.get(coll, {})
        where = query.get("where") or []
        ids: Optional[List[str]] = None
        if len(where) == 1 and isinstance(where[0], list) and where[0][:2] == ["id", "in"]:
            ids = list(where[0][2])
        sets = {i: have[i] for i in (ids if ids is not None else have) if i in have}
        deletes = {i for i in ids if i not in have} if ids is not None else set()
        payload = {"changes": _envelope(coll, sets, deletes), "timestamp": self._ts(), "forQueries": [qid]}
        return {"type": "ENTITY_DATA", "payload": payload}

    def _apply(self, conn: FakeConnection, body: Dict[str, Any], queries: Dict[str, Any]) -> None:
        touched: Dict[str, Set[str]] = {}
        for coll, c in body.items():
            table = self.entities.setdefault(coll, {})
            for eid, patch in c.get("sets") or []:
                doc = dict(table.get(eid) or {})
                doc.update(patch)
                table[eid] = doc
                touched.setdefault(coll, set()).add(eid)
            for eid in c.get("deletes") or []:
                table.pop(eid, None)
                touched.setdefault(coll, set()).add(eid)
        self._send(conn, {"type": "CHANGES_ACK", "payload": {"timestamp": self._ts()}})
        for qid, query in queries.items():
            coll = query["collectionName"]
            if coll not in touched or query.get("where"):
                continue
            table = self.entities.get(coll, {})
            sets = {i: table[i] for i in touched[coll] if i in table}
            deletes = {i for i in touched[coll] if i not in table}
            self._send(conn, {"type": "ENTITY_DATA", "payload": {
                "changes": _envelope(coll, sets, deletes), "timestamp": self._ts(), "forQueries": [qid]}})
