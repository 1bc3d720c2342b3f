"""Principals, their roles, and the errors a caller's identity can cause."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from snapferry.errors import InvalidInput, SnapferryError

OWNER = "Owner"
CONTRIBUTOR = "Contributor"
READER = "Reader"
ROLES = (OWNER, CONTRIBUTOR, READER)
"""The built-in Azure roles snapferry knows, in their canonical spelling."""

_WRITERS = frozenset({OWNER, CONTRIBUTOR})
_SUBSCRIPTION = re.compile(r"[A-Za-z0-9-]{1,64}")
MAX_NAME_LENGTH = 200


class AuthenticationFailed(SnapferryError):
    """The bearer token is missing, malformed, forged, expired, or names no enabled principal.

    The message is fixed text that is safe to return to the caller: it never contains the token.
    The API answers it with HTTP 401.
    """

    code = "InvalidAuthenticationToken"


class AuthorizationFailed(SnapferryError):
    """The principal is known but holds no role that allows the action. The API answers 403."""

    code = "AuthorizationFailed"


@dataclass(frozen=True)
class Principal:
    """Who a token speaks for, with their roles as read from the registry.

    ``roles`` maps lowercase subscription ids to a canonical role name (see ``ROLES``). ``admin``
    allows managing principals only; it grants no access to any subscription.
    """

    id: str
    tenant: str
    name: str
    enabled: bool
    admin: bool
    roles: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", MappingProxyType(dict(self.roles)))

    def role_for(self, subscription: str) -> str | None:
        """The principal's role on subscription (compared case-insensitively), or None."""
        return self.roles.get(subscription.lower())

    def can_read(self, subscription: str) -> bool:
        """True if any role is held on subscription."""
        return self.role_for(subscription) is not None

    def can_write(self, subscription: str) -> bool:
        """True if the principal is Owner or Contributor of subscription."""
        return self.role_for(subscription) in _WRITERS


def canonical_role(role: str) -> str:
    """role in its canonical spelling ("reader" → "Reader"), or InvalidInput if unknown."""
    if isinstance(role, str):
        for known in ROLES:
            if role.lower() == known.lower():
                return known
    raise InvalidInput(f"unknown role {role!r}: expected one of {', '.join(ROLES)}", role=role)


def canonical_subscription(subscription: str) -> str:
    """subscription lowercased, or InvalidInput unless it is 1-64 characters of A-Z a-z 0-9 -."""
    if not isinstance(subscription, str) or not _SUBSCRIPTION.fullmatch(subscription):
        raise InvalidInput(
            f"invalid subscription id {subscription!r}: expected 1-64 letters, digits or '-'",
            subscription=subscription,
        )
    return subscription.lower()


def canonical_roles(roles: Mapping[str, str]) -> dict[str, str]:
    """roles with canonical keys and values; InvalidInput if any is bad or two keys collide."""
    result: dict[str, str] = {}
    for subscription, role in roles.items():
        key = canonical_subscription(subscription)
        if key in result:
            raise InvalidInput(
                f"subscription {subscription!r} is given twice", subscription=subscription
            )
        result[key] = canonical_role(role)
    return result


def validate_name(name: str) -> str:
    """name if it is 1-200 printable characters with no surrounding space, else InvalidInput."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= MAX_NAME_LENGTH
        or not name.isprintable()
        or name != name.strip()
    ):
        raise InvalidInput(
            f"invalid principal name {name!r}: expected 1-{MAX_NAME_LENGTH} printable "
            "characters without leading or trailing space"
        )
    return name
