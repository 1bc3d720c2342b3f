"""The registry: principals and role assignments in the metadata database, plus token issuing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy import Connection, Engine

from snapferry.errors import Conflict, InvalidInput, NotFound
from snapferry.identity.keys import (
    canonical_tenant,
    load_or_create_signing_key,
    load_or_create_tenant,
)
from snapferry.identity.principals import (
    OWNER,
    AuthenticationFailed,
    Principal,
    canonical_role,
    canonical_roles,
    canonical_subscription,
    validate_name,
)
from snapferry.identity.tokens import TokenSigner
from snapferry.meta import principals as rows
from snapferry.meta.principals import WithRoles

MAX_LIFETIME_SECONDS = 366 * 24 * 3600


class Registry:
    """Who may call snapferry, and the tokens that prove it.

    Principals and their role assignments live in ``db`` (tables ``principals`` and
    ``role_assignments``). The signing key and tenant id live in ``key_dir`` (see
    ``snapferry.identity.keys``), so tokens stay valid across restarts and across every process
    that shares the database and key directory.

    A token only proves who the caller is. Whether the principal is enabled, and which roles it
    holds, are read from the database on every ``authenticate``: disabling a principal or changing
    a role takes effect for tokens already issued.

    Subscription ids are stored and compared lowercase. Every method either completes or raises
    having written nothing.
    """

    def __init__(
        self,
        db: Engine,
        key_dir: Path,
        *,
        issuer: str,
        tenant: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open the registry, creating the signing key (and tenant file, unless tenant is given)
        in key_dir if missing. issuer becomes the ``iss`` of every token and must match on
        verification, so keep it stable (for example the front door's base URL)."""
        if not issuer:
            raise InvalidInput("the token issuer must not be empty")
        self._db = db
        self._clock = clock
        self.tenant = canonical_tenant(tenant) if tenant else load_or_create_tenant(key_dir)
        self._signer = TokenSigner(
            load_or_create_signing_key(key_dir), issuer=issuer, tenant=self.tenant, clock=clock
        )

    def __repr__(self) -> str:
        return f"Registry(tenant={self.tenant!r}, issuer={self.issuer!r})"

    @property
    def issuer(self) -> str:
        """The ``iss`` claim of this registry's tokens."""
        return self._signer.issuer

    def create_principal(
        self, name: str, roles: Mapping[str, str], *, admin: bool = False
    ) -> Principal:
        """Add an enabled principal with a new UUID id and the given roles (subscription id →
        "Owner", "Contributor" or "Reader", any case). InvalidInput, writing nothing, if the name,
        a subscription id or a role is invalid."""
        name = validate_name(name)
        canonical = canonical_roles(roles)
        principal_id = str(uuid.uuid4())
        with self._db.begin() as conn:
            rows.add(
                conn,
                principal_id,
                tenant=self.tenant,
                name=name,
                admin=bool(admin),
                created_at=self._clock(),
                roles=canonical,
            )
            return _load_one(conn, principal_id)

    def get(self, principal_id: str) -> Principal:
        """The principal with its current roles; NotFound if there is none."""
        with self._db.connect() as conn:
            return _load_one(conn, principal_id)

    def list(self) -> list[Principal]:
        """Every principal, oldest first."""
        with self._db.connect() as conn:
            return [_principal(found) for found in rows.every(conn)]

    def enable(self, principal_id: str) -> Principal:
        """Let the principal's tokens authenticate again. Safe to repeat; NotFound if unknown."""
        return self._set_enabled(principal_id, True)

    def disable(self, principal_id: str) -> Principal:
        """Refuse the principal's tokens from now on, including ones already issued. Safe to
        repeat; NotFound if unknown."""
        return self._set_enabled(principal_id, False)

    def set_role(self, principal_id: str, subscription: str, role: str | None) -> Principal:
        """Give the principal role on subscription, replacing any role it had there, or remove
        its role there if role is None. Safe to repeat. InvalidInput for a bad subscription or
        role, NotFound for an unknown principal."""
        key = canonical_subscription(subscription)
        canonical = canonical_role(role) if role is not None else None
        with self._db.begin() as conn:
            _load_one(conn, principal_id)
            rows.set_role(conn, principal_id, key, canonical)
            return _load_one(conn, principal_id)

    def ensure_admin(self, name: str = "admin", *, subscription: str) -> Principal:
        """The oldest admin principal (preferring enabled ones) if any exists, unchanged;
        otherwise a new enabled admin called name that is Owner of subscription.

        Safe to repeat. Concurrent first calls from two processes may both create one.
        """
        with self._db.connect() as conn:
            existing = rows.oldest_admin(conn)
            if existing is not None:
                return _load_one(conn, existing)
        return self.create_principal(name, {subscription: OWNER}, admin=True)

    def mint(self, principal_id: str, lifetime_seconds: int) -> tuple[str, float]:
        """A signed access token for the principal and the Unix time it expires at.

        NotFound if the principal is unknown, Conflict if it is disabled, InvalidInput unless
        lifetime_seconds is a whole number from 1 to ``MAX_LIFETIME_SECONDS``. The token is a
        secret: hand it to the caller and never log it.
        """
        if (
            isinstance(lifetime_seconds, bool)
            or not isinstance(lifetime_seconds, int)
            or not 0 < lifetime_seconds <= MAX_LIFETIME_SECONDS
        ):
            raise InvalidInput(
                f"token lifetime must be 1 to {MAX_LIFETIME_SECONDS} seconds, "
                f"not {lifetime_seconds!r}"
            )
        principal = self.get(principal_id)
        if not principal.enabled:
            raise Conflict(f"principal {principal_id} is disabled", principal=principal_id)
        return self._signer.issue(
            object_id=principal.id, name=principal.name, lifetime_seconds=lifetime_seconds
        )

    def authenticate(self, token: str) -> Principal:
        """The enabled principal token speaks for, with its roles as of now.

        AuthenticationFailed (a message safe to show, never containing the token) if the token is
        malformed, not signed by this registry's key, not for ``AUDIENCE``, this issuer and
        tenant, outside its lifetime, or if its principal no longer exists or is disabled.
        """
        claims = self._signer.verify(token)
        with self._db.connect() as conn:
            found = rows.one(conn, claims.object_id)
        if found is None:
            raise AuthenticationFailed("The principal of the access token does not exist.")
        principal = _principal(found)
        if principal.tenant != claims.tenant:
            raise AuthenticationFailed("The principal of the access token is in another tenant.")
        if not principal.enabled:
            raise AuthenticationFailed("The principal of the access token is disabled.")
        return principal

    def _set_enabled(self, principal_id: str, enabled: bool) -> Principal:
        with self._db.begin() as conn:
            rows.set_enabled(conn, principal_id, enabled)
            return _load_one(conn, principal_id)


def _load_one(conn: Connection, principal_id: str) -> Principal:
    found = rows.every(conn, principal_id)
    if not found:
        raise NotFound(f"no principal {principal_id!r}", principal=principal_id)
    return _principal(found[0])


def _principal(found: WithRoles) -> Principal:
    row, roles = found
    return Principal(
        id=str(row.id),
        tenant=str(row.tenant),
        name=str(row.name),
        enabled=bool(row.enabled),
        admin=bool(row.admin),
        roles=roles,
    )
