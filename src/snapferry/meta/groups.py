"""Resource groups, as the front door keeps them: rows by key (``subscription/name``, lower
case), tags stored as JSON."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from snapferry.meta.schema import resource_groups

_BY_KEY = select(resource_groups).where(resource_groups.c.key == bindparam("key"))


def get(conn: Connection, key: str) -> Row[Any] | None:
    return conn.execute(_BY_KEY, {"key": key}).first()


def tags_of(row: Row[Any]) -> dict[str, str]:
    tags: dict[str, str] = json.loads(row.tags)
    return tags


def add(
    conn: Connection,
    key: str,
    *,
    subscription: str,
    name: str,
    location: str,
    tags: dict[str, str],
    created_at: float,
) -> None:
    """Insert a group; IntegrityError if its key exists (a concurrent creation won)."""
    conn.execute(
        insert(resource_groups),
        {
            "key": key,
            "subscription": subscription,
            "name": name,
            "location": location,
            "tags": json.dumps(tags),
            "created_at": created_at,
        },
    )


def set_tags(conn: Connection, key: str, tags: dict[str, str]) -> None:
    conn.execute(
        update(resource_groups).where(resource_groups.c.key == key), {"tags": json.dumps(tags)}
    )


def drop(conn: Connection, key: str) -> None:
    conn.execute(delete(resource_groups).where(resource_groups.c.key == key))


def of_subscription(conn: Connection, subscription: str) -> list[Row[Any]]:
    """A subscription's groups, by key."""
    c = resource_groups.c
    query = select(resource_groups).where(
        c.key.startswith(subscription.lower() + "/", autoescape=True)
    )
    return list(conn.execute(query.order_by(c.key)))
