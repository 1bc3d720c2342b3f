"""Rows of ``arm_resources`` and ``arm_operations``, read and written with SQLAlchemy Core."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from snapferry.meta.schema import arm_operations, arm_resources

BUSY_STATES = ("creating", "updating", "deleting")
"""Resource states during which another change is refused (AnotherOperationInProgress)."""


class Addressed(Protocol):
    """What names an ARM resource (``control.ids.ResourceId``)."""

    @property
    def subscription(self) -> str: ...
    @property
    def resource_group(self) -> str: ...
    @property
    def rtype(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class Record:
    """One ARM disk or snapshot. ``body`` is JSON-ready: tags, sku, zones, properties."""

    key: str
    subscription: str
    resource_group: str
    rtype: str
    id: str
    location: str
    engine_id: str | None
    state: str
    body: dict[str, Any]
    unique_id: str
    created_at: float

    @classmethod
    def new(
        cls,
        rid: Addressed,
        location: str,
        engine_id: str | None,
        state: str,
        body: dict[str, Any],
        created_at: float,
    ) -> Record:
        """A resource being made now, with a fresh uniqueId."""
        return cls(
            key=rid.key,
            subscription=rid.subscription.lower(),
            resource_group=rid.resource_group.lower(),
            rtype=rid.rtype,
            id=rid.id,
            location=location,
            engine_id=engine_id,
            state=state,
            body=body,
            unique_id=str(uuid.uuid4()),
            created_at=created_at,
        )

    @property
    def name(self) -> str:
        return self.id.rsplit("/", 1)[1]

    @property
    def props(self) -> dict[str, Any]:
        props: dict[str, Any] = self.body["properties"]
        return props

    def with_body(self, **changes: Any) -> Record:
        """A copy whose body has the given top-level keys replaced."""
        return replace(self, body={**self.body, **changes})

    def with_props(self, **changes: Any) -> Record:
        """A copy whose properties have the given keys replaced (None removes a key)."""
        props = {**self.props, **changes}
        return self.with_body(properties={k: v for k, v in props.items() if v is not None})


@dataclass(frozen=True)
class Operation:
    """A long-running operation: ``status`` is InProgress, Succeeded or Failed."""

    id: str
    subscription: str
    resource_key: str
    kind: str
    status: str
    error: dict[str, Any] | None
    result: dict[str, Any] | None
    started_at: float
    ended_at: float | None

    @property
    def done(self) -> bool:
        return self.status != "InProgress"


def _record(row: Any) -> Record:
    return Record(
        key=row.key,
        subscription=row.subscription,
        resource_group=row.resource_group,
        rtype=row.type,
        id=row.id,
        location=row.location,
        engine_id=row.engine_id,
        state=row.state,
        body=json.loads(row.body),
        unique_id=row.unique_id,
        created_at=row.created_at,
    )


_BY_KEY = select(arm_resources).where(arm_resources.c.key == bindparam("key"))


def get(conn: Connection, key: str) -> Record | None:
    row = conn.execute(_BY_KEY, {"key": key}).first()
    return None if row is None else _record(row)


_BY_ENGINE_ID = select(arm_resources).where(arm_resources.c.engine_id == bindparam("engine_id"))


def by_engine_id(conn: Connection, engine_id: str) -> Record | None:
    """The resource whose data is the engine disk or snapshot ``engine_id`` (the data plane's
    lookup)."""
    row = conn.execute(_BY_ENGINE_ID, {"engine_id": engine_id}).first()
    return None if row is None else _record(row)


def by_unique_id(conn: Connection, unique_id: str) -> Record | None:
    """The resource with that ARM ``uniqueId``."""
    row = conn.execute(
        select(arm_resources).where(arm_resources.c.unique_id == unique_id).limit(1)
    ).first()
    return None if row is None else _record(row)


def put(conn: Connection, rec: Record) -> None:
    """Insert or replace the record."""
    values = {
        "key": rec.key,
        "subscription": rec.subscription,
        "resource_group": rec.resource_group,
        "type": rec.rtype,
        "id": rec.id,
        "location": rec.location,
        "engine_id": rec.engine_id,
        "state": rec.state,
        "body": json.dumps(rec.body, separators=(",", ":")),
        "unique_id": rec.unique_id,
        "created_at": rec.created_at,
    }
    done = conn.execute(update(arm_resources).where(arm_resources.c.key == rec.key), values)
    if done.rowcount == 0:
        conn.execute(insert(arm_resources), values)


def drop(conn: Connection, key: str) -> None:
    conn.execute(delete(arm_resources).where(arm_resources.c.key == key))


def page(
    conn: Connection,
    subscription: str,
    rtype: str,
    group: str | None,
    after: str | None,
    limit: int,
) -> list[Record]:
    """Up to limit records of one type in a subscription (and group), in key order after
    ``after``. Records still being created are included (they show ``Updating``)."""
    c = arm_resources.c
    query = select(arm_resources).where(c.subscription == subscription.lower(), c.type == rtype)
    if group is not None:
        query = query.where(c.resource_group == group.lower())
    if after is not None:
        query = query.where(c.key > after)
    return [_record(r) for r in conn.execute(query.order_by(c.key).limit(limit))]


def all_records(
    conn: Connection, *, subscription: str | None = None, rtype: str | None = None
) -> list[Record]:
    """Every record, or those of one subscription and type (the scope index serves it)."""
    query = select(arm_resources)
    if subscription is not None:
        query = query.where(arm_resources.c.subscription == subscription)
    if rtype is not None:
        query = query.where(arm_resources.c.type == rtype)
    return [_record(r) for r in conn.execute(query)]


def count_in_group(conn: Connection, subscription: str, group: str) -> int:
    c = arm_resources.c
    rows = conn.execute(
        select(c.key)
        .where(c.subscription == subscription.lower(), c.resource_group == group.lower())
        .limit(1)
    )
    return len(rows.all())


# --- operations ------------------------------------------------------------------------------
def _operation(row: Any) -> Operation:
    return Operation(
        id=row.id,
        subscription=row.subscription,
        resource_key=row.resource_key,
        kind=row.kind,
        status=row.status,
        error=None if row.error is None else json.loads(row.error),
        result=None if row.result is None else json.loads(row.result),
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def add_operation(conn: Connection, op: Operation) -> None:
    conn.execute(
        insert(arm_operations),
        {
            "id": op.id,
            "subscription": op.subscription,
            "resource_key": op.resource_key,
            "kind": op.kind,
            "status": op.status,
            "error": None if op.error is None else json.dumps(op.error),
            "result": None if op.result is None else json.dumps(op.result),
            "started_at": op.started_at,
            "ended_at": op.ended_at,
        },
    )


def finish_operation(
    conn: Connection,
    op_id: str,
    status: str,
    ended_at: float,
    *,
    error: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        update(arm_operations)
        .where(arm_operations.c.id == op_id)
        .values(
            status=status,
            ended_at=ended_at,
            error=None if error is None else json.dumps(error),
            result=None if result is None else json.dumps(result),
        )
    )


def get_operation(conn: Connection, op_id: str) -> Operation | None:
    row = conn.execute(select(arm_operations).where(arm_operations.c.id == op_id)).first()
    return None if row is None else _operation(row)


def running_operation_of(conn: Connection, key: str) -> Operation | None:
    """The operation in progress on the resource, if any."""
    c = arm_operations.c
    row = conn.execute(
        select(arm_operations).where(c.resource_key == key, c.status == "InProgress").limit(1)
    ).first()
    return None if row is None else _operation(row)


def running_operations(conn: Connection) -> list[Operation]:
    rows = conn.execute(select(arm_operations).where(arm_operations.c.status == "InProgress"))
    return [_operation(r) for r in rows]


def prune_operations(conn: Connection, ended_before: float) -> None:
    """Forget finished operations that ended before the given time."""
    c = arm_operations.c
    conn.execute(delete(arm_operations).where(c.status != "InProgress", c.ended_at < ended_before))
