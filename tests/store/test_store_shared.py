"""One test suite for every LocalStore implementation (memory and sqlite).

Most tests end with ``h.reopen()`` and check again: for sqlite that proves the state was
persisted; for memory it is a no-op.
"""

from __future__ import annotations

import copy
import random
import threading

import pytest

from tests.support.store import Harness, ch, dump, model_apply, ts, visible
from triplit_sync.errors import ClientClosedError
from triplit_sync.store import MemoryStore, OutboxEntry, SqliteStore, open_store


@pytest.fixture(params=["memory", "sqlite"])
def h(request, tmp_path):
    harness = Harness(request.param, tmp_path / "client")
    yield harness
    harness.close()


TODO = {
    "id": "t1", "text": "a", "done": False, "tags": {"x": True},
    "meta": {"a": {"b": 1, "c": 2}}, "list": [1, 2],
}


# --- server data ---------------------------------------------------------------------------------

def test_server_insert_and_deep_merge(h):
    s = h.store
    assert s.apply_server_changes(ch("todos", {"t1": copy.deepcopy(TODO)}), ts(1)) == {"todos"}
    patch = {"text": "b", "tags": {"y": True, "x": False}, "meta": {"a": {"c": None}}, "list": [3]}
    assert s.apply_server_changes(ch("todos", {"t1": patch}), ts(2)) == {"todos"}
    want = {"id": "t1", "text": "b", "done": False, "tags": {"x": False, "y": True},
            "meta": {"a": {"b": 1, "c": None}}, "list": [3]}
    assert s.get_cached("todos", "t1") == want
    assert s.get("todos", "t1") == want
    assert s.entity_timestamp("todos", "t1") == ts(2)
    # null overwrites a whole object; an object replaces a scalar
    s.apply_server_changes(ch("todos", {"t1": {"meta": None, "done": {"k": 1}}}), ts(3))
    assert s.get_cached("todos", "t1")["meta"] is None
    assert s.get_cached("todos", "t1")["done"] == {"k": 1}
    s = h.reopen()
    assert s.get_cached("todos", "t1")["done"] == {"k": 1}
    assert s.entity_timestamp("todos", "t1") == ts(3)


def test_server_deletes_before_sets(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "a": 1, "b": 1}, "t2": {"id": "t2", "a": 1}}),
                           ts(1))
    # t1: deleted and re-created (the set has an id): nothing of the old document survives
    # t2: deleted, then an update without id: ignored, stays deleted
    changes = ch("todos", {"t1": {"id": "t1", "a": 2}, "t2": {"a": 2}}, deletes={"t1", "t2"})
    assert s.apply_server_changes(changes, ts(2)) == {"todos"}
    assert s.get_cached("todos", "t1") == {"id": "t1", "a": 2}
    assert s.get_cached("todos", "t2") is None
    assert s.entity_timestamp("todos", "t2") is None
    s = h.reopen()
    assert visible(s, "todos") == {"t1": {"id": "t1", "a": 2}}


def test_server_update_of_missing_entity_is_ignored(h):
    s = h.store
    assert s.apply_server_changes(ch("todos", {"nope": {"text": "x"}}), ts(1)) == set()
    assert s.get_cached("todos", "nope") is None
    assert s.collections() == []


def test_server_changed_collections(h):
    s = h.store
    s.apply_server_changes({**ch("a", {"1": {"id": "1", "v": 1}}), **ch("b", {"1": {"id": "1"}})}, ts(1))
    # same content again, a delete of an unknown id, an empty collection entry: nothing changed
    again = {**ch("a", {"1": {"v": 1}}), **ch("b", deletes={"zz"}), **ch("c")}
    assert s.apply_server_changes(again, ts(2)) == set()
    assert s.entity_timestamp("a", "1") == ts(1)
    assert s.apply_server_changes({**ch("a", {"1": {"v": 2}}), **ch("b", deletes={"1"})}, ts(3)) == {"a", "b"}
    assert s.collections() == ["a"]


def test_returned_documents_are_stable_snapshots(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "n": {"a": 1}}}), ts(1))
    before = s.get("todos", "t1")
    scanned = s.scan("todos")
    s.apply_server_changes(ch("todos", {"t1": {"n": {"b": 2}}}), ts(2))
    s.add_local_changes(ch("todos", {"t1": {"n": {"c": 3}}}), owner="o")
    assert before == {"id": "t1", "n": {"a": 1}}
    assert scanned == [{"id": "t1", "n": {"a": 1}}]
    assert s.get("todos", "t1") == {"id": "t1", "n": {"a": 1, "b": 2, "c": 3}}


def test_bad_server_input_raises_and_changes_nothing(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1"}}), ts(1))
    with pytest.raises(TypeError, match="todos/t2"):
        s.apply_server_changes(ch("todos", {"t0": {"id": "t0"}, "t2": ["not", "a", "dict"]}), ts(2))
    with pytest.raises(ValueError, match="timestamp"):
        s.apply_server_changes(ch("todos", {"t3": {"id": "t3"}}), "yesterday")
    with pytest.raises(TypeError, match="mapping"):
        s.apply_server_changes([("todos", {})], ts(2))
    with pytest.raises(TypeError, match="deletes"):
        s.apply_server_changes({"todos": {"sets": {}, "deletes": "t1"}}, ts(2))
    with pytest.raises(ValueError, match="unknown keys"):
        s.apply_server_changes({"todos": {"set": {}}}, ts(2))
    assert s.cached_ids("todos") == {"t1"}


# --- overlay ----------------------------------------------------------------------------------

def test_overlay_of_pending_writes(h):
    s = h.store
    s.apply_server_changes(ch("todos", {
        "t1": {"id": "t1", "text": "a", "tags": {"x": True}},
        "t2": {"id": "t2", "text": "b"},
        "t3": {"id": "t3", "text": "c"},
    }), ts(1))
    s.add_local_changes(ch("todos", {
        "t1": {"tags": {"y": True}},              # update: merged over the cached document
        "t4": {"id": "t4", "text": "new"},        # insert: visible
        "t5": {"text": "update of nothing"},      # update of a missing entity: invisible
    }, deletes={"t2"}), owner="o")
    s.add_local_changes(ch("todos", {"t3": {"id": "t3", "text": "again"}}, deletes={"t3"}), owner="o")
    for _ in range(2):
        assert visible(s, "todos") == {
            "t1": {"id": "t1", "text": "a", "tags": {"x": True, "y": True}},
            "t3": {"id": "t3", "text": "again"},   # delete then insert: the old document is gone
            "t4": {"id": "t4", "text": "new"},
        }
        assert s.get("todos", "t2") is None and s.get("todos", "t5") is None
        assert s.get_cached("todos", "t1") == {"id": "t1", "text": "a", "tags": {"x": True}}
        assert s.get_cached("todos", "t4") is None
        assert s.collections() == ["todos"]
        s = h.reopen()


def test_overlay_in_collections_without_cache(h):
    s = h.store
    s.add_local_changes(ch("notes", {"n1": {"id": "n1"}}), owner="o")
    assert s.collections() == ["notes"]
    assert visible(s, "notes") == {"n1": {"id": "n1"}}
    assert s.scan("nothing") == []
    assert s.get("nothing", "x") is None


def test_local_documents_are_copied(h):
    s = h.store
    doc = {"id": "t1", "n": {"a": [1]}}
    s.add_local_changes(ch("todos", {"t1": doc}), owner="o")
    doc["n"]["a"].append(2)
    doc["x"] = 1
    assert s.get("todos", "t1") == {"id": "t1", "n": {"a": [1]}}


def test_bad_local_input(h):
    s = h.store
    with pytest.raises(ValueError, match="owner"):
        s.add_local_changes(ch("todos", {"t1": {"id": "t1"}}), owner="")
    with pytest.raises(TypeError, match="not JSON-serializable"):
        s.add_local_changes(ch("todos", {"t1": {"id": "t1", "when": object()}}), owner="o")
    with pytest.raises(TypeError, match="todos/t1"):
        s.add_local_changes(ch("todos", {"t1": None}), owner="o")
    with pytest.raises(ValueError, match="entity id"):
        s.add_local_changes(ch("todos", {"": {"id": ""}}), owner="o")
    with pytest.raises(ValueError, match="deleted id"):
        s.add_local_changes(ch("todos", deletes={5}), owner="o")
    with pytest.raises(ValueError, match="collection name"):
        s.add_local_changes({"": {"sets": {}, "deletes": set()}}, owner="o")
    assert not s.has_pending()
    assert s.add_local_changes(ch("todos"), owner="o") == set()


# --- outbox merging (PROTOCOL.md §6.1) ----------------------------------------------------------

def pending_of(s, owner="o"):
    entries = [e for e in s.pending_changes(owner) if not e.inflight]
    assert len(entries) <= 1
    return entries[0].changes if entries else {}


def test_later_sets_merge_into_earlier(h):
    s = h.store
    s.add_local_changes(ch("todos", {"t1": {"id": "t1", "a": {"x": 1}, "l": [1]}}), owner="o")
    s.add_local_changes(ch("todos", {"t1": {"a": {"y": 2}, "l": [2]}}), owner="o")
    for _ in range(2):
        assert pending_of(s) == ch("todos", {"t1": {"id": "t1", "a": {"x": 1, "y": 2}, "l": [2]}})
        s = h.reopen()


def test_delete_of_pending_insert_cancels_both(h):
    s = h.store
    s.add_local_changes(ch("todos", {"t1": {"id": "t1"}}), owner="o")
    s.add_local_changes(ch("todos", {"t1": {"text": "x"}}), owner="o")
    s.add_local_changes(ch("todos", deletes={"t1"}), owner="o")
    assert s.pending_changes() == []
    assert not s.has_pending()
    s = h.reopen()
    assert not s.has_pending()
    assert s.next_batch("o") is None


def test_delete_of_pending_update_replaces_it(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "a": 1}}), ts(1))
    s.add_local_changes(ch("todos", {"t1": {"a": 2}}), owner="o")
    s.add_local_changes(ch("todos", deletes={"t1"}), owner="o")
    assert pending_of(s) == ch("todos", deletes={"t1"})
    assert s.get("todos", "t1") is None


def test_delete_of_upsert_over_a_cached_entity_is_kept(h):
    # an "insert" of an id the cache already has is an upsert on the server: cancelling it
    # together with the delete would leave the entity alive
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "a": 1}}), ts(1))
    s.add_local_changes(ch("todos", {"t1": {"id": "t1", "a": 2}}), owner="o")
    s.add_local_changes(ch("todos", deletes={"t1"}), owner="o")
    assert pending_of(s) == ch("todos", deletes={"t1"})
    assert s.get("todos", "t1") is None


def test_set_after_delete_keeps_both(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "a": 1, "b": 1}}), ts(1))
    s.add_local_changes(ch("todos", deletes={"t1"}), owner="o")
    s.add_local_changes(ch("todos", {"t1": {"id": "t1", "a": 2}}), owner="o")
    s.add_local_changes(ch("todos", {"t1": {"c": 3}}), owner="o")
    for _ in range(2):
        assert pending_of(s) == ch("todos", {"t1": {"id": "t1", "a": 2, "c": 3}}, deletes={"t1"})
        assert s.get("todos", "t1") == {"id": "t1", "a": 2, "c": 3}
        s = h.reopen()
    # ... and a delete after that goes back to a plain delete
    s.add_local_changes(ch("todos", deletes={"t1"}), owner="o")
    assert pending_of(s) == ch("todos", deletes={"t1"})


def test_delete_and_insert_in_one_write(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "a": 1}}), ts(1))
    s.add_local_changes(ch("todos", {"t1": {"id": "t1", "b": 2}}, deletes={"t1"}), owner="o")
    assert s.get("todos", "t1") == {"id": "t1", "b": 2}
    assert pending_of(s) == ch("todos", {"t1": {"id": "t1", "b": 2}}, deletes={"t1"})


def test_outbox_merging_matches_sequential_application(h):
    """Whatever the merging does, reads must equal applying every write in order (server rules),
    before and after batches are promoted and acknowledged."""
    rnd = random.Random(1234)
    s = h.store
    ids = [f"e{i}" for i in range(5)]

    def random_write(model):
        c = {"sets": {}, "deletes": set()}
        for eid in rnd.sample(ids, rnd.randint(1, 3)):
            kinds = ["insert", "delete", "delete+insert", "delete+update"]
            if eid in model["c"]:
                # an update of an entity the client doesn't know is sent as is (the server may
                # have it): that is the one case where reads can't predict the server's result
                kinds.append("update")
            kind = rnd.choice(kinds)
            if "delete" in kind:
                c["deletes"].add(eid)
            body = {"v": rnd.randint(0, 3), "n": {rnd.choice("ab"): rnd.choice([1, None, [1], {"z": 1}])}}
            if kind.endswith("insert"):
                c["sets"][eid] = {"id": eid, **body}
            elif kind.endswith("update"):
                c["sets"][eid] = body
        return {"c": c}

    for round_no in range(200):
        s.clear()
        base = {eid: {"id": eid, "v": 9, "n": {"a": 0}} for eid in rnd.sample(ids, rnd.randint(0, 5))}
        if base:
            s.apply_server_changes({"c": {"sets": copy.deepcopy(base), "deletes": set()}}, ts(1))
        model = {"c": copy.deepcopy(base)}
        for step in range(rnd.randint(1, 8)):
            write = random_write(model)
            s.add_local_changes(write, owner="o")
            model_apply(model, write)
            assert visible(s, "c") == model["c"], (round_no, step)
            r = rnd.random()
            if r < 0.25:
                s.next_batch("o")
            elif r < 0.35 and s.inflight():
                s.ack_inflight(ts(2 + step))
            elif r < 0.45:
                s.requeue_inflight()
            assert visible(s, "c") == model["c"], (round_no, step)
        while s.next_batch("o") is not None:
            s.ack_inflight(ts(100))
        assert not s.has_pending()
        assert {i: s.get_cached("c", i) for i in s.cached_ids("c")} == model["c"]


# --- in-flight batch ----------------------------------------------------------------------------

def test_next_batch_ack(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "a": 1}}), ts(1))
    s.add_local_changes(ch("todos", {"t1": {"a": 2}, "t2": {"id": "t2"}}), owner="o")
    assert s.next_batch("nobody") is None
    batch = s.next_batch("o")
    assert batch == ch("todos", {"t1": {"a": 2}, "t2": {"id": "t2"}})
    assert s.inflight() == ("o", batch)
    assert s.pending_changes() == [OutboxEntry("o", batch, True)]
    # more writes while in flight: pending, on top of the batch
    s.add_local_changes(ch("todos", {"t1": {"a": 3}}), owner="o")
    assert s.get("todos", "t1") == {"id": "t1", "a": 3}
    s = h.reopen()
    assert s.next_batch("o") == batch  # re-sent, not merged with the newer write
    assert s.ack_inflight(ts(5)) == {"todos"}
    assert s.inflight() is None
    assert s.get_cached("todos", "t1") == {"id": "t1", "a": 2}
    assert s.get_cached("todos", "t2") == {"id": "t2"}
    assert s.entity_timestamp("todos", "t2") == ts(5)
    assert s.get("todos", "t1") == {"id": "t1", "a": 3}
    assert s.next_batch("o") == ch("todos", {"t1": {"a": 3}})
    s = h.reopen()
    assert s.ack_inflight(ts(6)) == {"todos"}
    assert not s.has_pending()
    assert s.get_cached("todos", "t1") == {"id": "t1", "a": 3}
    assert s.ack_inflight(ts(7)) == set()


def test_returned_batch_is_a_copy(h):
    s = h.store
    s.add_local_changes(ch("todos", {"t1": {"id": "t1"}}), owner="o")
    batch = s.next_batch("o")
    batch["todos"]["sets"].clear()
    batch["todos"]["deletes"].add("x")
    assert s.next_batch("o") == ch("todos", {"t1": {"id": "t1"}})


def test_reject_inflight(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "a": 1}}), ts(1))
    s.add_local_changes(ch("todos", {"t1": {"a": 2}}, deletes=()), owner="o")
    s.next_batch("o")
    s.add_local_changes(ch("todos", {"t2": {"id": "t2"}}), owner="o")
    assert s.reject_inflight() == ch("todos", {"t1": {"a": 2}})
    assert s.get("todos", "t1") == {"id": "t1", "a": 1}
    assert s.inflight() is None
    assert s.reject_inflight() is None
    s = h.reopen()
    assert s.get("todos", "t1") == {"id": "t1", "a": 1}
    assert s.next_batch("o") == ch("todos", {"t2": {"id": "t2"}})


def test_requeue_inflight(h):
    s = h.store
    s.add_local_changes(ch("todos", {"t1": {"id": "t1", "a": 1}}), owner="o")
    s.next_batch("o")
    s.add_local_changes(ch("todos", {"t1": {"b": 2}}), owner="p")
    s.add_local_changes(ch("todos", {"t1": {"a": 3}}), owner="o")
    assert s.requeue_inflight() is True
    assert s.requeue_inflight() is False
    s = h.reopen()
    assert [e.owner for e in s.pending_changes()] == ["o", "p", "o"]
    assert s.get("todos", "t1") == {"id": "t1", "a": 3, "b": 2}
    assert s.next_batch("o") == ch("todos", {"t1": {"id": "t1", "a": 3}})
    assert s.next_batch("p") is None  # someone else's batch is in flight


def test_inflight_belongs_to_its_owner(h):
    s = h.store
    s.add_local_changes(ch("todos", {"a1": {"id": "a1"}}), owner="alice")
    s.add_local_changes(ch("todos", {"b1": {"id": "b1"}}), owner="bob")
    s.add_local_changes(ch("todos", {"a2": {"id": "a2"}}), owner="alice")
    assert [e.owner for e in s.pending_changes()] == ["alice", "bob", "alice"]
    assert s.has_pending("bob") and not s.has_pending("carol")
    assert s.next_batch("alice") == ch("todos", {"a1": {"id": "a1"}, "a2": {"id": "a2"}})
    assert s.next_batch("bob") is None
    s = h.reopen()
    assert s.inflight()[0] == "alice"
    s.ack_inflight(ts(1))
    assert not s.has_pending("alice")
    assert s.pending_changes("alice") == []
    assert s.next_batch("bob") == ch("todos", {"b1": {"id": "b1"}})


def test_owner_order_in_reads(h):
    s = h.store
    s.add_local_changes(ch("todos", {"t1": {"id": "t1", "v": "a"}}), owner="alice")
    s.add_local_changes(ch("todos", {"t1": {"v": "b"}}), owner="bob")
    s.add_local_changes(ch("todos", {"t1": {"w": "a"}}), owner="alice")
    assert s.get("todos", "t1") == {"id": "t1", "v": "b", "w": "a"}
    # alice's writes go first (merged): the server will then apply bob's over them
    s.next_batch("alice")
    assert s.get("todos", "t1") == {"id": "t1", "v": "b", "w": "a"}
    # a delete by bob of alice's pending insert is bob's to send: it is kept
    s.add_local_changes(ch("todos", deletes={"t1"}), owner="bob")
    assert s.get("todos", "t1") is None
    assert s.pending_changes("bob")[0].changes == ch("todos", deletes={"t1"})


def test_clear_pending(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "a": 1}}), ts(1))
    s.add_local_changes(ch("todos", {"t0": {"id": "t0"}}), owner="o")
    s.next_batch("o")
    s.add_local_changes(
        {**ch("todos", {"t1": {"a": 2}, "t2": {"id": "t2"}}), **ch("notes", {"n": {"id": "n"}})}, owner="o"
    )
    s.add_local_changes(ch("todos", {"t3": {"id": "t3"}}), owner="p")
    with pytest.raises(ValueError, match="needs a collection"):
        s.clear_pending(entity_id="t1")
    assert s.clear_pending("todos", "t1") == {"todos"}
    assert s.get("todos", "t1") == {"id": "t1", "a": 1}
    assert s.clear_pending("todos", "nope") == set()
    s = h.reopen()
    assert s.clear_pending("todos", owner="o") == {"todos"}
    assert s.get("todos", "t2") is None and s.get("todos", "t3") == {"id": "t3"}
    assert s.clear_pending() == {"notes", "todos"}
    assert s.get("notes", "n") is None and s.get("todos", "t3") is None
    # the in-flight batch is untouched
    assert s.get("todos", "t0") == {"id": "t0"}
    assert [e.inflight for e in s.pending_changes()] == [True]
    s = h.reopen()
    assert [e.inflight for e in s.pending_changes()] == [True]


def test_acknowledged_writes_stay_marked_until_the_entity_leaves_the_cache(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1", "a": 1}}), ts(1))
    s.add_local_changes(ch("todos", {"t2": {"id": "t2"}, "t3": {"id": "t3"}}), owner="o")
    s.next_batch("o")
    assert not s.written("todos", "t2")  # in flight: the outbox says it is ours
    s.ack_inflight(ts(2))
    s = h.reopen()
    assert s.written("todos", "t2") and s.written("todos", "t3") and not s.written("todos", "t1")
    assert s.query_id_list() == []  # the mark is not a query
    s.apply_server_changes(ch("todos", {}, deletes={"t2"}), ts(3))
    s.add_local_changes(ch("todos", {"t1": {"a": 2}}), owner="o")
    s.next_batch("o")
    s.finish_inflight()  # a lost answer verified as applied: as acknowledged
    s = h.reopen()
    assert not s.written("todos", "t2") and s.written("todos", "t3") and s.written("todos", "t1")
    s.forget_written()
    s = h.reopen()
    assert not s.written("todos", "t3") and s.get_cached("todos", "t3") == {"id": "t3"}


# --- query ids, metadata, lifecycle ---------------------------------------------------------------

def test_query_ids(h):
    s = h.store
    assert s.query_ids("q1") == {}
    s.update_query_ids("q1", {"todos": {"t1", "t2"}, "users": ["u1"]}, {})
    s.update_query_ids("q1", {"todos": {"t3"}}, {"todos": {"t1", "t9"}, "users": {"u1"}})
    s.update_query_ids("q2", {"todos": {"t1"}}, {})
    ids = s.query_ids("q1")
    assert ids == {"todos": {"t2", "t3"}}
    ids["todos"].add("zz")  # a copy
    s = h.reopen()
    assert s.query_ids("q1") == {"todos": {"t2", "t3"}}
    assert s.query_id_list() == ["q1", "q2"]
    # removed first, then added: an id in both ends up present
    s.update_query_ids("q1", {"todos": {"t2"}}, {"todos": {"t2"}})
    assert s.query_ids("q1") == {"todos": {"t2", "t3"}}
    s.drop_query("q1")
    s.drop_query("unknown")
    s = h.reopen()
    assert s.query_ids("q1") == {}
    assert s.query_ids("q2") == {"todos": {"t1"}}
    with pytest.raises(TypeError, match="added"):
        s.update_query_ids("q2", ["todos"], {})
    with pytest.raises(ValueError, match="query_id"):
        s.update_query_ids("", {}, {})


def test_meta(h):
    s = h.store
    assert s.get_meta("k") is None and s.get_meta("k", 5) == 5
    value = {"ts": [1, 0, "server"], "n": None}
    s.set_meta("k", value)
    value["ts"].append(9)
    got = s.get_meta("k")
    got["x"] = 1
    assert s.get_meta("k") == {"ts": [1, 0, "server"], "n": None}
    s.set_meta("other", "x")
    s = h.reopen()
    assert s.get_meta("k") == {"ts": [1, 0, "server"], "n": None}
    assert s.get_meta("other") == "x"
    with pytest.raises(TypeError, match="'bad'"):
        s.set_meta("bad", {1, 2})
    with pytest.raises(ValueError):
        s.set_meta("", 1)


def test_clear(h):
    s = h.store
    s.apply_server_changes(ch("todos", {"t1": {"id": "t1"}}), ts(1))
    s.add_local_changes(ch("todos", {"t2": {"id": "t2"}}), owner="o")
    s.next_batch("o")
    s.add_local_changes(ch("todos", {"t3": {"id": "t3"}}), owner="o")
    s.update_query_ids("q", {"todos": {"t1"}}, {})
    s.set_meta("k", 1)
    s.clear()
    for _ in range(2):
        assert s.collections() == [] and not s.has_pending() and s.inflight() is None
        assert s.query_id_list() == [] and s.get_meta("k") is None
        s = h.reopen()


def test_closed_store_raises(h):
    s = h.store
    s.close()
    s.close()
    assert s.closed
    for call in (lambda: s.get("a", "b"), lambda: s.scan("a"), lambda: s.set_meta("k", 1),
                 lambda: s.add_local_changes(ch("a", {"b": {"id": "b"}}), owner="o"), lambda: s.clear()):
        with pytest.raises(ClientClosedError):
            call()


def test_open_store_factory(tmp_path):
    assert isinstance(open_store("memory"), MemoryStore)
    with open_store("sqlite", tmp_path / "x") as s:
        assert isinstance(s, SqliteStore)
    with pytest.raises(ValueError, match="'nosql'"):
        open_store("nosql")
    with pytest.raises(ValueError, match="path"):
        open_store("sqlite")


# --- threads ----------------------------------------------------------------------------------------

def test_thread_safety_smoke(h):
    s = h.store
    writers, per_writer, server_batches = 3, 60, 40
    start = threading.Barrier(writers + 3)
    done = threading.Event()
    errors = []

    def guarded(fn):
        def run():
            try:
                start.wait(timeout=10)
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return run

    def writer(w):
        def go():
            for i in range(per_writer):
                s.add_local_changes(ch("local", {f"w{w}-{i}": {"id": f"w{w}-{i}", "i": i}}), owner="o")
        return go

    def server():
        for b in range(server_batches):
            sets = {f"s{b}-{i}": {"id": f"s{b}-{i}", "b": b} for i in range(20)}
            s.apply_server_changes(ch("remote", sets), ts(b))

    def syncer():
        n = 0
        while not done.is_set() or s.has_pending():
            if s.next_batch("o") is not None:
                n += 1
                s.ack_inflight(ts(1000 + n))

    def reader():
        while not done.is_set():
            for doc in s.scan("local") + s.scan("remote"):
                assert "id" in doc

    threads = [threading.Thread(target=guarded(writer(w))) for w in range(writers)]
    threads += [threading.Thread(target=guarded(server))]
    others = [threading.Thread(target=guarded(syncer)), threading.Thread(target=guarded(reader))]
    for t in threads + others:
        t.start()
    for t in threads:
        t.join(timeout=60)
    done.set()
    for t in others:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads + others)
    assert errors == []
    s = h.reopen()
    assert not s.has_pending()
    assert s.cached_ids("local") == {f"w{w}-{i}" for w in range(writers) for i in range(per_writer)}
    assert len(s.cached_ids("remote")) == server_batches * 20
    assert dump(s)["outbox"] == []
