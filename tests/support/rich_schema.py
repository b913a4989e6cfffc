"""A richer schema for the client tests: dates, sets, records, optional values and relations.

No permissions on purpose (everyone may read and write), except ``private`` whose rows only
their owner may read, so that the same query gives different results for different tokens.
"""

from __future__ import annotations

from triplit_sync.schema import S, Schema


def rich_schema() -> Schema:
    return Schema(
        collections={
            "users": {
                "schema": S.Schema({
                    "id": S.Id(),
                    "name": S.String(),
                    "joined": S.Date(default=S.Default.now()),
                }),
            },
            "todos": {
                "schema": S.Schema({
                    "id": S.Id(),
                    "text": S.String(),
                    "n": S.Number(default=0),
                    "completed": S.Boolean(default=False),
                    "created_at": S.Date(default=S.Default.now()),
                    "due": S.Optional(S.Date()),
                    "tags": S.Set(S.String(), default=S.Default.Set.empty()),
                    "meta": S.Record({"prio": S.Number(), "label": S.Optional(S.String())}),
                    "assignee_id": S.Optional(S.String()),
                }),
                "relationships": {
                    "assignee": S.RelationById("users", "$assignee_id"),
                    "notes": S.RelationMany("notes", where=[["todo_id", "=", "$id"]]),
                },
            },
            "notes": {
                "schema": S.Schema({
                    "id": S.Id(),
                    "todo_id": S.String(),
                    "body": S.String(),
                }),
            },
            "private": {
                "schema": S.Schema({
                    "id": S.Id(),
                    "owner": S.String(),
                    "v": S.Number(),
                }),
                "permissions": {
                    "user": {
                        "read": {"filter": [["owner", "=", "$role.userId"]]},
                        "insert": {"filter": [["owner", "=", "$role.userId"]]},
                        "update": {"filter": [["owner", "=", "$role.userId"]]},
                        "postUpdate": {"filter": [["owner", "=", "$role.userId"]]},
                        "delete": {"filter": [["owner", "=", "$role.userId"]]},
                    },
                },
            },
        },
        roles={"user": {"match": {"sub": "$userId"}}},
    )
