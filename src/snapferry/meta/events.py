"""Queries of ``copy_events``: the durable event log of the copies into a region.

Events are appended in the transaction of what they tell where there is one (a copy accepted,
a piece committed, a copy finished), so the log never claims what did not happen. They outlive
their job: ``prune`` drops those of targets gone for longer than the retention period.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select

from snapferry.meta.schema import copy_events, copy_jobs


def add(
    conn: Connection,
    *,
    job_id: str,
    target_key: str,
    subscription: str,
    at: float,
    kind: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(copy_events).values(
            job_id=job_id,
            target_key=target_key,
            subscription=subscription,
            at=at,
            kind=kind,
            message=message,
            details=json.dumps(details or {}, sort_keys=True),
        )
    )


def events(
    conn: Connection, subscription: str, target_key: str, after: int = 0, limit: int = 1000
) -> Sequence[Row[Any]]:
    """The target's events of one subscription with ids above ``after``, in order."""
    c = copy_events.c
    return conn.execute(
        select(copy_events)
        .where(c.subscription == subscription, c.target_key == target_key, c.id > after)
        .order_by(c.id)
        .limit(limit)
    ).all()


def last_of_kind(conn: Connection, target_key: str, kind: str) -> Row[Any] | None:
    """The target's newest event of that kind."""
    c = copy_events.c
    return conn.execute(
        select(copy_events)
        .where(c.target_key == target_key, c.kind == kind)
        .order_by(c.id.desc())
        .limit(1)
    ).first()


def prune(conn: Connection, before: float) -> int:
    """Drop the events older than ``before`` of targets that no longer have a job; how many."""
    c = copy_events.c
    done = conn.execute(
        delete(copy_events).where(
            c.at < before, c.target_key.not_in(select(copy_jobs.c.target_key))
        )
    )
    return int(done.rowcount)
