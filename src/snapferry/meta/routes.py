"""The front door's resource index: which region holds a resource (a cache of what the regions
say, never the truth)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, insert, select

from snapferry.meta.schema import resource_index

_REGION_OF = select(resource_index.c.region).where(resource_index.c.key == bindparam("key"))


def region_of(conn: Connection, key: str) -> str | None:
    row = conn.execute(_REGION_OF, {"key": key}).first()
    return None if row is None else str(row.region)


def put(conn: Connection, key: str, region: str) -> None:
    conn.execute(delete(resource_index).where(resource_index.c.key == key))
    conn.execute(insert(resource_index), {"key": key, "region": region})


def drop(conn: Connection, key: str) -> None:
    conn.execute(delete(resource_index).where(resource_index.c.key == key))
