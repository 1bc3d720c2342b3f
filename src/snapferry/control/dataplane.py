"""The page-blob data plane of one region: what a SAS URL reads, lists, diffs and writes.

No HTTP here (``api.blob`` speaks the wire). ``open`` turns a SAS into a ``Blob`` — the disk or
snapshot it names, checked against the resource's current grant — or raises a 403
(``control.access``) and touches nothing. A blob's content is the engine's: reads stream a chunk
at a time, page lists are metadata only, diffs are the engine's exact diffs between two snapshots
of one family, and writes are durable when they return.

Thread-safe: callers run these in worker threads.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from snapferry.control import blob_errors as err
from snapferry.control.access import BLOB_NAME, SasRefused, Signer
from snapferry.engine import Engine
from snapferry.errors import InvalidInput, NotFound, NotReady, SnapferryError
from snapferry.meta import records
from snapferry.meta.records import Record
from snapferry.settings import SECTOR

MAX_PAGE_WRITE = 4 * 1024 * 1024
"""The most one Put Page (update) may carry, as in Azure."""
CLEAR_STEP = 64 * 1024 * 1024
"""A clear is written as zeros in steps of this many bytes (one durable write each)."""

Extents = list[tuple[int, int]]
Piece = bytes | memoryview
"""A piece of a read: possibly a read-only view of cached data (send it, don't keep it)."""
DIFFS_OF_SNAPSHOTS = (
    "page-range diffs are between snapshots: snapshot the disk and diff the snapshot"
)


@dataclass(frozen=True)
class Blob:
    """A disk or snapshot reached through a valid SAS: ``perms`` is what the SAS grants."""

    record: Record
    engine_id: str
    is_snapshot: bool
    size: int
    perms: str


@dataclass(frozen=True)
class Properties:
    """What HEAD and every data response report of a blob."""

    size: int
    etag: str
    last_modified: float
    created: float


@dataclass(frozen=True)
class PageWrite:
    """One Put Page: ``data`` at ``offset`` (update), or zeros over ``length`` bytes there
    (``data`` None: clear), through the SAS ``query``, if ``conditions`` (raising to refuse)
    accept the disk's properties just before it."""

    query: dict[str, str]
    offset: int
    length: int
    data: memoryview | None
    conditions: Callable[[Properties], None]


Outcome = Properties | Exception
"""What became of a ``PageWrite``: the disk's properties just after it, or why it did not land."""


@dataclass(frozen=True)
class PageList:
    """Inclusive ``(start, end)`` byte ranges of 512-byte pages, each list ascending: pages that
    hold data (or, in a diff, changed), and pages a diff reports as cleared."""

    pages: list[tuple[int, int]]
    clears: list[tuple[int, int]]


def _ranges(extents: Extents, lo: int, hi: int) -> list[tuple[int, int]]:
    """``(offset, length)`` extents clipped to ``[lo, hi)`` as inclusive ``(start, end)``."""
    out = []
    for offset, length in extents:
        start, end = max(offset, lo), min(offset + length, hi)
        if end > start:
            out.append((start, end - 1))
    return out


class DataPlane:
    """Serves one region's SAS URLs over its engine (see module docstring)."""

    def __init__(
        self, region: str, engine: Engine, signer: Signer, clock: Callable[[], float] = time.time
    ) -> None:
        self.region = region
        self.engine = engine
        self.signer = signer
        self.clock = clock
        self._boot = secrets.token_hex(4)
        self._started = clock()
        self._writes: dict[str, tuple[int, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._writes_lock = threading.Lock()

    # --- authorization ---------------------------------------------------------------------
    def open(self, engine_id: str, query: dict[str, str], needed: str) -> Blob:
        """The blob a SAS names, if the SAS is valid, live and grants ``needed`` ('r' or 'w');
        else SasRefused (403). An unknown id is refused the same way as a bad signature."""
        with self.engine.db.connect() as conn:
            rec = records.by_engine_id(conn, engine_id) if len(engine_id) <= 64 else None
        if rec is None or rec.engine_id is None:
            raise SasRefused("the shared access signature does not match this resource")
        access = rec.body.get("access") or {}
        self.signer.check(rec.unique_id, query, needed, access.get("grant"), now=self.clock())
        is_snapshot = rec.rtype == "snapshots"
        try:
            if is_snapshot:
                size = self.engine.get_snapshot(rec.engine_id).size_bytes
            else:
                size = self.engine.get_disk(rec.engine_id).size_bytes
        except NotFound:
            raise err.BlobNotFound(f"{rec.id} no longer exists") from None
        return Blob(rec, rec.engine_id, is_snapshot, size, query.get("sp", ""))

    def previous(self, target: Blob, url: str) -> Blob:
        """The older snapshot an ``x-ms-previous-snapshot-url`` names (its own read SAS URL),
        checked like any SAS."""
        try:
            parts = urlsplit(url)
        except ValueError:
            raise err.PreviousSnapshotNotFound("x-ms-previous-snapshot-url is not a URL") from None
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if len(segments) < 3 or segments[-1] != BLOB_NAME or segments[-3] != self.region:
            raise err.PreviousSnapshotNotFound(
                "x-ms-previous-snapshot-url must be the SAS URL of a snapshot in region "
                f"{self.region}"
            )
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            prev = self.open(segments[-2], query, "r")
        except SasRefused as exc:
            raise err.PreviousSnapshotNotFound(
                f"the previous snapshot's SAS is not valid: {exc.message}"
            ) from None
        return self._check_previous(target, prev)

    def previous_by_unique_id(self, target: Blob, unique_id: str) -> Blob:
        """The older snapshot ``prevsnapshot`` names by its ARM ``uniqueId``; it must be of the
        target's family (the target's SAS covers the family's change history)."""
        if not target.is_snapshot:
            raise err.PreviousSnapshotOperationNotSupported(DIFFS_OF_SNAPSHOTS)
        with self.engine.db.connect() as conn:
            found = records.by_unique_id(conn, unique_id.strip().lower()[:64])
        family = target.record.props.get("incrementalSnapshotFamilyId")
        if (
            found is None
            or found.rtype != "snapshots"
            or found.subscription != target.record.subscription
            or found.engine_id is None
            or family is None
            or found.props.get("incrementalSnapshotFamilyId") != family
        ):
            raise err.PreviousSnapshotNotFound(
                f"prevsnapshot {unique_id[:64]!r} is not the uniqueId of a snapshot of this "
                "snapshot's family"
            )
        size = self.engine.get_snapshot(found.engine_id).size_bytes
        return self._check_previous(target, Blob(found, found.engine_id, True, size, "r"))

    def _check_previous(self, target: Blob, prev: Blob) -> Blob:
        if not target.is_snapshot:
            raise err.PreviousSnapshotOperationNotSupported(DIFFS_OF_SNAPSHOTS)
        if not prev.is_snapshot:
            raise err.PreviousSnapshotOperationNotSupported(
                "the previous snapshot URL names a disk, not a snapshot"
            )
        info = self.engine.get_snapshot(prev.engine_id)
        mine = self.engine.get_snapshot(target.engine_id)
        if info.family_id != mine.family_id:
            raise err.PreviousSnapshotOperationNotSupported(
                "the previous snapshot is not of the same disk as this snapshot"
            )
        if info.seq > mine.seq:
            raise err.PreviousSnapshotCannotBeNewer(
                "the previous snapshot must be older than this snapshot"
            )
        return prev

    # --- reads -----------------------------------------------------------------------------
    def properties(self, blob: Blob, *, ahead: int = 0) -> Properties:
        """Size, ETag and times. A snapshot's ETag and Last-Modified never change; a disk's ETag
        changes with every write through this data plane and with every restart of the region,
        and its Last-Modified is its last such write's time, or the region's start. ``ahead``:
        what they will be once that many more writes have landed (a group's later writes are
        judged by what its earlier ones leave)."""
        rec = blob.record
        if blob.is_snapshot:
            seed, when = rec.unique_id, rec.created_at
        else:
            # writes before this process started are not counted: its start time bounds them
            with self._writes_lock:
                count, when = self._writes.get(
                    blob.engine_id, (0, max(rec.created_at, self._started))
                )
            if ahead:
                count, when = count + ahead, self.clock()
            seed = f"{rec.unique_id}/{self._boot}/{count}"
        tag = hashlib.sha256(seed.encode()).hexdigest()
        return Properties(blob.size, f'"0x{tag[:16].upper()}"', when, rec.created_at)

    def read(self, blob: Blob, start: int, end: int) -> Iterator[Piece]:
        """The bytes ``[start, end)`` (any alignment), a chunk at a time, never all at once."""
        lo, hi = start - start % SECTOR, -(-end // SECTOR) * SECTOR
        if blob.is_snapshot:
            pieces = self.engine.iter_read_snapshot(blob.engine_id, lo, hi - lo)
        else:
            pieces = self.engine.iter_read(blob.engine_id, lo, hi - lo)
        return _trim(self._translate(pieces), start - lo, end - start)

    def _translate(self, pieces: Iterator[Piece]) -> Iterator[Piece]:
        try:
            yield from pieces
        except NotReady as exc:
            raise err.OperationNotAllowed(exc.message) from None
        except NotFound as exc:
            raise err.BlobNotFound(exc.message) from None

    def page_ranges(self, blob: Blob, lo: int, hi: int, previous: Blob | None) -> PageList:
        """Pages in ``[lo, hi)`` that hold data — or, against ``previous``, that changed since it
        (``pages``: non-zero now; ``clears``: zero now)."""
        try:
            if previous is not None:
                diff = self.engine.diff(previous.engine_id, blob.engine_id)
                return PageList(_ranges(diff.changed, lo, hi), _ranges(diff.cleared, lo, hi))
            if blob.is_snapshot:
                return PageList(_ranges(self.engine.allocated(blob.engine_id), lo, hi), [])
            return PageList(_ranges(self.engine.disk_allocated(blob.engine_id), lo, hi), [])
        except NotReady as exc:
            raise err.OperationNotAllowed(exc.message) from None
        except NotFound as exc:
            raise err.BlobNotFound(exc.message) from None

    # --- writes ----------------------------------------------------------------------------
    def check_page_range(self, blob: Blob, offset: int, length: int) -> None:
        """InvalidPageRange unless ``[offset, offset+length)`` is whole 512-byte pages inside a
        disk the SAS may write."""
        if blob.is_snapshot:  # a snapshot SAS never grants w; this is a second guard
            raise SasRefused("snapshots are read-only")
        if offset % SECTOR or length % SECTOR or length <= 0:
            raise err.InvalidPageRange(
                f"page range at {offset} of {length} bytes is not aligned to {SECTOR} bytes"
            )
        if offset + length > blob.size:
            raise err.InvalidPageRange(
                f"page range [{offset}, {offset + length}) runs past the end of the disk "
                f"({blob.size} bytes)"
            )

    def put_pages(self, engine_id: str, writes: Sequence[PageWrite]) -> list[Outcome]:
        """Put Pages into one disk, in order, as if one after another, sharing one durability
        barrier: each outcome (its ``Properties``, or the error that refused or failed it) is
        durable when this returns. A write's data is ``data`` (update) or zeros (``data`` None:
        a clear). Each write's SAS is checked now, under the disk's write lock (a grant ended
        while the body arrived or the write waited refuses it), and its ``conditions`` (raising
        to refuse) see the blob's properties as the writes before it left them. Every Put Page
        changes the disk's ETag. Updates that follow one another go to the engine together; an
        engine failure fails them all (none of them landed) and nothing else."""
        outcomes: list[Outcome | None] = [None] * len(writes)
        with self._write_lock(engine_id):
            grants: dict[tuple[tuple[str, str], ...], Blob | SnapferryError] = {}
            group: list[tuple[int, PageWrite]] = []
            blob: Blob | None = None
            for i, write in enumerate(writes):
                if write.data is None:
                    self._land(blob, group, outcomes)  # a clear reads what came before it
                    group = []
                try:
                    blob = self._grant(engine_id, write.query, grants)
                    self.check_page_range(blob, write.offset, write.length)
                    write.conditions(self.properties(blob, ahead=len(group)))
                except Exception as exc:  # refuses this write alone: earlier ones may have landed
                    outcomes[i] = exc
                    continue
                group.append((i, write))
                if write.data is None:
                    self._land(blob, group, outcomes)
                    group = []
            self._land(blob, group, outcomes)
        return [o for o in outcomes if o is not None]

    def _grant(
        self,
        engine_id: str,
        query: dict[str, str],
        seen: dict[tuple[tuple[str, str], ...], Blob | SnapferryError],
    ) -> Blob:
        """``open(engine_id, query, "w")``, once per distinct SAS of a group of writes."""
        key = tuple(sorted(query.items()))
        found = seen.get(key)
        if found is None:
            try:
                found = self.open(engine_id, query, "w")
            except SnapferryError as exc:
                found = exc
            seen[key] = found
        if isinstance(found, SnapferryError):
            raise found
        return found

    def _land(
        self, blob: Blob | None, group: list[tuple[int, PageWrite]], outcomes: list[Outcome | None]
    ) -> None:
        """Write a group of accepted writes (updates, or one clear) durably and record each
        one's outcome: its properties once it landed, or the error none of them got past."""
        if not group or blob is None:
            return
        try:
            if group[0][1].data is None:
                self._clear(blob, group[0][1].offset, group[0][1].length)
            else:
                self._engine_write(
                    [(w.offset, w.data) for _, w in group if w.data is not None], blob
                )
        except Exception as exc:
            for i, _ in group:
                outcomes[i] = exc
            return
        for i, _ in group:
            with self._writes_lock:
                count, _ = self._writes.get(blob.engine_id, (0, 0.0))
                self._writes[blob.engine_id] = (count + 1, self.clock())
            outcomes[i] = self.properties(blob)

    def _clear(self, blob: Blob, offset: int, length: int) -> None:
        """Zeros over the pages of the range that may hold data; the rest already reads as
        zeros, so a clear costs what it clears, not the range's size. One durable write per
        ``CLEAR_STEP`` bytes of zeros, however fragmented the pages are."""
        try:
            held = self.engine.disk_allocated(blob.engine_id)
        except NotFound as exc:
            raise err.BlobNotFound(exc.message) from None
        clipped = _ranges(held, offset, offset + length)
        if not clipped:
            return
        zeros = memoryview(bytes(min(CLEAR_STEP, max(end + 1 - at for at, end in clipped))))
        batch: list[tuple[int, bytes | bytearray | memoryview]] = []
        batched = 0
        for at, end in clipped:
            for step in range(at, end + 1, CLEAR_STEP):
                n = min(CLEAR_STEP, end + 1 - step)
                if batched + n > CLEAR_STEP:
                    self._engine_write(batch, blob)
                    batch, batched = [], 0
                batch.append((step, zeros[:n]))
                batched += n
        self._engine_write(batch, blob)

    def _write_lock(self, engine_id: str) -> threading.Lock:
        with self._writes_lock:
            lock = self._locks.get(engine_id)
            if lock is None:
                lock = self._locks[engine_id] = threading.Lock()
            return lock

    def _engine_write(
        self, writes: list[tuple[int, bytes | bytearray | memoryview]], blob: Blob
    ) -> None:
        try:
            self.engine.write_many(blob.engine_id, writes)
        except InvalidInput as exc:
            raise err.InvalidPageRange(exc.message) from None
        except NotFound as exc:
            raise err.BlobNotFound(exc.message) from None


def _trim(pieces: Iterator[Piece], skip: int, length: int) -> Iterator[Piece]:
    """pieces with the first ``skip`` bytes dropped, cut after ``length`` bytes (no copies)."""
    for piece in pieces:
        if skip >= len(piece):
            skip -= len(piece)
            continue
        if skip or len(piece) - skip > length:
            piece = memoryview(piece)[skip : skip + length]
            skip = 0
        yield piece
        length -= len(piece)
        if length <= 0:
            return
