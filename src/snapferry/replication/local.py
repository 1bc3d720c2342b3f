"""``LocalPeers``: the ``PeerClient`` of regions in this process, without HTTP — for tests that
drive copies between in-process regions (wrap it in ``FaultyPeer`` to inject faults).

Each region is given as a ``PeerSource`` (``snapferry.control.peering.PeerService`` is one):
the same calls the peer API routes make, synchronous, run in threads here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import parse_qsl

from snapferry.engine.delta import ChunkDelta, CopyPlan
from snapferry.errors import PeerUnavailable
from snapferry.replication.peers import Grant, PageFrame, SourceInfo


class PeerSource(Protocol):
    """What one region answers its peers (see ``replication.http`` for the routes)."""

    def resolve(self, resource_id: str) -> SourceInfo | None: ...

    def grant(self, unique_id: str) -> Grant: ...

    def plan(
        self, engine_id: str, query: dict[str, str], candidates: object, full: object
    ) -> tuple[str | None, CopyPlan]: ...

    def pages(self, engine_id: str, query: dict[str, str], body: bytes) -> PageFrame: ...

    def frames(self, engine_id: str, query: dict[str, str], body: bytes) -> list[bytes]: ...


class LocalPeers:
    """Regions by name, called in threads. A region missing from ``sources`` is down."""

    def __init__(self, sources: dict[str, PeerSource]) -> None:
        self.sources = sources

    @property
    def regions(self) -> list[str]:
        return list(self.sources)

    def _source(self, region: str) -> PeerSource:
        found = self.sources.get(region)
        if found is None:
            raise PeerUnavailable(f"region {region} could not be reached", region=region)
        return found

    async def health(self, region: str) -> None:
        self._source(region)

    async def resolve(self, region: str, resource_id: str) -> SourceInfo | None:
        return await asyncio.to_thread(self._source(region).resolve, resource_id)

    async def grant(self, region: str, unique_id: str) -> Grant:
        return await asyncio.to_thread(self._source(region).grant, unique_id)

    async def plan(
        self, region: str, engine_id: str, sas: str, candidates: list[str], full: bool
    ) -> tuple[str | None, CopyPlan]:
        query = dict(parse_qsl(sas))
        return await asyncio.to_thread(
            self._source(region).plan, engine_id, query, candidates, full
        )

    async def pages(self, region: str, engine_id: str, sas: str, piece: ChunkDelta) -> PageFrame:
        query = dict(parse_qsl(sas))
        return await asyncio.to_thread(self._source(region).pages, engine_id, query, piece.encode())

    async def frames(
        self, region: str, engine_id: str, sas: str, oids: list[bytes]
    ) -> Sequence[bytes | memoryview]:
        query = dict(parse_qsl(sas))
        return await asyncio.to_thread(
            self._source(region).frames, engine_id, query, b"".join(oids)
        )

    async def close(self) -> None:
        pass
