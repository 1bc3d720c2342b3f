"""Scrub: re-read every stored object the maps name and report what is corrupt or missing.

In a region with zones every zone's copy is read: an object is a problem only when no zone
holds a copy that verifies; a zone whose copy is damaged while another's verifies is counted
(``zone_damage``) and its copy of the pack is replaced from a whole one (``mended``).

Each problem is reported against every visible snapshot and disk whose content depends on the bad
object, with the byte offset of the affected chunk — not just against the snapshot that wrote it,
since later snapshots read through patches beneath them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Row

from snapferry.engine import bundles
from snapferry.engine.bitmaps import popcount
from snapferry.engine.core import Engine
from snapferry.engine.refs import References, scan
from snapferry.errors import IntegrityError, ObjectNotFound, StoreError
from snapferry.meta import catalog
from snapferry.settings import CHUNK, PAGES_PER_CHUNK
from snapferry.store.zoned import ZonedStore, replicas

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One unreadable chunk of one snapshot or disk."""

    kind: str
    """``corrupt`` (bytes do not match their id), ``missing`` (object or pack gone) or
    ``dangling`` (the catalog does not know the pack)."""
    resource: str
    """``snapshot`` or ``disk``."""
    id: str
    offset: int
    detail: str


@dataclass
class ScrubReport:
    packs: int = 0
    objects: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    zone_damage: dict[str, int] = field(default_factory=dict)
    """Per zone, objects whose copy there was missing or corrupt while another zone's verified
    (no problem for a reader; those packs were mended)."""
    mended: int = 0
    """Packs whose damaged zone copies were replaced from a whole one."""

    @property
    def clean(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "clean": self.clean}


def scrub(engine: Engine, progress: Callable[[int, int], None] | None = None) -> ScrubReport:
    """Verify every referenced object. Reads each pack once, whole — without holding the engine
    lock while it reads, so a serving region's writes, snapshots and copies go on: the
    references are taken under the lock, the packs they name are pinned (GC leaves them alone)
    while they are read, and what looks bad is judged again against the references as they are
    at the end, so an object a fold or a repack stopped naming meanwhile is not reported."""
    report = ScrubReport()
    with engine.lock:
        refs = scan(engine.db)
        with engine.db.connect() as conn:
            packs = {p.id: p for p in catalog.all_packs(conn)}
        ordered = refs.rows[np.argsort(refs.rows["pack"], kind="stable")]
        ids, starts = np.unique(ordered["pack"], return_index=True)
        pinned = ids.tolist()
        for pack_id in pinned:
            engine.pins.add(pack_id)
    bad: dict[tuple[int, int], tuple[str, str]] = {}
    try:
        total = sum(int(packs[i].size_bytes) for i in pinned if i in packs)
        groups = np.split(ordered, starts[1:]) if len(ordered) else []
        for pack_id, rows in zip(pinned, groups, strict=True):
            _check_pack(engine, rows, packs.get(pack_id), pack_id, bad, report)
            if progress is not None:
                progress(report.bytes_read, total)
    finally:
        engine.pins.discard(pinned)
    if bad:
        with engine.lock:
            now = scan(engine.db)
            named = set(zip(now.rows["pack"].tolist(), now.rows["offset"].tolist(), strict=True))
            bad = {where: why for where, why in bad.items() if where in named}
            report.problems = _affected(engine, now, bad)
    return report


def _check_pack(
    engine: Engine,
    rows: npt.NDArray[np.void],
    pack: Row[Any] | None,
    pack_id: int,
    bad: dict[tuple[int, int], tuple[str, str]],
    report: ScrubReport,
) -> None:
    """Verify the objects of one pack that ``rows`` (its references) name."""
    uniq = np.unique(rows[["offset", "length", "oid"]])
    if pack is None or pack.state != "live":
        for offset in uniq["offset"].tolist():
            bad[(pack_id, offset)] = ("dangling", f"pack {pack_id} is not live in the catalog")
        return
    report.packs += 1
    key = str(pack.key)
    wanted = uniq.tolist()
    good: dict[int, str] = {}  # offset → a zone whose copy verifies
    kinds: dict[int, tuple[str, str]] = {}
    damaged: dict[str, int] = {}
    down: list[StoreError] = []
    for zone, data in replicas(engine.store, key, zone=pack.zone):
        if isinstance(data, StoreError):
            if not isinstance(data, ObjectNotFound):
                down.append(data)
            why = (
                f"pack {key} is missing from the store"
                if isinstance(data, ObjectNotFound)
                else f"pack {key} cannot be read in zone {zone}: {data.message}"
            )
            for offset, _, _ in wanted:
                kinds.setdefault(offset, ("missing", why))
            damaged[zone] = len(wanted)
            continue
        report.bytes_read += len(data)
        view = memoryview(data)
        for offset, length, oid in wanted:
            report.objects += 1
            frame = view[offset : offset + length]
            try:
                if len(frame) != length:
                    raise IntegrityError(f"pack {key} is truncated")
                bundles.parse(engine.codec.decode(frame, bytes(oid), what=f"object in {key}"))
                good.setdefault(offset, zone)
            except IntegrityError as exc:
                kinds[offset] = ("corrupt", exc.message)
                damaged[zone] = damaged.get(zone, 0) + 1
    if not good and down and not isinstance(engine.store, ZonedStore):
        raise down[0]  # the one copy could not be read: nothing to judge the pack by
    for offset, _, _ in wanted:
        if offset not in good:
            bad[(pack_id, int(offset))] = kinds[offset]
    if damaged and pack.zone is None and isinstance(engine.store, ZonedStore):
        _mend_zones(engine.store, key, damaged, report)


def _mend_zones(store: ZonedStore, key: str, damaged: dict[str, int], report: ScrubReport) -> None:
    """Replace the damaged zones' copies of a pack from a zone whose copy is whole."""
    for zone, count in damaged.items():
        report.zone_damage[zone] = report.zone_damage.get(zone, 0) + count
    whole = [z for z in store.zones if z not in damaged]
    if not whole:
        log.warning("scrub: no zone holds a whole copy of %s; it is left as it is", key)
        return
    try:
        store.mend(key, whole[0], list(damaged))
        report.mended += 1
    except StoreError as exc:
        log.warning("scrub: could not mend %s in zone(s) %s: %s", key, ", ".join(damaged), exc)


def _affected(
    engine: Engine, refs: References, bad: dict[tuple[int, int], tuple[str, str]]
) -> list[Problem]:
    """Visible snapshots and disks whose reads of a chunk reach a bad object."""
    if not bad:
        return []
    with engine.db.connect() as conn:
        snapshots = catalog.all_snapshots(conn)
        disks = catalog.all_disks(conn)
    kids: dict[str | None, list[str]] = {}
    for s in snapshots:
        kids.setdefault(s.parent_id, []).append(s.id)
    state = {s.id: s.state for s in snapshots}
    on_base: dict[str, list[str]] = {}
    for d in disks:
        if d.base_id is not None:
            on_base.setdefault(d.base_id, []).append(d.id)
    found: dict[tuple[str, str, int], Problem] = {}
    # one integer per object: pack offsets stay far below 2**40 (packs close at ~64 MiB)
    keys = refs.rows["pack"].astype(np.int64) << 40 | refs.rows["offset"].astype(np.int64)
    wanted = np.array([p << 40 | o for p, o in bad], dtype=np.int64)
    for row in refs.rows[np.isin(keys, wanted)].tolist():  # only the entries naming bad objects
        pack, offset, _length, chunk, _oid, owner = row
        kind, detail = bad[(pack, offset)]
        start = refs.owners[owner][0]
        todo = [start]
        while todo:
            sid = todo.pop()
            if sid != start and _shadows(engine, sid, chunk):
                continue
            if state.get(sid) != "deleted":
                found[("snapshot", sid, chunk)] = Problem(
                    kind, "snapshot", sid, chunk * CHUNK, detail
                )
            for disk_id in on_base.get(sid, []):
                found[("disk", disk_id, chunk)] = Problem(
                    kind, "disk", disk_id, chunk * CHUNK, detail
                )
            todo.extend(kids.get(sid, []))
    return sorted(found.values(), key=lambda p: (p.resource, p.id, p.offset))


def _shadows(engine: Engine, snapshot_id: str, chunk: int) -> bool:
    """True if the snapshot's reads of chunk never reach its parent."""
    node = engine.maps.node(snapshot_id)
    i = node.map.find(chunk)
    if i < 0:
        return node.self_contained
    entry = node.map.entries[i]
    if int(entry["kind"]) != bundles.KIND_PATCH:
        return True
    # a patch's written pages are the pages it defines: one covering every page reads no further
    return bool(popcount(entry["written"][None, :])[0] == PAGES_PER_CHUNK)
