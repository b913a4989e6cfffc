"""SqliteStore: the LocalStore, persisted in one SQLite file (stdlib sqlite3).

The in-memory state of :class:`LocalStore` stays the read path (queries scan Python dicts);
SQLite is the durable copy, written in one transaction per store operation and read back
whole on open.

Settings and why:
- ``journal_mode=WAL`` + ``synchronous=NORMAL``: a commit is an append to the WAL without an
  fsync, so a killed process loses nothing committed and a half-done transaction leaves no trace
  (a power cut may lose the last commits, never tear one).
- ``locking_mode=EXCLUSIVE``, taken at open: the in-memory state is only right while no one
  else writes the file, so a second store on the same file (in any process) fails at open with
  :class:`~triplit_sync.errors.StorageLockedError`. The lock dies with the process.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
from bisect import bisect_left, bisect_right
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NoReturn, Optional, Sequence, Set, Tuple, Union

from .._util.forkgate import section as fork_section
from .._util.safefs import check_file, open_nofollow
from .._util.types import Document
from ..errors import StorageCorruptError, StorageLockedError, TriplitError
from ._changes import dumps, loads
from ._segments import Segment
from ._writes import Writes
from .base import LocalStore

logger = logging.getLogger(__name__)

__all__ = ["SqliteStore", "DB_FILENAME", "take_outbox"]

DB_FILENAME = "cache.sqlite"

_SCHEMA_VERSION = 2
_APPLICATION_ID = 0x54535943  # "TSYC": marks the file as a triplit_sync cache
_FILE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
_BUSY_TIMEOUT_S = 1.0
_LOAD_CHUNK = 8192  # entity rows decoded at a time on open

_SCHEMA = (
    """CREATE TABLE entities (
        collection TEXT NOT NULL, id TEXT NOT NULL, doc BLOB NOT NULL, ts TEXT NOT NULL,
        PRIMARY KEY (collection, id)) WITHOUT ROWID""",
    """CREATE TABLE outbox (
        segment INTEGER NOT NULL, owner TEXT NOT NULL, inflight INTEGER NOT NULL,
        collection TEXT NOT NULL, id TEXT NOT NULL, doc BLOB, deleted INTEGER NOT NULL,
        unit INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (segment, collection, id)) WITHOUT ROWID""",
    """CREATE TABLE query_ids (
        query_id TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL,
        PRIMARY KEY (query_id, collection, id)) WITHOUT ROWID""",
    """CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID""",
)
_TABLES = {"entities", "outbox", "query_ids", "meta"}


def _is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while loading: tens of thousands of new dicts would otherwise trigger
    repeated full collections (a third of the load time) that can't free anything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def resolve_db_path(path: Union[str, "os.PathLike[str]"]) -> Path:
    """The database file for ``path``: the file itself if it ends in .sqlite/.sqlite3/.db and is not
    a folder, else ``<path>/cache.sqlite``."""
    p = Path(path).expanduser()
    if p.suffix.lower() in _FILE_SUFFIXES and not p.is_dir():
        return p
    return p / DB_FILENAME


class SqliteStore(LocalStore):
    """A durable :class:`~triplit_sync.store.base.LocalStore` in one SQLite file.

    ``path`` is a folder (the file ``cache.sqlite`` in it is used; a missing folder is created
    with mode 0700) or a file path ending in ``.sqlite``, ``.sqlite3`` or ``.db``. A new database
    file is created with mode 0600.

    Raises at open:
      - :class:`~triplit_sync.errors.StorageLockedError` if another store (in this or another
        process) has the file open;
      - :class:`~triplit_sync.errors.StorageCorruptError` if the file
        is unreadable, not an SQLite database, not a triplit_sync cache, or holds malformed rows.
        The message names the file; moving it aside and opening again starts fresh.

    >>> with SqliteStore(tmp_path / "myclient") as store:  # doctest: +SKIP
    ...     store.set_meta("k", 1)
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        super().__init__()
        self.path: Path = resolve_db_path(path)
        self._conn: Optional[sqlite3.Connection] = None
        self._prepare_files()
        with fork_section():
            conn = self._connect()
            try:
                self._load(conn)
            except BaseException:
                conn.close()
                raise
        self._conn = conn

    # --- opening ------------------------------------------------------------------------------

    def _corrupt(self, problem: str, exc: Optional[BaseException] = None) -> NoReturn:
        detail = f": {exc}" if exc is not None else ""
        raise StorageCorruptError(
            f"local database {self.path} cannot be used ({problem}{detail}); move it aside to start fresh",
            path=str(self.path),
        ) from exc

    def _prepare_files(self) -> None:
        folder = self.path.parent
        if not folder.exists():
            try:
                os.makedirs(folder, mode=0o700, exist_ok=True)
                os.chmod(folder, 0o700)  # makedirs' mode is filtered by the umask
            except OSError as exc:
                raise TriplitError(f"cannot create the local database folder {folder}: {exc}") from exc
        # sqlite follows symlinks for the database and its -wal/-shm files: refuse any (and
        # files of another user) before it opens them.
        for suffix in ("-wal", "-shm"):
            check_file(self.path.with_name(self.path.name + suffix))
        if os.path.lexists(self.path) and not os.path.islink(self.path) and not self.path.is_file():
            self._corrupt("not a regular file")
        if not check_file(self.path):
            try:
                os.close(open_nofollow(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise TriplitError(f"cannot create the local database {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            self._corrupt("cannot open", exc)
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning("local database %s: journal_mode is %s, not wal", self.path, mode)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN EXCLUSIVE")  # takes the lock now, and keeps it (locking_mode)
            self._ensure_schema(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            if _is_locked(exc):
                raise StorageLockedError(
                    f"local database {self.path} is in use by another store or process"
                ) from exc
            self._corrupt("not a readable SQLite database", exc)
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and version == 0 and app_id == 0:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            return
        if app_id != _APPLICATION_ID:
            self._corrupt(f"not a triplit_sync cache (application_id {app_id})")
        if version == 1 and "outbox" in tables:
            # Format 1 had no transaction units: its pending writes become one unit (0).
            conn.execute("ALTER TABLE outbox ADD COLUMN unit INTEGER NOT NULL DEFAULT 0")
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            version = _SCHEMA_VERSION
        if version != _SCHEMA_VERSION:
            self._corrupt(f"cache format {version}, this version reads format {_SCHEMA_VERSION}")
        if not _TABLES <= tables:
            self._corrupt(f"missing tables {sorted(_TABLES - tables)}")

    def _load(self, conn: sqlite3.Connection) -> None:
        try:
            with _gc_paused():
                self._load_entities(conn)
            self._load_outbox(conn)
            self._load_query_ids(conn)
            self._meta = {key: bytes(value) for key, value in conn.execute("SELECT key, value FROM meta")}
        except sqlite3.Error as exc:
            self._corrupt("unreadable rows", exc)
        except (ValueError, TypeError, KeyError) as exc:  # bad JSON or bad shapes inside rows
            self._corrupt("malformed rows", exc)

    def _load_entities(self, conn: sqlite3.Connection) -> None:
        # Column-wise, with the loops in C (zip, map, dict): a row at a time in Python was half
        # of reopening a large cache. In chunks, so that the raw rows never all sit in memory.
        # Rows come in primary key order: a collection's rows in a chunk are one run.
        cache: Dict[str, Dict[str, Document]] = {}
        stamps: Dict[str, Dict[str, Any]] = {}
        parsed_ts: Dict[str, Any] = {}  # one list per distinct timestamp: most rows share a few
        cursor = conn.execute("SELECT collection, id, doc, ts FROM entities")
        while True:
            chunk = cursor.fetchmany(_LOAD_CHUNK)
            if not chunk:
                break
            colls, ids, raws, ts_texts = zip(*chunk)
            del chunk
            for text in set(ts_texts) - parsed_ts.keys():
                parsed_ts[text] = loads(text)
            for coll in sorted(set(colls)):
                lo, hi = bisect_left(colls, coll), bisect_right(colls, coll)
                docs = list(map(loads, raws[lo:hi]))
                if set(map(type, docs)) != {dict}:
                    bad = next(i for i, d in enumerate(docs) if type(d) is not dict)
                    raise TypeError(f"entity {coll}/{ids[lo + bad]} is not an object")
                keys: Sequence[str] = ids[lo:hi]
                own = [d.get("id") for d in docs]
                if own == list(keys):
                    keys = own  # the documents' own id strings: one string per entity, not two
                cache.setdefault(coll, {}).update(zip(keys, docs))
                stamps.setdefault(coll, {}).update(zip(keys, map(parsed_ts.__getitem__, ts_texts[lo:hi])))
        self._cache = cache
        self._timestamps = stamps

    def _load_outbox(self, conn: sqlite3.Connection) -> None:
        inflight, pending, top_unit = _read_outbox(conn)
        self._next_unit = top_unit + 1
        self._inflight = inflight
        self._pending = pending

    def _load_query_ids(self, conn: sqlite3.Connection) -> None:
        out: Dict[str, Dict[str, Set[str]]] = {}
        try:  # one JSON array per query and collection, built in SQLite: no Python loop per id
            grouped = conn.execute("SELECT query_id, collection, json_group_array(id) FROM query_ids"
                                   " GROUP BY query_id, collection").fetchall()
        except sqlite3.OperationalError:  # pragma: no cover - an SQLite built without JSON
            for qid, coll, eid in conn.execute("SELECT query_id, collection, id FROM query_ids"):
                out.setdefault(qid, {}).setdefault(coll, set()).add(eid)
        else:
            for qid, coll, ids in grouped:
                out.setdefault(qid, {})[coll] = _shared(set(loads(ids)), self._cache.get(coll))
        self._query_ids = out

    # --- writing ------------------------------------------------------------------------------

    @staticmethod
    def _entity_rows(
        coll: str, docs: Dict[str, Document], ts_text: str
    ) -> Iterator[Tuple[str, str, bytes, str]]:
        for eid, doc in docs.items():
            yield coll, eid, dumps(doc), ts_text

    def _persist(self, writes: Writes) -> None:
        conn = self._conn
        if conn is None:  # pragma: no cover - _persist is never reached before open or after close
            raise TriplitError(f"local database {self.path} is not open")
        try:
            with fork_section():
                conn.execute("BEGIN")
                try:
                    self._write(conn, writes)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise TriplitError(f"writing the local database {self.path} failed: {exc}") from exc

    def _write(self, conn: sqlite3.Connection, w: Writes) -> None:
        if w.clear:
            for table in sorted(_TABLES):
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        if w.entity_deletes or w.entity_puts:
            ts_text = dumps(w.timestamp).decode("utf-8")
            for coll, ids in w.entity_deletes:
                conn.executemany(
                    "DELETE FROM entities WHERE collection = ? AND id = ?", [(coll, eid) for eid in ids]
                )
            for coll, docs in w.entity_puts:
                conn.executemany(
                    "INSERT OR REPLACE INTO entities (collection, id, doc, ts) VALUES (?, ?, ?, ?)",
                    self._entity_rows(coll, docs, ts_text),
                )
        if w.segment_deletes:
            conn.executemany("DELETE FROM outbox WHERE segment = ?", [(sid,) for sid in w.segment_deletes])
        if w.outbox_rows:
            upserts: List[Tuple[Any, ...]] = []
            removals: List[Tuple[Any, ...]] = []
            for sid, owner, inflight, coll, eid, doc, deleted, unit in w.outbox_rows:
                if doc is None and not deleted:
                    removals.append((sid, coll, eid))
                else:
                    raw = None if doc is None else dumps(doc)
                    upserts.append((sid, owner, int(inflight), coll, eid, raw, int(deleted), unit))
            if removals:
                conn.executemany(
                    "DELETE FROM outbox WHERE segment = ? AND collection = ? AND id = ?", removals
                )
            if upserts:
                conn.executemany(
                    "INSERT OR REPLACE INTO outbox"
                    " (segment, owner, inflight, collection, id, doc, deleted, unit)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    upserts,
                )
        if w.segment_flags:
            conn.executemany(
                "UPDATE outbox SET inflight = ? WHERE segment = ?",
                [(int(flag), sid) for sid, flag in w.segment_flags],
            )
        if w.query_drops:
            conn.executemany("DELETE FROM query_ids WHERE query_id = ?", [(q,) for q in w.query_drops])
        if w.query_removed:
            conn.executemany(
                "DELETE FROM query_ids WHERE query_id = ? AND collection = ? AND id = ?", w.query_removed
            )
        if w.query_added:
            conn.executemany(
                "INSERT OR IGNORE INTO query_ids (query_id, collection, id) VALUES (?, ?, ?)", w.query_added
            )
        if w.meta:
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", w.meta)

    def _close_storage(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                with fork_section():
                    conn.close()
            except sqlite3.Error as exc:  # pragma: no cover - close of a healthy connection
                logger.warning("closing the local database %s failed: %s", self.path, exc)

    def abandon_after_fork(self) -> None:
        # Closing the parent's connection from the child could checkpoint its WAL or drop its
        # locks; keeping a reference forever stops garbage collection from closing it.
        _ABANDONED.append(self._conn)
        self._conn = None
        self._closed = True

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" path={str(self.path)!r}>"


_ABANDONED: List[Optional[sqlite3.Connection]] = []


def _shared(ids: Set[str], cached: Optional[Dict[str, Document]]) -> Set[str]:
    """``ids``, made of the cache's own key strings where it has them (a large query's ids would
    otherwise be a second copy of every id string). ``set & keys`` keeps the keys' objects."""
    if not cached or len(ids) * 4 < len(cached):
        return ids
    shared = ids.intersection(cached.keys())
    if len(shared) != len(ids):
        shared |= ids
    return shared


def _read_outbox(conn: sqlite3.Connection, units: bool = True) -> Tuple[Optional[Segment], List[Segment], int]:
    """(in-flight batch, pending segments oldest first, highest unit) from an outbox table."""
    segments: Dict[int, Segment] = {}
    inflight: Optional[Segment] = None
    top_unit = 0
    unit_column = "unit" if units else "0"
    for sid, owner, is_inflight, coll, eid, raw, deleted, unit in conn.execute(
        f"SELECT segment, owner, inflight, collection, id, doc, deleted, {unit_column}"  # noqa: S608
        " FROM outbox ORDER BY segment"
    ):
        seg = segments.get(sid)
        if seg is None:
            seg = segments[sid] = Segment(sid, owner)
            if is_inflight:
                if inflight is not None:
                    raise ValueError("two in-flight batches in the outbox")
                inflight = seg
        doc = None if raw is None else loads(raw)
        if doc is not None and type(doc) is not dict:
            raise TypeError(f"outbox entry {coll}/{eid} is not an object")
        seg.put(coll, eid, (doc, bool(deleted)), int(unit))
        top_unit = max(top_unit, int(unit))
    return inflight, [seg for seg in segments.values() if seg is not inflight and seg.changes], top_unit


def take_outbox(path: Union[str, "os.PathLike[str]"], deliver: Callable[[List[Segment]], Any]) -> int:
    """Hand the outbox of the database at ``path`` (oldest first, the in-flight batch first) to
    ``deliver``, then empty it; only its outbox is read, not its cache. The caller must own the
    database's folder lock (its owner is gone). Returns how many segments were delivered.

    ``deliver`` commits them elsewhere before they are deleted here, so a crash between the two
    can make them be sent twice, never lost. An unusable file is left to its next owner (0).
    """
    with fork_section():
        return _take_outbox(path, deliver)


def _take_outbox(path: Union[str, "os.PathLike[str]"], deliver: Callable[[List[Segment]], Any]) -> int:
    db = resolve_db_path(path)
    for suffix in ("", "-wal", "-shm"):
        check_file(db.with_name(db.name + suffix))
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(str(db), timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        logger.warning("cannot read the writes left in %s: %s", db, exc)
        return 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id != _APPLICATION_ID or version not in (1, _SCHEMA_VERSION) or "outbox" not in tables:
            return 0
        inflight, pending, _ = _read_outbox(conn, units=version == _SCHEMA_VERSION)
        segments = ([inflight] if inflight is not None else []) + pending
        if not segments:
            return 0
        deliver(segments)
        conn.execute("DELETE FROM outbox")
        conn.execute("COMMIT")
        return len(segments)
    except (sqlite3.Error, ValueError, TypeError, KeyError) as exc:
        logger.warning("cannot read the writes left in %s (%s); its next owner will", db, exc)
        return 0
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
