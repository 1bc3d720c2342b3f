"""Resource groups, kept by the front door as ARM keeps them (they belong to no region)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row
from sqlalchemy.exc import IntegrityError

from snapferry.control.errors import BadRequest, GroupLocationNotAvailable, ResourceGroupNotFound
from snapferry.control.ids import check_group, group_key, normalize_location
from snapferry.meta import groups as rows


@dataclass(frozen=True)
class Group:
    subscription: str
    name: str
    location: str
    tags: dict[str, str]

    def to_arm(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"/subscriptions/{self.subscription}/resourceGroups/{self.name}",
            "name": self.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.location,
            "properties": {"provisioningState": "Succeeded"},
        }
        if self.tags:
            body["tags"] = self.tags
        return body

    @classmethod
    def of(cls, row: Row[Any]) -> Group:
        return cls(row.subscription, row.name, row.location, rows.tags_of(row))


def _tags(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict) and len(raw) <= 50:
        tags = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
        if len(tags) == len(raw) and all(len(k) <= 512 and len(v) <= 256 for k, v in tags.items()):
            return tags
    raise BadRequest("tags must be an object of at most 50 string values", target="tags")


class Groups:
    """Resource groups in the front door's database."""

    def __init__(self, db: Engine, regions: list[str]) -> None:
        self.db = db
        self.regions = regions

    def get(self, subscription: str, name: str) -> Group:
        check_group(name)
        with self.db.connect() as conn:
            row = rows.get(conn, group_key(subscription, name))
        if row is None:
            raise ResourceGroupNotFound(f"resource group {name!r} could not be found", target=name)
        return Group.of(row)

    def exists(self, subscription: str, name: str) -> bool:
        try:
            self.get(subscription, name)
        except ResourceGroupNotFound:
            return False
        return True

    def put(self, subscription: str, name: str, body: object) -> tuple[Group, bool]:
        """Create or update; True if created. The location of an existing group is fixed.
        Two concurrent creations: one creates, the other updates."""
        try:
            return self._put(subscription, name, body)
        except IntegrityError:
            return self._put(subscription, name, body)

    def _put(self, subscription: str, name: str, body: object) -> tuple[Group, bool]:
        check_group(name)
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        location = body.get("location")
        if not isinstance(location, str) or not location or len(location) > 64:
            raise BadRequest("location is required", target="location")
        location = normalize_location(location)
        if location not in self.regions:
            raise GroupLocationNotAvailable(
                f"location {location[:64]!r} is not a region of this cloud; use one of "
                f"{', '.join(self.regions)}",
                target="location",
            )
        tags = _tags(body.get("tags"))
        key = group_key(subscription, name)
        with self.db.begin() as conn:
            row = rows.get(conn, key)
            if row is None:
                rows.add(
                    conn,
                    key,
                    subscription=subscription,
                    name=name,
                    location=location,
                    tags=tags,
                    created_at=time.time(),
                )
                return Group(subscription, name, location, tags), True
            if row.location != location:
                raise BadRequest(
                    f"resource group {row.name!r} already exists in location {row.location}",
                    target="location",
                )
            rows.set_tags(conn, key, tags)
            return Group(row.subscription, row.name, row.location, tags), False

    def patch(self, subscription: str, name: str, body: object) -> Group:
        group = self.get(subscription, name)
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        tags = _tags(body.get("tags")) if "tags" in body else group.tags
        with self.db.begin() as conn:
            rows.set_tags(conn, group_key(subscription, name), tags)
        return Group(group.subscription, group.name, group.location, tags)

    def delete(self, subscription: str, name: str) -> None:
        with self.db.begin() as conn:
            rows.drop(conn, group_key(subscription, name))

    def list(self, subscription: str) -> list[Group]:
        with self.db.connect() as conn:
            return [Group.of(row) for row in rows.of_subscription(conn, subscription)]
