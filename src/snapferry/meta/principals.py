"""Principals and their role assignments (tables ``principals`` and ``role_assignments``):
each principal's row with its roles, ``{subscription: role}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, bindparam, delete, insert, select, update

from snapferry.meta.schema import principals, role_assignments

WithRoles = tuple[Row[Any], dict[str, str]]

# Built once: authentication reads them on every request.
_PRINCIPAL = select(principals).where(principals.c.id == bindparam("pid"))
_ROLES = select(role_assignments.c.subscription, role_assignments.c.role).where(
    role_assignments.c.principal_id == bindparam("pid")
)


def add(
    conn: Connection,
    principal_id: str,
    *,
    tenant: str,
    name: str,
    admin: bool,
    created_at: float,
    roles: Mapping[str, str],
) -> None:
    """Insert an enabled principal with its roles."""
    conn.execute(
        insert(principals).values(
            id=principal_id,
            tenant=tenant,
            name=name,
            enabled=True,
            admin=admin,
            created_at=created_at,
        )
    )
    if roles:
        conn.execute(
            insert(role_assignments),
            [
                {"principal_id": principal_id, "subscription": s, "role": r}
                for s, r in roles.items()
            ],
        )


def set_role(conn: Connection, principal_id: str, subscription: str, role: str | None) -> None:
    """Replace the principal's role on subscription (None: remove it)."""
    conn.execute(
        delete(role_assignments).where(
            role_assignments.c.principal_id == principal_id,
            role_assignments.c.subscription == subscription,
        )
    )
    if role is not None:
        conn.execute(
            insert(role_assignments).values(
                principal_id=principal_id, subscription=subscription, role=role
            )
        )


def set_enabled(conn: Connection, principal_id: str, enabled: bool) -> None:
    conn.execute(update(principals).where(principals.c.id == principal_id).values(enabled=enabled))


def oldest_admin(conn: Connection) -> str | None:
    """The oldest admin principal's id, enabled ones first."""
    found = conn.execute(
        select(principals.c.id)
        .where(principals.c.admin.is_(True))
        .order_by(principals.c.enabled.desc(), principals.c.created_at, principals.c.id)
        .limit(1)
    ).scalar()
    return None if found is None else str(found)


def one(conn: Connection, principal_id: str) -> WithRoles | None:
    """The principal and its roles, in two indexed reads (what authentication needs)."""
    row = conn.execute(_PRINCIPAL, {"pid": principal_id}).first()
    if row is None:
        return None
    roles = {str(s): str(r) for s, r in conn.execute(_ROLES, {"pid": principal_id})}
    return row, roles


def every(conn: Connection, principal_id: str | None = None) -> list[WithRoles]:
    """Every principal (or the one with that id), oldest first, each with its roles."""
    where: ColumnElement[bool] | None = None
    if principal_id is not None:
        where = principals.c.id == principal_id
    query = select(principals).order_by(principals.c.created_at, principals.c.id)
    assigned = select(
        role_assignments.c.principal_id, role_assignments.c.subscription, role_assignments.c.role
    ).select_from(role_assignments.join(principals))
    if where is not None:
        query, assigned = query.where(where), assigned.where(where)
    rows = conn.execute(query).all()
    roles: dict[str, dict[str, str]] = {str(row.id): {} for row in rows}
    for pid, subscription, role in conn.execute(assigned):
        roles.setdefault(str(pid), {})[str(subscription)] = str(role)
    return [(row, roles[str(row.id)]) for row in rows]
