"""Garbage collection: mark-and-sweep of packs with a grace period, and repacking.

Mark: every pack an entry of any snapshot (visible or hidden) names is live, and so is every pack
an in-flight operation is writing (pinned). Sweep: a live pack nothing names is marked ``dead``; a
dead or abandoned ``pending`` pack older than the grace period is deleted (object first, then its
row, so a crash between the two only repeats the delete). Repack: a pack whose live bytes fall
below ``repack_below`` of its size has its live frames copied, verified, into a new pack, the maps
repointed, and the old pack marked dead — all in one transaction after the new pack is durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import Row

from snapferry.codec import frame_id
from snapferry.engine import blockmap
from snapferry.engine.core import Engine
from snapferry.engine.objects import Location
from snapferry.engine.refs import References, scan
from snapferry.errors import IntegrityError, StoreError
from snapferry.meta import catalog

DEFAULT_GRACE = 3600.0


@dataclass
class GcReport:
    """What one collection did."""

    packs: int = 0
    live_bytes: int = 0
    marked_dead: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    repacked: int = 0
    repacked_bytes: int = 0
    skipped_corrupt: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def collect(
    engine: Engine, grace_seconds: float = DEFAULT_GRACE, repack_below: float = 0.5
) -> GcReport:
    """Run one collection. Safe to interrupt at any point and to repeat.

    The engine lock is held only for metadata — to take the references and mark what nothing
    names ``dead`` (or revive what something names again), and to commit a repack — while
    frames are copied and dead packs deleted without it, so a serving region goes on. That is
    safe because nothing ever comes to name a dead pack: commits name new (pinned) packs or
    packs already named, and a copy reusing a stored frame checks, under the lock, that its
    pack is still live."""
    with engine.maintenance_lock:
        return _collect(engine, grace_seconds, repack_below)


def _collect(engine: Engine, grace_seconds: float, repack_below: float) -> GcReport:
    report = GcReport()
    with engine.lock:
        # metadata that points at packs only commits under engine.lock, so the references
        # cannot change while we hold it; new pending packs can appear, pinned (see Pins)
        refs = scan(engine.db)
        live = refs.live_bytes()
        packs, pinned = _packs_and_pins(engine)
        now = engine.clock()
        sparse = [
            p.id
            for p in packs
            if p.state == "live"
            and p.id in live
            and p.id not in pinned
            and p.created_at + grace_seconds <= now
            and live[p.id] < repack_below * p.size_bytes
        ]
    if sparse:
        _repack(engine, refs, set(sparse), report)
    with engine.lock:
        live = scan(engine.db).live_bytes()
        expired = _mark(engine, live, grace_seconds, report)
    _delete(engine, expired, report)
    report.live_bytes = sum(live.values())
    engine.objects.forget()
    return report


def _packs_and_pins(engine: Engine) -> tuple[Sequence[Row[Any]], frozenset[int]]:
    with engine.pins.registering:
        with engine.db.connect() as conn:
            packs = catalog.all_packs(conn)
        return packs, engine.pins.snapshot()


def _mark(engine: Engine, live: dict[int, int], grace: float, report: GcReport) -> list[Row[Any]]:
    """Mark live packs nothing names dead and revive dead ones something names (under the
    engine lock); the packs whose time is up: dead past the grace period, or ``pending`` (a
    writer that never committed) older than it."""
    packs, pinned = _packs_and_pins(engine)
    now = engine.clock()
    with engine.db.begin() as conn:
        newly_dead = [p.id for p in packs if p.state == "live" and p.id not in live]
        newly_dead = [p for p in newly_dead if p not in pinned]
        catalog.mark_packs_dead(conn, newly_dead, now)
        revived = {p.id: int(p.size_bytes) for p in packs if p.state == "dead" and p.id in live}
        catalog.mark_packs_live(conn, revived)
    report.packs = len(packs)
    report.marked_dead = len(newly_dead)
    dead_at = {p.id: p.dead_at for p in packs}
    dead_at.update(dict.fromkeys(newly_dead, now))
    expired = []
    for p in packs:
        if p.id in live or p.id in pinned or p.id in revived:
            continue
        if (p.state == "pending" and p.created_at + grace <= now) or (
            p.state != "pending" and (dead_at[p.id] or now) + grace <= now
        ):
            expired.append(p)
    return expired


def _delete(engine: Engine, expired: list[Row[Any]], report: GcReport) -> None:
    """Delete expired packs, object first, then row (a crash between the two only repeats the
    delete); no lock needed: nothing names them, and nothing can come to."""
    for p in expired:
        engine.store.delete(p.key)
        with engine.db.begin() as conn:
            catalog.delete_pack_row(conn, p.id)
        report.deleted += 1
        report.deleted_bytes += int(p.size_bytes)


def _repack(engine: Engine, refs: References, sparse: set[int], report: GcReport) -> None:
    rows = refs.rows[np.isin(refs.rows["pack"], list(sparse))]
    uniq = np.unique(rows[["pack", "offset", "length"]])
    moved: dict[tuple[int, int], tuple[int, int]] = {}
    bad_packs: set[int] = set()
    with engine.writer() as writer:
        for pack, offset, length in uniq.tolist():
            loc = Location(b"", int(pack), int(offset), int(length))
            try:
                frame = engine.objects.frame(loc)
                engine.codec.decode(frame, frame_id(frame))
            except (IntegrityError, StoreError):  # corrupt, or in a zone now unavailable
                bad_packs.add(int(pack))
                continue
            (new,) = writer.write_frames([frame])
            moved[(int(pack), int(offset))] = (new.pack, new.offset)
        sizes = writer.finish()
        with engine.lock:  # the references as they are now, not as they were when we started
            now = scan(engine.db)
            named = now.rows[np.isin(now.rows["pack"], list(sparse - bad_packs))]
            # a frame of a sparse pack named now that we did not copy (a copy came to reuse it
            # meanwhile) keeps its pack live: only packs whose every named frame moved go dead
            unmoved = {
                int(pack)
                for pack, offset in zip(
                    named["pack"].tolist(), named["offset"].tolist(), strict=True
                )
                if (int(pack), int(offset)) not in moved
            }
            done = sparse - bad_packs - unmoved
            report.skipped_corrupt = len(bad_packs)
            owners = sorted({int(o) for o in named["owner"]})
            with engine.db.begin() as conn:
                for owner in owners:
                    snapshot_id, segment = now.owners[owner]
                    blob = dict(catalog.segments(conn, snapshot_id))[segment]
                    entries = blockmap.decode_segment(blob)
                    for i in np.flatnonzero(np.isin(entries["pack"], list(sparse))).tolist():
                        where = (int(entries["pack"][i]), int(entries["offset"][i]))
                        if where in moved:
                            entries["pack"][i], entries["offset"][i] = moved[where]
                    blobs = {segment: blockmap.encode_segment(entries)}
                    catalog.put_segments(conn, snapshot_id, blobs)
                    engine.maps.invalidate(snapshot_id)
                writer.commit(conn)
                catalog.mark_packs_dead(conn, done, engine.clock())
    report.repacked = len(done)
    report.repacked_bytes = sum(sizes.values())
