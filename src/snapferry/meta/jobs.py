"""Queries of ``copy_jobs``: the durable CopyStart jobs of a target region.

Leases are compare-and-set updates (``UPDATE … WHERE lease is free or expired``), so any number
of worker processes over one database take a job at most one at a time; on PostgreSQL the
claim can become ``SELECT … FOR UPDATE SKIP LOCKED`` without changing the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update

from snapferry.meta.schema import copy_jobs

ACTIVE = ("Queued", "Copying")
"""States of a copy that is not over."""


def insert_job(conn: Connection, **values: Any) -> None:
    conn.execute(insert(copy_jobs).values(**values))


def job(conn: Connection, job_id: str) -> Row[Any] | None:
    return conn.execute(select(copy_jobs).where(copy_jobs.c.id == job_id)).first()


def job_of_target(conn: Connection, target_key: str) -> Row[Any] | None:
    return conn.execute(select(copy_jobs).where(copy_jobs.c.target_key == target_key)).first()


def jobs(conn: Connection, subscription: str | None = None) -> Sequence[Row[Any]]:
    """Every job (of one subscription), oldest first."""
    query = select(copy_jobs)
    if subscription is not None:
        query = query.where(copy_jobs.c.subscription == subscription)
    return conn.execute(query.order_by(copy_jobs.c.created_at)).all()


def active_since(conn: Connection) -> list[float]:
    """When each job that is not over was accepted, earliest first."""
    c = copy_jobs.c
    rows = conn.execute(select(c.created_at).where(c.state.in_(ACTIVE)).order_by(c.created_at))
    return [float(r.created_at) for r in rows]


def active(conn: Connection) -> Sequence[Row[Any]]:
    """Every job that is not over."""
    return conn.execute(select(copy_jobs).where(copy_jobs.c.state.in_(ACTIVE))).all()


def count_by_state(conn: Connection) -> dict[str, int]:
    """How many jobs are in each stored state."""
    c = copy_jobs.c
    rows = conn.execute(select(c.state, func.count()).group_by(c.state))
    return {str(state): int(count) for state, count in rows}


def family_jobs(conn: Connection, source_family: str, subscription: str) -> Sequence[Row[Any]]:
    """The jobs of one source family into one subscription, newest source first."""
    return conn.execute(
        select(copy_jobs)
        .where(
            copy_jobs.c.source_family == source_family,
            copy_jobs.c.subscription == subscription,
        )
        .order_by(copy_jobs.c.source_created_at.desc())
    ).all()


def active_count(conn: Connection, subscription: str) -> int:
    c = copy_jobs.c
    return int(
        conn.execute(
            select(func.count())
            .select_from(copy_jobs)
            .where(c.subscription == subscription, c.state.in_(ACTIVE))
        ).scalar_one()
    )


def runnable(conn: Connection, now: float, limit: int) -> list[str]:
    """Ids of jobs a worker may lease now: not over, due, and unleased or lease expired."""
    c = copy_jobs.c
    rows = conn.execute(
        select(c.id)
        .where(
            c.state.in_(ACTIVE),
            c.next_attempt_at <= now,
            or_(c.lease_expires.is_(None), c.lease_expires < now),
        )
        .order_by(c.next_attempt_at)
        .limit(limit)
    ).all()
    return [str(r.id) for r in rows]


def claim(conn: Connection, job_id: str, owner: str, now: float, expires: float) -> bool:
    """Take the job's lease if it is free or expired. True if taken."""
    c = copy_jobs.c
    done = conn.execute(
        update(copy_jobs)
        .where(
            c.id == job_id,
            c.state.in_(ACTIVE),
            or_(c.lease_expires.is_(None), c.lease_expires < now),
        )
        .values(lease_owner=owner, lease_expires=expires)
    )
    return done.rowcount == 1


def update_leased(conn: Connection, job_id: str, owner: str, **values: Any) -> bool:
    """Change a job this owner still leases. False (nothing changed) if the lease was lost or
    the job is gone."""
    c = copy_jobs.c
    done = conn.execute(
        update(copy_jobs).where(c.id == job_id, c.lease_owner == owner).values(**values)
    )
    return done.rowcount == 1


def update_job(conn: Connection, job_id: str, **values: Any) -> None:
    conn.execute(update(copy_jobs).where(copy_jobs.c.id == job_id).values(**values))


def delete_job(conn: Connection, job_id: str) -> None:
    conn.execute(delete(copy_jobs).where(copy_jobs.c.id == job_id))


def note_error(
    conn: Connection, job_id: str, error: str, *, attempts: int, last_progress_at: float | None
) -> bool:
    """Set the job's last error unless, since it was read (``attempts``, ``last_progress_at``),
    it ended, moved or began another attempt. True if set."""
    c = copy_jobs.c
    moved = (
        c.last_progress_at.is_(None)
        if last_progress_at is None
        else c.last_progress_at == last_progress_at
    )
    done = conn.execute(
        update(copy_jobs)
        .where(c.id == job_id, c.state.in_(ACTIVE), c.attempts == attempts, moved)
        .values(last_error=error)
    )
    return done.rowcount == 1


def add_progress(
    conn: Connection,
    job_id: str,
    owner: str,
    *,
    staged: int,
    transferred: int,
    now: float,
    lease_expires: float,
) -> bool:
    """Count a committed piece (in the transaction that commits it) and renew the lease; False
    if the lease was lost."""
    c = copy_jobs.c
    done = conn.execute(
        update(copy_jobs)
        .where(c.id == job_id, c.lease_owner == owner)
        .values(
            bytes_staged=c.bytes_staged + staged,
            bytes_transferred=c.bytes_transferred + transferred,
            last_progress_at=now,
            lease_expires=lease_expires,
        )
    )
    return done.rowcount == 1


def leases(conn: Connection, now: float) -> list[tuple[str, str]]:
    """(job id, owner) of active jobs whose lease has not expired."""
    c = copy_jobs.c
    rows = conn.execute(
        select(c.id, c.lease_owner).where(c.state.in_(ACTIVE), c.lease_expires >= now)
    ).all()
    return [(str(r.id), str(r.lease_owner)) for r in rows]


def take_over(conn: Connection, job_id: str, old_owner: str, owner: str, expires: float) -> bool:
    """Take a lease from an owner known to be dead. True if taken."""
    c = copy_jobs.c
    done = conn.execute(
        update(copy_jobs)
        .where(c.id == job_id, c.lease_owner == old_owner, c.state.in_(ACTIVE))
        .values(lease_owner=owner, lease_expires=expires)
    )
    return done.rowcount == 1


def release(conn: Connection, owner: str) -> Sequence[Row[Any]]:
    """Free every lease the owner holds (a graceful stop): another worker resumes at once. A
    job that was copying is queued again. The jobs as they were before."""
    c = copy_jobs.c
    held = conn.execute(select(copy_jobs).where(c.lease_owner == owner)).all()
    conn.execute(
        update(copy_jobs)
        .where(c.lease_owner == owner, c.state == "Copying")
        .values(state="Queued", lease_owner=None, lease_expires=None)
    )
    conn.execute(
        update(copy_jobs).where(c.lease_owner == owner).values(lease_owner=None, lease_expires=None)
    )
    return held
