"""A region's zones: which stores hold its packs, and bringing redundancy back after a zone fault.

A region with zones keeps every pack in each zone's store (``ZonedStore``: written to all,
acknowledged by two, read from any). Its zones are recorded in the region's database the first
time the region opens with them (``zones`` table), so a pass run at rest opens every zone — a
lost one included — without the cloud's configuration. A region that had one store and gains
zones moves that store into its first zone; the zone repair then fills the others.

``repair`` is the engine's half of zone redundancy (a store cannot know what should exist): for
every zone, it copies in the live packs the zone is missing, from a zone that holds them, and
removes what the zone keeps that no pack names any longer (a copy a zone kept while it was down
during a deletion, or one a read's mend put back after GC took the pack). A pack kept in one zone
alone (a locally redundant snapshot's) is never copied; the repair reports it lost if its zone
no longer holds it. Reads and scrub also restore what they find: a read copies a pack into the
zones that lack it, a scrub replaces a zone's damaged copy from a whole one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine as Database

from snapferry.errors import InvalidInput, ObjectNotFound, StoreError
from snapferry.meta import catalog
from snapferry.store.base import ChunkStore
from snapferry.store.local import LocalStore
from snapferry.store.zoned import ZonedStore

if TYPE_CHECKING:
    from snapferry.engine.core import Engine

log = logging.getLogger(__name__)


def zone_root(data_dir: Path, zone: str) -> Path:
    """Where zone ``zone`` of the region at data_dir keeps its store."""
    return data_dir / "zones" / zone


def open_stores(
    data_dir: Path, db: Database, zones: Sequence[str] | None, now: float
) -> ChunkStore:
    """The region's store: a ``ZonedStore`` over ``zones/<zone>`` for each of its zones, or
    the single ``store`` of a region without zones. ``zones`` (from the configuration) are
    recorded; None: those recorded. Zones can be added, never dropped (InvalidInput)."""
    with db.connect() as conn:
        known = catalog.zone_names(conn)
    wanted = list(known if zones is None else zones)
    dropped = [z for z in known if z not in wanted]
    if dropped:
        raise InvalidInput(
            f"the region at {data_dir} keeps data in zone(s) {', '.join(dropped)}; a region's "
            "zones can be added to, not removed",
            path=str(data_dir),
        )
    if not wanted:
        return LocalStore(data_dir / "store")
    added = [z for z in wanted if z not in known]
    if added:  # recorded first: a crash before the move below is finished at the next open
        with db.begin() as conn:
            catalog.add_zones(conn, added, now)
    ordered = known + added
    single, first = data_dir / "store", zone_root(data_dir, ordered[0])
    if single.is_dir() and not first.exists():  # a region that had one store gains zones
        first.parent.mkdir(parents=True, exist_ok=True)
        os.rename(single, first)
        log.info("the region's store is now zone %s; repair copies it to the others", ordered[0])
    return ZonedStore({z: _zone_store(zone_root(data_dir, z), z in known) for z in ordered})


def _zone_store(root: Path, known: bool) -> ChunkStore:
    """A zone's store. A known zone whose directory is gone is lost, not new: its store is
    made without creating anything (writes to it fail, reads find nothing) until ``repair``
    revives and refills it."""
    if known and not root.exists():
        log.warning("zone store %s is missing: the zone is lost until repaired", root)
        return LocalStore.lost(root)
    return LocalStore(root)


@dataclass
class ZoneRepairReport:
    """What a zone repair did, per zone: packs copied in, bytes copied, stray objects removed,
    and packs it could not copy (no zone holds them, or the zone refused)."""

    zones: list[str] = field(default_factory=list)
    packs: int = 0
    copied: dict[str, int] = field(default_factory=dict)
    bytes_copied: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    """Packs kept in one zone alone (locally redundant) that their zone no longer holds: no
    other zone can give them back. Their snapshots read as unavailable until the zone's data
    returns."""

    @property
    def clean(self) -> bool:
        return not self.failed and not self.lost

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "copied_packs": sum(self.copied.values()),
            "removed_objects": sum(self.removed.values()),
            "failed_packs": sum(self.failed.values()),
            "lost_packs": sum(self.lost.values()),
            "clean": self.clean,
        }


def repair(engine: Engine, progress: Callable[[int, int], None] | None = None) -> ZoneRepairReport:
    """Bring every zone of the region back to holding exactly its live packs (see the module
    docstring). Safe while the region serves: it takes no engine lock (a pack made meanwhile is
    not yet listed, so it is neither copied nor removed; a pack deleted meanwhile is skipped).
    ``progress(done, total)`` hears each pack looked at. A region without zones: nothing to do."""
    store = engine.store
    report = ZoneRepairReport()
    if not isinstance(store, ZonedStore):
        return report
    report.zones = list(store.zones)
    # keys first, rows second: an object listed was written after its row was inserted, so a
    # listed object that no row names is one nothing will name again
    listed: dict[str, set[str]] = {}
    for zone, zone_store in store.zones.items():
        try:
            revive = getattr(zone_store, "revive", None)
            if callable(revive):
                revive()
            listed[zone] = set(zone_store.keys("packs/"))
        except StoreError as exc:
            log.warning("zone repair: zone %s cannot be listed: %s", zone, exc)
            report.failed[zone] = report.failed.get(zone, 0) + 1
    with engine.db.connect() as conn:
        rows = catalog.all_packs(conn)
    placement = {str(r.key): r.zone for r in rows}
    live = [str(r.key) for r in rows if r.state == "live" and r.zone is None]
    for zone, keys in listed.items():
        # nothing names it, or it is kept in another zone alone (a locally redundant pack)
        strays = {k for k in keys if placement.get(k, zone) not in (None, zone)}
        strays |= keys - placement.keys()
        for key in sorted(strays):
            try:
                store.zones[zone].delete(key)
                report.removed[zone] = report.removed.get(zone, 0) + 1
            except StoreError as exc:
                log.warning("zone repair: zone %s keeps stray %s: %s", zone, key, exc)
    for r in rows:
        kept = listed.get(r.zone) if r.state == "live" and r.zone is not None else None
        if kept is not None and str(r.key) not in kept:
            report.lost[r.zone] = report.lost.get(r.zone, 0) + 1
    for done, key in enumerate(live, 1):
        report.packs += 1
        missing = [z for z, keys in listed.items() if key not in keys]
        holders = [z for z, keys in listed.items() if key in keys]
        if missing:
            _copy_in(store, key, holders, missing, report)
        if progress is not None:
            progress(done, len(live))
    return report


def _copy_in(
    store: ZonedStore, key: str, holders: list[str], missing: list[str], report: ZoneRepairReport
) -> None:
    for holder in holders:
        try:
            data = store.zones[holder].get(key)
            break
        except ObjectNotFound:
            return  # deleted since it was listed: nothing to bring back
        except StoreError:
            continue
    else:
        for zone in missing:
            report.failed[zone] = report.failed.get(zone, 0) + 1
        log.warning("zone repair: no zone can give %s to zone(s) %s", key, ", ".join(missing))
        return
    for zone in missing:
        try:
            store.zones[zone].put_if_absent(key, data)
            report.copied[zone] = report.copied.get(zone, 0) + 1
            report.bytes_copied += len(data)
        except StoreError as exc:
            report.failed[zone] = report.failed.get(zone, 0) + 1
            log.warning("zone repair: zone %s did not take %s: %s", zone, key, exc)
