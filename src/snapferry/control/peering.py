"""The source side of copies: what a region tells its peers about its snapshots, and the data
it lets them read (served over HTTP by ``snapferry.api.peer``).

A peer first *resolves* a resource id to a ``SourceInfo``, then asks for a *system grant*: a
read-only SAS signed with this region's system key (apart from the key of users' SAS), valid
14 days, naming the grant ``system`` — so ``endGetAccess`` and new user grants never touch it.
Plans and pages need that grant. A snapshot deleted here is ``SourceNotFound`` to every call.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import blake3
import zstandard

from snapferry.codec import ID_SIZE
from snapferry.control.access import Signer
from snapferry.control.errors import InvalidParameter
from snapferry.control.ids import ResourceId
from snapferry.engine import Engine
from snapferry.engine.delta import MAX_FRAMES, ChunkDelta, CopyPlan
from snapferry.errors import NotFound, SnapferryError, SourceNotFound
from snapferry.meta import jobs, records
from snapferry.meta.records import Record
from snapferry.replication.jobs import SUCCEEDED
from snapferry.replication.peers import GRANT_SECONDS, Grant, PageFrame, SourceInfo

SYSTEM_GRANT = "system"
SYSTEM_KEY_FILE = "system-sas-key"
MAX_CANDIDATES = 1000
MAX_PIECE_PAGES = 8192
MAX_PIECE_BYTES = 64 * 1024 * 1024
"""The most an encoded piece may decode to (its chunk list and bitmaps)."""
_ENGINE_ID = re.compile(r"[0-9a-f]{32}")


class PeerService:
    """Answers peers about this region's snapshots. Thread-safe."""

    def __init__(
        self,
        region: str,
        engine: Engine,
        system: Signer,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.region = region
        self.engine = engine
        self.system = system
        self.clock = clock

    def resolve(self, resource_id: str) -> SourceInfo | None:
        """The snapshot with that id here, or None."""
        try:
            rid = ResourceId.parse(resource_id)
        except SnapferryError:
            return None
        with self.engine.db.connect() as conn:
            rec = records.get(conn, rid.key)
            job = jobs.job_of_target(conn, rid.key) if rec is not None else None
        if rec is None or rec.rtype != "snapshots" or rec.engine_id is None:
            return None
        try:
            snap = self.engine.get_snapshot(rec.engine_id)
        except NotFound:
            return None
        available = (
            rec.state == "succeeded"
            and snap.state == "ready"
            and (job is None or job.state == SUCCEEDED)
        )
        return SourceInfo(
            resource_id=rec.id,
            region=self.region,
            subscription=rec.subscription,
            unique_id=rec.unique_id,
            engine_id=rec.engine_id,
            incremental=snap.incremental,
            family=snap.family_id if snap.incremental else None,
            size_bytes=snap.size_bytes,
            # a copy stands for its original: copies of copies keep the family's order
            created_at=rec.created_at if job is None else float(job.source_created_at),
            available=available,
        )

    def grant(self, unique_id: str) -> Grant:
        """A system grant to read the snapshot with that uniqueId."""
        if not isinstance(unique_id, str) or len(unique_id) > 64:
            raise InvalidParameter("uniqueId must be a snapshot's uniqueId")
        with self.engine.db.connect() as conn:
            rec = records.by_unique_id(conn, unique_id)
        if rec is None or rec.rtype != "snapshots" or rec.engine_id is None:
            raise SourceNotFound(f"no snapshot with uniqueId {unique_id[:64]!r} in {self.region}")
        expires = self.clock() + GRANT_SECONDS
        return Grant(self.system.sign(rec.unique_id, "r", expires, SYSTEM_GRANT), expires)

    def _granted(self, engine_id: str, query: dict[str, str]) -> Record:
        if not _ENGINE_ID.fullmatch(engine_id):
            raise SourceNotFound(f"no snapshot {engine_id[:40]!r} in {self.region}")
        with self.engine.db.connect() as conn:
            rec = records.by_engine_id(conn, engine_id)
        if rec is None or rec.rtype != "snapshots":
            raise SourceNotFound(f"the source snapshot no longer exists in {self.region}")
        self.system.check(rec.unique_id, query, "r", SYSTEM_GRANT, now=self.clock())
        return rec

    def plan(
        self, engine_id: str, query: dict[str, str], candidates: object, full: object
    ) -> tuple[str | None, CopyPlan]:
        """The anchor among candidates and the plan from it (``Engine.plan_copy``)."""
        if (
            not isinstance(candidates, list)
            or len(candidates) > MAX_CANDIDATES
            or not all(isinstance(c, str) and _ENGINE_ID.fullmatch(c) for c in candidates)
            or not isinstance(full, bool)
        ):
            raise InvalidParameter("candidates must be a list of snapshot ids; full a boolean")
        self._granted(engine_id, query)
        try:
            return self.engine.plan_copy(engine_id, candidates, full=full)
        except NotFound:
            raise SourceNotFound(f"the source snapshot no longer exists in {self.region}") from None

    def frames(self, engine_id: str, query: dict[str, str], body: bytes) -> list[bytes]:
        """The stored frames whose ids (32 bytes each) body lists, as stored."""
        if not body or len(body) % ID_SIZE or len(body) // ID_SIZE > MAX_FRAMES:
            raise InvalidParameter(f"the body must list 1 to {MAX_FRAMES} ids of {ID_SIZE} bytes")
        self._granted(engine_id, query)
        oids = [body[i : i + ID_SIZE] for i in range(0, len(body), ID_SIZE)]
        try:
            return self.engine.read_frames(engine_id, oids)
        except NotFound:
            raise SourceNotFound(f"the source snapshot no longer exists in {self.region}") from None

    def pages(self, engine_id: str, query: dict[str, str], body: bytes) -> PageFrame:
        """The changed pages of the piece encoded in body, compressed, with their BLAKE3 id."""
        try:
            piece = ChunkDelta.decode(body, max_bytes=MAX_PIECE_BYTES)
        except SnapferryError:
            raise InvalidParameter("the body is not an encoded chunk delta") from None
        if piece.changed_pages > MAX_PIECE_PAGES:
            raise InvalidParameter(f"ask for at most {MAX_PIECE_PAGES} pages at a time")
        self._granted(engine_id, query)
        try:
            pages = self.engine.read_pages(engine_id, piece.chunks, piece.changed)
        except NotFound:
            raise SourceNotFound(f"the source snapshot no longer exists in {self.region}") from None
        data = pages.reshape(-1).data
        packed = zstandard.ZstdCompressor(level=1).compress(data)
        compressed = len(packed) < len(data)
        return PageFrame(
            content_id=blake3.blake3(data, max_threads=1).digest(),
            length=len(data),
            compressed=compressed,
            payload=packed if compressed else bytes(data),
        )
