"""ARM resource ids and names: parsing, validation, canonical keys."""

from __future__ import annotations

import re
from dataclasses import dataclass

from snapferry.control.errors import InvalidResourceName

RESOURCE_TYPES = {"disks": "Microsoft.Compute/disks", "snapshots": "Microsoft.Compute/snapshots"}
"""Path segment → ARM ``type`` of each resource type snapferry serves."""

_SUBSCRIPTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_GROUP = re.compile(r"[-\w._()]{1,90}", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
_ID = re.compile(
    r"/?subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/"
    r"microsoft\.compute/(?P<type>disks|snapshots)/(?P<name>[^/]+)/?",
    re.IGNORECASE,
)


def check_subscription(value: str) -> str:
    """value if it is a valid subscription id (1-64 letters, digits, dashes)."""
    if not _SUBSCRIPTION.fullmatch(value):
        raise InvalidResourceName(
            f"subscription id {value[:80]!r} is invalid: use 1-64 letters, digits and dashes",
            target="subscriptionId",
        )
    return value


def check_group(value: str) -> str:
    """value if it is a valid resource group name (1-90 of letters, digits, ``-_.()``, not
    ending in a period)."""
    if not _GROUP.fullmatch(value) or value.endswith("."):
        raise InvalidResourceName(
            f"resource group name {value[:100]!r} is invalid: use 1-90 letters, digits, "
            "underscores, hyphens, periods and parentheses, not ending in a period",
            target="resourceGroupName",
        )
    return value


def check_name(value: str, rtype: str) -> str:
    """value if it is a valid disk or snapshot name (1-80 of letters, digits, ``_.-``, starting
    with a letter, digit or underscore, not ending in a period)."""
    if not _NAME.fullmatch(value) or value.endswith("."):
        kind = rtype.rstrip("s")
        raise InvalidResourceName(
            f"{kind} name {value[:100]!r} is invalid: use 1-80 letters, digits, underscores, "
            "periods and hyphens, starting with a letter, digit or underscore and not ending "
            "in a period",
            target=f"{kind}Name",
        )
    return value


@dataclass(frozen=True)
class ResourceId:
    """One disk or snapshot's ARM id; ``key`` is the canonical (lowercase) form."""

    subscription: str
    resource_group: str
    rtype: str
    name: str

    @classmethod
    def of(cls, subscription: str, resource_group: str, rtype: str, name: str) -> ResourceId:
        """A validated id; raises InvalidResourceName."""
        if rtype not in RESOURCE_TYPES:
            raise InvalidResourceName(f"unknown resource type {rtype!r}")
        return cls(
            check_subscription(subscription),
            check_group(resource_group),
            rtype,
            check_name(name, rtype),
        )

    @classmethod
    def parse(cls, text: str) -> ResourceId:
        """Parse an id with or without its leading ``/``, any case."""
        match = _ID.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise InvalidResourceName(
                f"{str(text)[:200]!r} is not a disk or snapshot resource id "
                "(/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.Compute/"
                "disks|snapshots/{name})",
                target="sourceResourceId",
            )
        return cls.of(match["sub"], match["rg"], match["type"].lower(), match["name"])

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/{self.rtype}/{self.name}"
        )

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def group_key(self) -> str:
        """The lowercase ``subscription/group`` a resource group is indexed by."""
        return f"{self.subscription}/{self.resource_group}".lower()


def group_key(subscription: str, group: str) -> str:
    """The lowercase key of a resource group."""
    return f"{subscription}/{group}".lower()


def normalize_location(value: str) -> str:
    """``"West US"`` → ``"westus"``: ARM compares locations without case or spaces."""
    return value.replace(" ", "").lower()
