"""Seeded random data and queries for the query differential test (tests/query/test_query_differential.py)."""

from __future__ import annotations

import random
from typing import Any, Dict, List, Tuple

from triplit_sync._util.jsnumber import js_number_str


def _t(type_: str, optional: bool = False, **extra: Any) -> Dict[str, Any]:
    config: Dict[str, Any] = {"optional": True} if optional else {}
    return {"type": type_, "config": config, **extra}


def _set(items: str, optional: bool = True) -> Dict[str, Any]:
    return {"type": "set", "items": {"type": items, "config": {}}, "config": {"optional": True} if optional else {}}


def _rel(collection: str, where: List[Any], cardinality: str, **extra: Any) -> Dict[str, Any]:
    return {"query": {"collectionName": collection, "where": where, **extra}, "cardinality": cardinality}


SCHEMA: Dict[str, Any] = {
    "collections": {
        "users": {
            "schema": {"type": "record", "config": {}, "properties": {
                "id": _t("string"),
                "name": _t("string"),
                "age": _t("number", True),
                "score": _t("number"),
                "active": _t("boolean"),
                "joined": _t("date"),
                "left": _t("date", True),
                "nick": _t("string", True),
                "team_id": _t("string", True),
                "tags": _set("string"),
                "nums": _set("number"),
                "flags": _set("boolean"),
                "days": _set("date"),
                "address": {"type": "record", "config": {}, "properties": {
                    "city": _t("string"), "zip": _t("number", True)}},
                "meta": _t("json", True),
            }},
            "relationships": {
                "posts": _rel("posts", [["author_id", "=", "$1.id"]], "many"),
                "top_post": _rel("posts", [["author_id", "=", "$1.id"]], "one", order=[["score", "DESC"], ["id", "ASC"]]),
                "team": _rel("teams", [["id", "=", "$1.team_id"]], "one"),
                "comments": _rel("comments", [["user_id", "=", "$1.id"]], "many"),
                "good_posts": _rel("posts", [["author_id", "=", "$1.id"], ["score", ">", 2]], "many"),
            },
        },
        "posts": {
            "schema": {"type": "record", "config": {}, "properties": {
                "id": _t("string"),
                "title": _t("string"),
                "author_id": _t("string", True),
                "score": _t("number"),
                "created": _t("date"),
                "published": _t("boolean", True),
                "labels": _set("string"),
                "info": {"type": "record", "config": {}, "properties": {
                    "views": _t("number"), "lang": _t("string", True)}},
                "data": _t("json", True),
            }},
            "relationships": {
                "author": _rel("users", [["id", "=", "$author_id"]], "one"),
                "comments": _rel("comments", [["post_id", "=", "$1.id"]], "many"),
            },
        },
        "comments": {
            "schema": {"type": "record", "config": {}, "properties": {
                "id": _t("string"),
                "post_id": _t("string"),
                "user_id": _t("string", True),
                "body": _t("string"),
                "likes": _t("number", True),
            }},
            "relationships": {
                "post": _rel("posts", [["id", "=", "$1.post_id"]], "one"),
                "user": _rel("users", [["id", "=", "$1.user_id"]], "one"),
            },
        },
        "teams": {
            "schema": {"type": "record", "config": {}, "properties": {
                "id": _t("string"), "name": _t("string"), "rank": _t("number", True)}},
            "relationships": {
                "members": _rel("users", [["team_id", "=", "$1.id"]], "many"),
            },
        },
    }
}

STRINGS = ["ann", "Ann", "bob", "cy", "dee", "eve", "a%b", "a_b", "x y", "", "zed", "Émile", "n\u00f6", "ann bob"]
NUMBERS = [-3, -1, 0, 1, 2, 2.5, 3, 10, 100]
DATES = ["2023-12-31T23:59:59.000Z", "2024-01-01T00:00:00.000Z", "2024-01-01T12:30:00.500Z",
         "2024-02-29T00:00:00.000Z", "2025-06-01T08:00:00.000Z"]
TAGS = ["a", "b", "c", "A", "x y", "10", "2"]
CITIES = ["Oslo", "Rome", "oslo", "Lima"]
JSONS: List[Any] = [5, 2.5, "text", "ann", True, None, [1, 2], ["a", "b"], {"k": 1}, {"k": [1, 2]}, 0, ""]
LIKES = ["%", "a%", "%b", "%n%", "A_B", "a_b", "ann", "%a%b%", "_", "__", "%x y%", "é%", "%Ö"]


def _maybe(rng: random.Random, value: Any, p_missing: float = 0.3, p_null: float = 0.15) -> Any:
    r = rng.random()
    if r < p_missing:
        return _Missing
    if r < p_missing + p_null:
        return None
    return value


class _MissingT:
    pass


_Missing = _MissingT()


def _put(doc: Dict[str, Any], key: str, value: Any) -> None:
    if value is not _Missing:
        doc[key] = value


def generate_data(seed: int) -> Dict[str, List[Dict[str, Any]]]:
    """Documents in the HTTP (serialized) form: sets as lists."""
    rng = random.Random(seed)
    teams = []
    for i in range(5):
        d: Dict[str, Any] = {"id": f"t{i}", "name": rng.choice(STRINGS)}
        _put(d, "rank", _maybe(rng, rng.choice(NUMBERS)))
        teams.append(d)
    users = []
    for i in range(30):
        d = {"id": f"u{i:02d}" if i % 7 else f"U{i}", "name": rng.choice(STRINGS), "score": rng.choice(NUMBERS),
             "active": rng.random() < 0.5, "joined": rng.choice(DATES),
             "address": {"city": rng.choice(CITIES)}}
        if rng.random() < 0.5:
            d["address"]["zip"] = rng.choice(NUMBERS)
        _put(d, "age", _maybe(rng, rng.choice(NUMBERS)))
        _put(d, "left", _maybe(rng, rng.choice(DATES)))
        _put(d, "nick", _maybe(rng, rng.choice(STRINGS)))
        _put(d, "team_id", _maybe(rng, f"t{rng.randrange(6)}", 0.2, 0.1))
        _put(d, "tags", _maybe(rng, rng.sample(TAGS, rng.randrange(4)), 0.2, 0))
        _put(d, "nums", _maybe(rng, rng.sample(NUMBERS, rng.randrange(3)), 0.3, 0))
        _put(d, "flags", _maybe(rng, rng.sample([True, False], rng.randrange(3)), 0.4, 0))
        _put(d, "days", _maybe(rng, rng.sample(DATES, rng.randrange(3)), 0.4, 0))
        _put(d, "meta", _maybe(rng, rng.choice(JSONS), 0.3, 0))
        users.append(d)
    user_ids = [u["id"] for u in users]
    posts = []
    for i in range(45):
        d = {"id": f"p{i:02d}", "title": rng.choice(STRINGS), "score": rng.choice(NUMBERS),
             "created": rng.choice(DATES), "info": {"views": rng.choice(NUMBERS)}}
        if rng.random() < 0.5:
            d["info"]["lang"] = rng.choice(["en", "no", "EN"])
        _put(d, "author_id", _maybe(rng, rng.choice(user_ids + ["nobody"]), 0.1, 0.1))
        _put(d, "published", _maybe(rng, rng.random() < 0.5))
        _put(d, "labels", _maybe(rng, rng.sample(TAGS, rng.randrange(3)), 0.3, 0))
        _put(d, "data", _maybe(rng, rng.choice(JSONS), 0.4, 0))
        posts.append(d)
    post_ids = [p["id"] for p in posts]
    comments = []
    for i in range(60):
        d = {"id": f"c{i:02d}", "post_id": rng.choice(post_ids + ["p99"]), "body": rng.choice(STRINGS)}
        _put(d, "user_id", _maybe(rng, rng.choice(user_ids), 0.15, 0.1))
        _put(d, "likes", _maybe(rng, rng.choice(NUMBERS)))
        comments.append(d)
    return {"teams": teams, "users": users, "posts": posts, "comments": comments}


def set_removals(seed: int, data: Dict[str, List[Dict[str, Any]]]) -> List[Tuple[str, str, Dict[str, Any]]]:
    """Partial updates that mark set items removed (``{item: false}``), to run through /update."""
    rng = random.Random(seed + 1)
    out = []
    for u in data["users"]:
        if u.get("tags") and rng.random() < 0.3:
            out.append(("users", u["id"], {"tags": {str(rng.choice(u["tags"])): False}}))
    return out


def encode_doc(collection: str, doc: Dict[str, Any]) -> Dict[str, Any]:
    """The server's stored (encoded) form of a serialized document: sets become {key: true} maps."""
    props = SCHEMA["collections"][collection]["schema"]["properties"]
    out: Dict[str, Any] = {}
    for k, v in doc.items():
        p = props.get(k)
        if p and p["type"] == "set" and isinstance(v, list):
            out[k] = {(js_number_str(x) if not isinstance(x, str) else x): True for x in v}
        else:
            out[k] = v
    return out


# --- queries ------------------------------------------------------------------------------------


def _attrs(collection: str) -> List[Tuple[str, Dict[str, Any]]]:
    props = SCHEMA["collections"][collection]["schema"]["properties"]
    out = []
    for k, p in props.items():
        if p["type"] == "record":
            for k2, p2 in p["properties"].items():
                out.append((k + "." + k2, p2))
        else:
            out.append((k, p))
    return out


_OPS = {
    "string": ["=", "!=", "<", ">", "<=", ">=", "in", "nin", "like", "nlike", "isDefined"],
    "number": ["=", "!=", "<", ">", "<=", ">=", "in", "nin", "isDefined"],
    "boolean": ["=", "!=", "<", ">", "<=", ">=", "isDefined"],
    "date": ["=", "!=", "<", ">", "<=", ">=", "isDefined"],
    "json": ["=", "!=", "<", ">", "<=", ">=", "in", "nin", "like", "nlike", "isDefined"],
}


class QueryGen:
    def __init__(self, seed: int, data: Dict[str, List[Dict[str, Any]]], schemaless: bool = False) -> None:
        self.rng = random.Random(seed)
        self.data = data
        # Without a schema there are no relations: only raw exists and ad-hoc includes.
        self.schemaless = schemaless

    def rels(self, collection: str) -> Dict[str, Any]:
        return {} if self.schemaless else SCHEMA["collections"][collection].get("relationships") or {}

    def value(self, type_: str, op: str, attr: str, collection: str) -> Any:
        rng = self.rng
        if op == "isDefined":
            return rng.choice([True, False])
        if rng.random() < 0.08:
            return rng.choice([None, "$global.nothing", "$session.team", "$session.lvl", "$query.q"])
        if rng.random() < 0.3:
            # a value that occurs in the data
            vals = [d.get(attr.split(".")[0]) for d in self.data[collection]]
            if "." in attr:
                vals = [v.get(attr.split(".")[1]) if isinstance(v, dict) else None for v in vals]
            vals = [v for v in vals if v is not None and not isinstance(v, (list, dict))]
            if vals:
                v = rng.choice(vals)
                return [v, rng.choice(vals)] if op in ("in", "nin") else v
        if op in ("like", "nlike"):
            return rng.choice(LIKES)
        pool = {"string": STRINGS + TAGS, "number": NUMBERS, "boolean": [True, False], "date": DATES + ["2024"],
                "json": [x for x in JSONS if not isinstance(x, (list, dict))]}[type_]
        if op in ("in", "nin"):
            return rng.sample(pool, min(len(pool), rng.randrange(0, 4)))
        return rng.choice(pool)

    def statement(self, collection: str, depth: int) -> List[Any]:
        rng = self.rng
        rels = self.rels(collection)
        if depth < 2 and rels and rng.random() < 0.1:
            rel = rng.choice(sorted(rels))
            target = rels[rel]["query"]["collectionName"]
            inner = self.statement(target, depth + 1)
            return [rel + "." + inner[0], inner[1], inner[2]]
        attrs = _attrs(collection)
        sets = [(a, p) for a, p in attrs if p["type"] == "set"]
        attr, p = rng.choice(sets) if sets and rng.random() < 0.15 else rng.choice(attrs)
        if p["type"] == "set":
            items = p["items"]["type"]
            ops = ["isDefined"] + [o for o in _OPS[items] if o != "isDefined"]
            op = rng.choice(["has", "!has"]) if rng.random() < 0.5 else rng.choice(ops)
            if op in ("has", "!has"):
                pool = {"string": TAGS, "number": NUMBERS, "boolean": [True, False], "date": DATES}[items]
                return [attr, op, rng.choice(pool)]
            return [attr, op, self.value(items, op, attr, collection) if op != "isDefined" else rng.choice([True, False])]
        if p["type"] == "string" and attr.endswith("id") and rng.random() < 0.5:
            ids = [d["id"] for d in self.data.get({"author_id": "users", "user_id": "users", "post_id": "posts", "team_id": "teams"}.get(attr, collection), [])]
            op = rng.choice(["=", "in", "!=", "nin"])
            if op in ("in", "nin"):
                return [attr, op, rng.sample(ids + ["zz"], rng.randrange(1, 4))]
            return [attr, op, rng.choice(ids + ["zz"])]
        op = rng.choice(_OPS[p["type"]])
        return [attr, op, self.value(p["type"], op, attr, collection)]

    def exists(self, collection: str, depth: int) -> Dict[str, Any]:
        rng = self.rng
        rels = self.rels(collection)
        r = rng.random()
        if r < 0.5 and rels:
            rel = rng.choice(sorted(rels))
            target = rels[rel]["query"]["collectionName"]
            ex: Dict[str, Any] = {"_extends": rel}
            if rng.random() < 0.7:
                ex["where"] = self.where(target, depth + 1, max_n=2)
            return {"exists": ex}
        # raw subquery with 0, 1 or 2 references to the parent
        target, links = rng.choice(_LINKS[collection]) if _LINKS.get(collection) else (collection, [])
        extra = _EXTRA_LINKS.get((collection, target), [])
        n = rng.choice([0, 1, 1, 1, 2, 2, 3])
        where = [list(link) for link in links[:n]]
        if rng.random() < 0.3 and extra:
            where = [list(rng.choice(extra))] + where[1:]
        if rng.random() < 0.2 and where:
            where[0][1] = rng.choice(["<", ">", "!=", "<=", ">="])
        where += self.where(target, depth + 1, max_n=2)
        if depth == 0 and _LINKS.get(target) and rng.random() < 0.25:
            # a nested exists that also looks at the grandparent ($2)
            t2, links2 = rng.choice(_LINKS[target])
            inner = [list(links2[0])]
            gp_attr = rng.choice([a for a, p in _attrs(collection) if p["type"] in ("string", "number")])
            t2_attr = rng.choice([a for a, p in _attrs(t2) if p["type"] in ("string", "number")])
            inner.append([t2_attr, rng.choice(["=", "!=", "<"]), "$2." + gp_attr])
            where.append({"exists": {"collectionName": t2, "where": inner}})
        rng.shuffle(where)
        return {"exists": {"collectionName": target, "where": where}}

    def filter(self, collection: str, depth: int) -> Any:
        rng = self.rng
        r = rng.random()
        if r < 0.04:
            return rng.choice([True, False])
        if r < 0.2 and depth < 2:
            return {"mod": rng.choice(["and", "or"]),
                    "filters": [self.filter(collection, depth + 1) for _ in range(rng.randrange(1, 4))]}
        if r < 0.32 and depth < 2:
            return self.exists(collection, depth)
        return self.statement(collection, depth)

    def where(self, collection: str, depth: int = 0, max_n: int = 3) -> List[Any]:
        return [self.filter(collection, depth) for _ in range(self.rng.randrange(0, max_n + 1))]

    def order(self, collection: str) -> List[List[str]]:
        rng = self.rng
        sortable = [a for a, p in _attrs(collection) if p["type"] in ("string", "number", "boolean", "date", "json")]
        keys = [[rng.choice(sortable), rng.choice(["ASC", "DESC"])] for _ in range(rng.randrange(1, 3))]
        if collection == "posts" and not self.schemaless and rng.random() < 0.1:
            keys.insert(0, [rng.choice(["author.name", "author.score"]), rng.choice(["ASC", "DESC"])])
        if rng.random() < 0.5:
            keys.append(["id", rng.choice(["ASC", "DESC"])])
        return keys

    def include(self, collection: str, depth: int) -> Dict[str, Any]:
        rng = self.rng
        rels = self.rels(collection)
        out: Dict[str, Any] = {}
        for _ in range(rng.randrange(1, 3)):
            r = rng.random()
            if rels and r < 0.4:
                rel = rng.choice(sorted(rels))
                out[rel] = None
            elif rels and r < 0.7:
                rel = rng.choice(sorted(rels))
                target = rels[rel]["query"]["collectionName"]
                ext: Dict[str, Any] = {"_extends": rel}
                if rng.random() < 0.6:
                    ext["where"] = self.where(target, 1, max_n=2)
                if rng.random() < 0.4:
                    ext["order"] = self.order(target)
                if rng.random() < 0.4:
                    ext["limit"] = rng.randrange(1, 4)
                if depth < 1 and rng.random() < 0.3:
                    ext["include"] = self.include(target, depth + 1)
                out["x_" + rel] = ext
            elif _LINKS.get(collection):
                target, links = rng.choice(_LINKS[collection])
                sub: Dict[str, Any] = {"collectionName": target,
                                       "where": [list(link) for link in links[: rng.choice([1, 1, 2])]] + self.where(target, 1, max_n=1)}
                if rng.random() < 0.4:
                    sub["order"] = self.order(target)
                if rng.random() < 0.3:
                    sub["limit"] = rng.randrange(1, 4)
                if depth < 1 and rng.random() < 0.3:
                    sub["include"] = self.include(target, depth + 1)
                out["adhoc_" + target] = {"subquery": sub, "cardinality": rng.choice(["one", "many"])}
        return out

    def cursor(self, collection: str, order: List[List[str]]) -> List[Any]:
        doc = self.rng.choice(self.data[collection])
        vals = []
        for attr, _ in order:
            v: Any = doc
            for part in attr.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            vals.append(v)
        return vals

    def query(self) -> Dict[str, Any]:
        rng = self.rng
        collection = rng.choice(["users", "users", "posts", "posts", "comments", "teams"])
        q: Dict[str, Any] = {"collectionName": collection}
        where = self.where(collection)
        if where:
            q["where"] = where
        if rng.random() < 0.6:
            q["order"] = self.order(collection)
            if rng.random() < 0.3:
                q["after"] = [self.cursor(collection, q["order"]), rng.choice([True, False])]
        if rng.random() < 0.4:
            q["limit"] = rng.choice([0, 1, 2, 3, 5, 10])
        if rng.random() < 0.15:
            attrs = [a for a, _ in _attrs(collection)]
            q["select"] = rng.sample(attrs, rng.randrange(1, 4)) + (["id"] if rng.random() < 0.8 else [])
        if rng.random() < 0.3:
            q["include"] = self.include(collection, 0)
        if rng.random() < 0.3:
            q["vars"] = {"q": rng.choice(STRINGS + [3, 2.5])}
        return q


# (target collection, filters linking it to the parent $1)
_LINKS: Dict[str, List[Tuple[str, List[List[Any]]]]] = {
    "users": [("posts", [["author_id", "=", "$1.id"], ["score", "=", "$1.score"]]),
              ("comments", [["user_id", "=", "$1.id"], ["body", "=", "$1.name"]]),
              ("teams", [["id", "=", "$1.team_id"], ["rank", "=", "$1.age"]])],
    "posts": [("users", [["id", "=", "$1.author_id"], ["score", "=", "$1.score"]]),
              ("comments", [["post_id", "=", "$1.id"], ["likes", "=", "$1.score"]])],
    "comments": [("posts", [["id", "=", "$1.post_id"], ["title", "=", "$1.body"]]),
                 ("users", [["id", "=", "$1.user_id"], ["age", "=", "$1.likes"]])],
    "teams": [("users", [["team_id", "=", "$1.id"], ["age", "=", "$1.rank"]])],
}

# parent filters with operators the server's view cache cannot index
_EXTRA_LINKS: Dict[Tuple[str, str], List[List[Any]]] = {
    ("users", "posts"): [["labels", "has", "$1.name"], ["title", "in", "$1.tags"], ["title", "like", "$1.nick"],
                         ["author_id", "=", "$id"]],
    ("posts", "comments"): [["body", "nlike", "$1.title"], ["likes", "in", "$1.data"]],
    ("teams", "users"): [["tags", "has", "$1.name"], ["nums", "=", "$1.rank"]],
    ("comments", "users"): [["name", "=", "$body"], ["id", "in", "$1.user_id"]],
}

__all__ = ["SCHEMA", "QueryGen", "generate_data", "encode_doc", "set_removals"]
