"""Routing ARM compute calls to regions: PUTs by the body's ``location``, everything else by
the resource index, whose misses ask every region (regions are the source of truth)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from sqlalchemy import Connection, Engine

from snapferry.api.frontdoor.links import RegionLinks, Reply
from snapferry.control.errors import (
    BadRequest,
    InvalidResourceLocation,
    LocationNotAvailable,
)
from snapferry.control.ids import normalize_location
from snapferry.faults import THROTTLED, brief
from snapferry.meta import routes

ITEM = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"(?P<type>disks|snapshots)/(?P<name>[^/]+)(?P<action>/beginGetAccess|/endGetAccess)?"
)
GROUP_LIST = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"(?P<type>disks|snapshots)"
)
SUB_LIST = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/(?P<type>disks|snapshots)"
)
OPERATION = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/"
    r"operations/(?P<op>[^/]+)"
)


class _Gate:
    """A resource group's gate: PUTs in it share it; its deletion holds it alone."""

    def __init__(self) -> None:
        self.cond = asyncio.Condition()
        self.users = 0
        self.closing = False


class Index:
    """Resource key → region, in the front door's database. A cache, never the truth: writing
    it is best effort, so a front door whose own storage is full or failing still answers with
    what the region did (a lookup that misses asks every region, which repairs the entry)."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        with self.db.connect() as conn:
            return routes.region_of(conn, key)

    def set(self, key: str, region: str) -> None:
        self._write(lambda conn: routes.put(conn, key, region))

    def drop(self, key: str) -> None:
        self._write(lambda conn: routes.drop(conn, key))

    def _write(self, change: Callable[[Connection], None]) -> None:
        try:
            with self.db.begin() as conn:
                change(conn)
        except Exception as exc:
            THROTTLED.warn(
                "index", "the resource index was not updated (%s); lookups repair it", brief(exc)
            )


class Router:
    """Finds the region of a resource and forwards calls to it."""

    def __init__(self, links: RegionLinks, index: Index) -> None:
        self.links = links
        self.index = index
        self._creating: dict[str, asyncio.Lock] = {}
        self._groups: dict[str, _Gate] = {}

    @contextlib.asynccontextmanager
    async def in_group(self, key: str) -> AsyncIterator[None]:
        """Held by every PUT into a resource group (many at once): a group's deletion waits for
        them, and they wait for it, so no resource lands in a group being deleted. Gates are
        kept (one small object per group touched): dropping one that a waiter holds would let a
        PUT and a deletion pass side by side."""
        gate = self._groups.setdefault(key, _Gate())
        async with gate.cond:
            await gate.cond.wait_for(lambda: not gate.closing)
            gate.users += 1
        try:
            yield
        finally:
            async with gate.cond:
                gate.users -= 1
                gate.cond.notify_all()

    @contextlib.asynccontextmanager
    async def group_closing(self, key: str) -> AsyncIterator[None]:
        """Held while a resource group is deleted: no PUT into it runs meanwhile."""
        gate = self._groups.setdefault(key, _Gate())
        async with gate.cond:
            await gate.cond.wait_for(lambda: not gate.closing and not gate.users)
            gate.closing = True
        try:
            yield
        finally:
            async with gate.cond:
                gate.closing = False
                gate.cond.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Serialize PUTs of one resource through this front door, so two PUTs naming
        different locations cannot both create it."""
        lock = self._creating.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock._waiters:
                self._creating.pop(key, None)

    async def locate(
        self,
        path: str,
        key: str,
        *,
        base: str,
        known: str | None,
        verify: bool = False,
    ) -> str | None:
        """The region holding the resource at path, or None. ``known`` is the index's entry for
        it, which the caller has read; ``verify`` re-checks it with its region (a PUT must not
        trust a stale entry).

        An index hit in a region that is down raises RegionUnavailable. On a miss, regions that
        are down are passed over: every resource made through the front door is indexed, so a
        miss can hide one there only if the front door crashed between a region's answer and
        its index write."""
        probe = quote(path) + "?api-version=2024-03-02"
        if known is not None and known in self.links.urls:
            if not verify:
                return known
            reply = await self.links.call(known, "GET", probe, base=base)
            if reply.status == 200:
                return known
        replies = await self.links.call_reachable("GET", probe, base=base)
        for region, reply in replies.items():
            if reply.status == 200:
                await asyncio.to_thread(self.index.set, key, region)
                return region
        if known is not None:
            await asyncio.to_thread(self.index.drop, key)
        return None

    def target_location(self, doc: Any) -> str | None:
        """The region a PUT body names, None if it names none (the region then explains), or
        LocationNotAvailable."""
        location = doc.get("location") if isinstance(doc, dict) else None
        if not isinstance(location, str):
            return None
        region = normalize_location(location)
        if region not in self.links.urls:
            raise LocationNotAvailable(
                f"location {location[:64]!r} is not available; snapferry regions: "
                f"{', '.join(self.links.names)}",
                target="location",
            )
        return region

    async def route_put(
        self, path: str, key: str, doc: Any, *, base: str, known: str | None
    ) -> str:
        """The region a PUT goes to; InvalidResourceLocation if the resource lives elsewhere."""
        wanted = self.target_location(doc)
        existing = await self.locate(path, key, base=base, verify=True, known=known)
        if existing is not None and wanted is not None and existing != wanted:
            raise InvalidResourceLocation(
                f"the resource already exists in location {existing}; a resource cannot move",
                target="location",
            )
        return wanted or existing or self.links.names[0]

    async def list_merged(
        self, path: str, query: dict[str, str], *, base: str, principal: str
    ) -> Reply | dict[str, Any]:
        """One page of a list across regions, in region order. The front door's
        ``$skiptoken`` names the region and that region's own token."""
        index, inner = _decode(query.get("$skiptoken"))
        version = query.get("api-version", "")
        values: list[Any] = []
        next_token: tuple[int, str | None] | None = None
        names = self.links.names
        while index < len(names):
            qs = f"?api-version={quote(version)}" + (
                f"&$skiptoken={quote(inner, safe='')}" if inner else ""
            )
            reply = await self.links.call(
                names[index], "GET", quote(path) + qs, base=base, principal=principal
            )
            if reply.status != 200:
                return reply
            data = reply.json()
            values.extend(data.get("value", []))
            link = data.get("nextLink")
            if link:
                next_token = (index, parse_qs(urlsplit(link).query)["$skiptoken"][0])
                break
            index, inner = index + 1, None
            if values and index < len(names):
                next_token = (index, None)
                break
        body: dict[str, Any] = {"value": values}
        if next_token is not None:
            body["nextLink"] = (
                f"{base}{quote(path)}?api-version={quote(version)}"
                f"&$skiptoken={_encode(*next_token)}"
            )
        return body


def _encode(index: int, inner: str | None) -> str:
    raw = json.dumps([index, inner]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str | None) -> tuple[int, str | None]:
    if not token:
        return 0, None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, RecursionError):
        decoded = None
    shaped = isinstance(decoded, list) and len(decoded) == 2
    index, inner = decoded if shaped else (-1, None)
    if type(index) is not int or index < 0 or not (inner is None or isinstance(inner, str)):
        raise BadRequest("$skiptoken is not one this server issued")
    return index, inner
