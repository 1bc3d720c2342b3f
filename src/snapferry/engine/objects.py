"""Writing version bundles into packs, and reading them back verified.

Durability order (DESIGN invariant 2): a pack's row is inserted as ``pending`` in its own
transaction, then the pack object is written (one fsync), and only then may the caller commit the
metadata that points into it and mark it ``live`` — in that same transaction. A crash in between
leaves a pending pack: garbage that GC removes after the grace period.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, Engine

from snapferry.buffers import run_of
from snapferry.codec import Codec, Encoded, frame_id
from snapferry.engine import bundles
from snapferry.errors import (
    IntegrityError,
    ObjectNotFound,
    SnapferryError,
    StoreError,
    ZoneUnavailable,
)
from snapferry.ids import new_id
from snapferry.meta import catalog
from snapferry.settings import PACK_TARGET_BYTES
from snapferry.store.base import ChunkStore
from snapferry.store.zoned import ZonedStore, placed, replicas
from snapferry.throttled import Throttled

log = logging.getLogger(__name__)
_zone_trouble = Throttled(log)
"""A zone lost or damaged shows on every read of every pack: one line a minute says so."""


def pack_key(pack_uuid: str) -> str:
    """The store key of a pack: ``packs/<2 hex>/<32 hex>``."""
    return f"packs/{pack_uuid[:2]}/{pack_uuid}"


@dataclass(frozen=True)
class Location:
    """Where a bundle's frame lies, and the id it must decode to."""

    oid: bytes
    pack: int
    offset: int
    length: int


class Pins:
    """Pack ids that in-flight operations are writing; GC never touches them.

    ``registering`` is held while a pack's pending row is inserted and pinned, and while GC lists
    packs and reads the pins, so GC never sees a pending row whose pin is not there yet.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[int, int] = {}
        self.registering = threading.Lock()

    def add(self, pack_id: int) -> None:
        with self._lock:
            self._ids[pack_id] = self._ids.get(pack_id, 0) + 1

    def discard(self, pack_ids: Sequence[int]) -> None:
        with self._lock:
            for p in pack_ids:
                left = self._ids.get(p, 0) - 1
                if left > 0:
                    self._ids[p] = left
                else:
                    self._ids.pop(p, None)

    def snapshot(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._ids)


class Buffers:
    """Pack-sized buffers kept for reuse: faulting in fresh multi-MiB buffers for every pack
    costs more than filling them (and sometimes far more, when the kernel must find memory)."""

    SIZE = PACK_TARGET_BYTES + PACK_TARGET_BYTES // 8

    def __init__(self, keep: int = 2) -> None:
        self._lock = threading.Lock()
        self._free: list[np.ndarray] = []
        self._keep = keep

    def take(self) -> np.ndarray:
        with self._lock:
            if self._free:
                return self._free.pop()
        return np.empty(self.SIZE, dtype=np.uint8)

    def give(self, buf: np.ndarray) -> None:
        with self._lock:
            if len(buf) == self.SIZE and len(self._free) < self._keep:
                self._free.append(buf)


@dataclass
class PackWriter:
    """Appends encoded bundles to packs of about ``PACK_TARGET_BYTES``. Not thread-safe.

    Use as a context manager: leaving it flushes nothing and unpins its packs, so call
    ``finish()`` first and ``commit(conn)`` in the transaction of the metadata that points at
    the frames, inside the block. Leaving it without ``commit`` (the operation failed: no room
    for its next pack, say) deletes the packs it wrote at once, so a failed operation leaves
    no data behind; a pack it cannot delete now is left to ``gc``.
    """

    db: Engine
    store: ChunkStore
    codec: Codec
    pins: Pins
    pool: ThreadPoolExecutor
    buffers: Buffers
    clock: Callable[[], float] = time.time
    zone: str | None = None
    """The zone its packs go to alone (an LRS snapshot's), or None: every zone."""
    sizes: dict[int, int] = field(default_factory=dict)
    frames: list[Location] = field(default_factory=list)
    _buf: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint8))
    _pack: int = -1
    _key: str = ""
    _fill: int = 0
    _committed: bool = False

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        written = list(self.sizes) + ([self._pack] if self._pack >= 0 else [])
        try:
            if written and not self._committed:
                self._reclaim(written)
        finally:
            self.pins.discard(written)
            if len(self._buf):
                self.buffers.give(self._buf)
                self._buf = np.empty(0, dtype=np.uint8)

    def _reclaim(self, pack_ids: list[int]) -> None:
        """Delete packs nothing will ever name (object first, then row: as ``gc`` does)."""
        try:
            with self.db.connect() as conn:
                keys = catalog.pack_keys(conn, pack_ids)
            for pack_id, key in keys.items():
                with contextlib.suppress(ObjectNotFound):  # never stored: it failed first
                    self.store.delete(key)
                with self.db.begin() as conn:
                    catalog.delete_pack_row(conn, pack_id)
        except Exception as exc:  # the storage may be what failed: gc sweeps them later
            log.info("packs %s of a failed operation are left to gc: %s", pack_ids, exc)

    def write(self, contents: Sequence[Sequence[bytes | memoryview]]) -> list[Location]:
        """Encode contents, each given as parts (in parallel), and append them; their locations
        in order."""
        return self.submit(contents)()

    def submit(
        self, contents: Sequence[Sequence[bytes | memoryview]]
    ) -> Callable[[], list[Location]]:
        """Start encoding contents on the pool; the returned call waits for them and appends
        them. Calls must be made in submission order; the contents must stay unchanged until."""
        futures = [self.pool.submit(self.codec.encode_parts, c) for c in contents]

        def append() -> list[Location]:
            encoded: list[Encoded] = [f.result() for f in futures]
            return [self._append(enc.object_id, enc.parts) for enc in encoded]

        return append

    def write_frames(self, frames: Sequence[bytes | memoryview]) -> list[Location]:
        """Append already-encoded frames as they are (repacking moves stored bytes unchanged;
        a copy stores what its source sent). Frames that lie end to end in one buffer, as a
        peer's answer does, and would start a pack are stored as that pack straight from the
        buffer, without a copy."""
        run = run_of(frames) if self._fill == 0 else None
        if run is None or len(run) > Buffers.SIZE:
            return [self._append(frame_id(frame), [frame]) for frame in frames]
        if self._pack < 0:
            self._open()
        locations, at = [], 0
        for frame in frames:
            locations.append(Location(frame_id(frame), self._pack, at, len(frame)))
            at += len(frame)
        self._flush(run)
        self.frames.extend(locations)
        return locations

    def _append(self, oid: bytes, parts: Sequence[bytes | memoryview]) -> Location:
        if self._pack < 0:
            self._open()
        start = self._fill
        need = start + sum(len(p) for p in parts)
        if need > len(self._buf):
            grown = self.buffers.take() if need <= Buffers.SIZE else np.empty(need, np.uint8)
            grown[:start] = self._buf[:start]
            if len(self._buf) == Buffers.SIZE:
                self.buffers.give(self._buf)
            self._buf = grown
        for part in parts:
            end = self._fill + len(part)
            self._buf[self._fill : end] = np.frombuffer(part, dtype=np.uint8)
            self._fill = end
        loc = Location(oid, self._pack, start, self._fill - start)
        self.frames.append(loc)
        if self._fill >= PACK_TARGET_BYTES:
            self._flush()
        return loc

    def finish(self) -> dict[int, int]:
        """Flush the open pack; the sizes of every pack written (id → bytes)."""
        if self._pack >= 0:
            self._flush()
        return self.sizes

    def commit(self, conn: Connection) -> None:
        """Make the packs written live and record their frames in the version index (call
        after ``finish``, in the transaction that commits what points at them)."""
        self._committed = True
        catalog.mark_packs_live(conn, self.sizes)
        catalog.put_versions(conn, [(f.oid, f.pack, f.offset, f.length) for f in self.frames])

    def _open(self) -> None:
        self._key = pack_key(new_id())
        with self.pins.registering:
            with self.db.begin() as conn:
                self._pack = catalog.insert_pack(conn, self._key, self.clock(), self.zone)
            self.pins.add(self._pack)

    def _flush(self, data: memoryview | None = None) -> None:
        """Store the open pack: the buffer's bytes, or data holding them already."""
        if data is None:
            data = memoryview(self._buf.data)[: self._fill]
        placed(self.store, self.zone).put_if_absent(self._key, data)
        self.sizes[self._pack] = len(data)
        self._pack, self._fill = -1, 0


class ObjectReader:
    """Reads bundles by location, verifying each; keeps recently parsed bundles in memory.

    Over a zone-redundant store, a frame that is missing, unreadable or corrupt in one zone is
    read from the next; zones that lack the pack get it copied in by ``later`` (a background
    thread: safe to skip, the zone repair redoes it); bad copies are scrub's to mend."""

    def __init__(
        self,
        db: Engine,
        store: ChunkStore,
        codec: Codec,
        cache_bytes: int,
        later: Callable[[Callable[[], None]], None] = lambda task: task(),
    ) -> None:
        self._db, self._store, self._codec = db, store, codec
        self._later = later
        self._places: dict[int, tuple[str, str | None]] = {}
        self._generation = 0
        """Bumped by ``forget``: a pack's place read before it is not cached after it."""
        self._filling: set[str] = set()
        """Packs being copied into zones that lack them (one copy at a time per pack)."""
        self._cache: OrderedDict[bytes, bundles.Bundle] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0
        self._lock = threading.Lock()

    def place_of(self, pack: int) -> tuple[str, str | None]:
        """A pack's store key and zone (None: every zone)."""
        place = self._places.get(pack)
        if place is None:
            generation = self._generation
            with self._db.connect() as conn:
                found = catalog.pack_places(conn, [pack])
            with self._lock:
                if generation == self._generation:  # not read before a forget (a hardening)
                    self._places.update(found)
            place = found.get(pack)
            if place is None:
                raise IntegrityError(f"pack {pack} is not in the catalog")
        return place

    def frame(self, loc: Location) -> bytes:
        """The raw frame at loc, as stored: unverified where the store keeps one copy (the
        receiver checks it), verified where it keeps several (so the copy handed on is one
        that verifies)."""
        if isinstance(self._store, ZonedStore):
            return self._verified(loc)[0]
        try:
            frame = self._store.get(self.place_of(loc.pack)[0], loc.offset, loc.length)
        except ObjectNotFound:
            raise IntegrityError(f"pack {loc.pack} is missing from the store") from None
        if len(frame) != loc.length:
            raise IntegrityError(f"pack {loc.pack} is truncated")
        return frame

    def header(self, loc: Location) -> bytes:
        """The first ``loc.length`` bytes of the frame at loc, unverified (a planning hint)."""
        key, zone = self.place_of(loc.pack)
        for _, got in replicas(self._store, key, loc.offset, loc.length, zone):
            if not isinstance(got, StoreError):
                return got
        return self.frame(loc)  # no copy answers: say why as a verified read does

    def bundle(self, loc: Location) -> bundles.Bundle:
        """The verified, parsed bundle at loc. Raises IntegrityError if missing or corrupt."""
        with self._lock:
            hit = self._cache.get(loc.oid)
            if hit is not None:
                self._cache.move_to_end(loc.oid)
                return hit
        parsed = bundles.parse(self._verified(loc)[1])
        with self._lock:
            self._cache[loc.oid] = parsed
            self._cached += parsed.nbytes
            while self._cached > self._cache_bytes and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes
        return parsed

    def _verified(self, loc: Location) -> tuple[bytes, bytes | memoryview]:
        """The frame at loc and its decoded content, from the first copy that verifies (against
        ``loc.oid``, or the frame's own id when that is empty). Zones that lack the pack have
        it copied in, in the background; a zone holding a bad copy is left to scrub, which
        mends from a copy every named frame of which verified (this read checked one frame)."""
        key, placement = self.place_of(loc.pack)
        what = f"object {loc.oid.hex()[:16]}"
        missing: list[str] = []
        failure: Exception | None = None
        for zone, got in replicas(self._store, key, loc.offset, loc.length, placement):
            if placement is not None and isinstance(got, StoreError):
                raise self._zone_failure(placement, got, loc, what)
            if isinstance(got, ObjectNotFound):
                missing.append(zone)
                failure = failure or IntegrityError(f"pack {loc.pack} is missing from the store")
            elif isinstance(got, StoreError):
                failure = got if isinstance(failure, IntegrityError | None) else failure
            elif len(got) != loc.length:
                failure = failure or IntegrityError(f"pack {loc.pack} is truncated")
            else:
                try:
                    content = self._codec.decode(got, loc.oid or frame_id(got), what=what)
                except IntegrityError as exc:
                    failure = failure or exc
                else:
                    if missing and isinstance(self._store, ZonedStore):
                        self._copy_into_missing(self._store, key, zone, missing)
                    return got, content
        assert failure is not None
        raise failure

    def _zone_failure(self, zone: str, got: StoreError, loc: Location, what: str) -> SnapferryError:
        """What a read of a pack kept in ``zone`` alone raises when that zone does not give
        it: ZoneUnavailable while the zone is lost or unreachable (it may come back), else
        IntegrityError (the zone is there and the pack is not: lost)."""
        store = self._store
        present = isinstance(store, ZonedStore) and store.present(zone)
        if isinstance(got, ObjectNotFound) and present:
            return IntegrityError(f"pack {loc.pack} is missing from zone {zone}")
        return ZoneUnavailable(
            f"{what} is kept in zone {zone} alone (locally redundant), which is unavailable: "
            f"{got.message}",
            zone=zone,
        )

    def _copy_into_missing(
        self, store: ZonedStore, key: str, good: str, missing: list[str]
    ) -> None:
        """Copy a pack into the zones that lack it, in the background, once at a time per
        pack; zones that are lost are left to the zone repair."""
        targets = [z for z in missing if store.present(z)]
        with self._lock:
            if not targets or key in self._filling:
                return
            self._filling.add(key)

        def fill() -> None:
            try:
                store.fill(key, good, targets)
            except StoreError as exc:
                _zone_trouble.warn(
                    "fill", "could not copy %s into zone(s) %s: %s", key, targets, exc
                )
            finally:
                with self._lock:
                    self._filling.discard(key)

        _zone_trouble.warn("missing copy", "%s: zone(s) %s lack it; copying it in", key, targets)
        self._later(fill)

    def forget(self) -> None:
        """Drop cached bundles and pack keys (after repacks or deletions)."""
        with self._lock:
            self._cache.clear()
            self._cached = 0
        self.forget_places()

    def forget_places(self) -> None:
        """Drop cached pack places (after packs were spread to every zone), keeping bundles."""
        with self._lock:
            self._places.clear()
            self._generation += 1


def location_of(entry: np.void) -> Location:
    """The Location a block-map entry points at."""
    return Location(
        bytes(entry["oid"]), int(entry["pack"]), int(entry["offset"]), int(entry["length"])
    )
