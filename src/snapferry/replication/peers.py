"""What a copy needs from other regions: the ``PeerClient`` protocol and what it carries.
Implementations: ``http.HttpPeerClient`` between processes, ``local.LocalPeers`` in one process
(tests), and the ``faults.FaultyPeer`` wrapper.

Every method is retry-safe (reads only, or a grant that may be asked for again). Errors are
``PeerUnavailable`` (retryable: down, slow, refused for a transient reason, unusable body) or
``SourceNotFound`` (the source is gone from its region). Data comes back as it travelled
(``PageFrame``): the caller verifies it before storing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from snapferry.engine.delta import ChunkDelta, CopyPlan

GRANT_SECONDS = 14 * 86400
"""How long a system grant lives."""


@dataclass(frozen=True)
class SourceInfo:
    """A snapshot as its region describes it to a peer. ``family`` is the engine family of an
    incremental snapshot (None for a full one); ``available`` says whether it can be copied now
    (sealed, and fully copied if it is itself a copy)."""

    resource_id: str
    region: str
    subscription: str
    unique_id: str
    engine_id: str
    incremental: bool
    family: str | None
    size_bytes: int
    created_at: float
    available: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "resourceId": self.resource_id,
            "region": self.region,
            "subscription": self.subscription,
            "uniqueId": self.unique_id,
            "engineId": self.engine_id,
            "incremental": self.incremental,
            "family": self.family,
            "sizeBytes": self.size_bytes,
            "createdAt": self.created_at,
            "available": self.available,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SourceInfo:
        return cls(
            resource_id=str(doc["resourceId"]),
            region=str(doc["region"]),
            subscription=str(doc["subscription"]),
            unique_id=str(doc["uniqueId"]),
            engine_id=str(doc["engineId"]),
            incremental=bool(doc["incremental"]),
            family=None if doc.get("family") is None else str(doc["family"]),
            size_bytes=int(doc["sizeBytes"]),
            created_at=float(doc["createdAt"]),
            available=bool(doc["available"]),
        )


@dataclass(frozen=True)
class Grant:
    """A system access signature (a SAS query string) and when it expires."""

    sas: str
    expires_at: float


@dataclass(frozen=True)
class PageFrame:
    """Pages as they travelled: ``payload`` (zstd-compressed when ``compressed``) must
    decompress to ``length`` bytes whose BLAKE3-256 is ``content_id``."""

    content_id: bytes
    length: int
    compressed: bool
    payload: bytes | memoryview


class PeerClient(Protocol):
    """The regions a copy may read from, by name."""

    @property
    def regions(self) -> list[str]:
        """Every region this client reaches (the caller's own included)."""
        ...

    async def health(self, region: str) -> None:
        """Return once region answers (within a few seconds); PeerUnavailable if it does not."""
        ...

    async def resolve(self, region: str, resource_id: str) -> SourceInfo | None:
        """The snapshot with that resource id in region, or None if region does not hold it."""
        ...

    async def grant(self, region: str, unique_id: str) -> Grant:
        """A system grant to read the snapshot with that uniqueId."""
        ...

    async def plan(
        self, region: str, engine_id: str, sas: str, candidates: list[str], full: bool
    ) -> tuple[str | None, CopyPlan]:
        """The anchor (one of candidates, source engine ids, or None) and the plan from it to
        the snapshot (``Engine.plan_copy`` on the source)."""
        ...

    async def pages(self, region: str, engine_id: str, sas: str, piece: ChunkDelta) -> PageFrame:
        """The content of the piece's changed pages, in order."""
        ...

    async def frames(
        self, region: str, engine_id: str, sas: str, oids: list[bytes]
    ) -> Sequence[bytes | memoryview]:
        """The stored frames with these ids, as stored (the caller verifies each)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
