"""The engine's queries: small functions over a SQLAlchemy ``Connection``, one per question.

Callers own transactions (``with engine.begin() as conn``). Rows come back as SQLAlchemy ``Row``s
with the column names of ``schema``; block-map segments come back as raw bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, delete, func, insert, select, update

from snapferry.meta.schema import (
    disks,
    head_journal,
    head_pages,
    map_segments,
    packs,
    snapshots,
    versions,
    zones,
)


# --- snapshots -------------------------------------------------------------------------------
def snapshot(conn: Connection, snapshot_id: str) -> Row[Any] | None:
    return conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id)).first()


def all_snapshots(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(select(snapshots).order_by(snapshots.c.seq)).all()


def children(conn: Connection, snapshot_id: str) -> Sequence[Row[Any]]:
    return conn.execute(
        select(snapshots).where(snapshots.c.parent_id == snapshot_id).order_by(snapshots.c.seq)
    ).all()


def next_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(snapshots.c.seq), 0))).scalar_one()) + 1


def insert_snapshot(conn: Connection, **values: Any) -> None:
    conn.execute(insert(snapshots).values(**values))


def update_snapshot(conn: Connection, snapshot_id: str, **values: Any) -> None:
    conn.execute(update(snapshots).where(snapshots.c.id == snapshot_id).values(**values))


def delete_snapshot_row(conn: Connection, snapshot_id: str) -> None:
    conn.execute(delete(map_segments).where(map_segments.c.snapshot_id == snapshot_id))
    conn.execute(delete(snapshots).where(snapshots.c.id == snapshot_id))


def snapshots_in_state(conn: Connection, state: str) -> Sequence[Row[Any]]:
    return conn.execute(
        select(snapshots).where(snapshots.c.state == state).order_by(snapshots.c.seq)
    ).all()


# --- block-map segments ----------------------------------------------------------------------
def segments(conn: Connection, snapshot_id: str) -> list[tuple[int, bytes]]:
    rows = conn.execute(
        select(map_segments.c.segment, map_segments.c.entries)
        .where(map_segments.c.snapshot_id == snapshot_id)
        .order_by(map_segments.c.segment)
    ).all()
    return [(int(r.segment), bytes(r.entries)) for r in rows]


def segments_in(conn: Connection, snapshot_id: str, wanted: Iterable[int]) -> dict[int, bytes]:
    """The given segments of a snapshot that exist, by segment number."""
    rows = conn.execute(
        select(map_segments.c.segment, map_segments.c.entries).where(
            map_segments.c.snapshot_id == snapshot_id, map_segments.c.segment.in_(list(wanted))
        )
    ).all()
    return {int(r.segment): bytes(r.entries) for r in rows}


def put_segments(conn: Connection, snapshot_id: str, blobs: dict[int, bytes]) -> None:
    """Replace the given segments of a snapshot; an empty blob removes its segment."""
    if not blobs:
        return
    conn.execute(
        delete(map_segments).where(
            map_segments.c.snapshot_id == snapshot_id,
            map_segments.c.segment.in_(list(blobs)),
        )
    )
    rows = [
        {"snapshot_id": snapshot_id, "segment": seg, "entries": blob}
        for seg, blob in blobs.items()
        if blob
    ]
    if rows:
        conn.execute(insert(map_segments), rows)


def all_segments(conn: Connection) -> Iterable[tuple[str, int, bytes]]:
    result = conn.execute(
        select(map_segments.c.snapshot_id, map_segments.c.segment, map_segments.c.entries)
    )
    for r in result:
        yield str(r.snapshot_id), int(r.segment), bytes(r.entries)


# --- disks -----------------------------------------------------------------------------------
def disk(conn: Connection, disk_id: str) -> Row[Any] | None:
    return conn.execute(select(disks).where(disks.c.id == disk_id)).first()


def all_disks(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(select(disks).order_by(disks.c.created_at)).all()


def insert_disk(conn: Connection, **values: Any) -> None:
    conn.execute(insert(disks).values(**values))


def update_disk(conn: Connection, disk_id: str, **values: Any) -> None:
    conn.execute(update(disks).where(disks.c.id == disk_id).values(**values))


def delete_disk_row(conn: Connection, disk_id: str) -> None:
    """Forget a disk and its head, but not the bitmap rows of generations its snapshots still
    sealing froze (they seal from them; ``_drop_head_gen`` removes them after)."""
    conn.execute(delete(head_journal).where(head_journal.c.disk_id == disk_id))
    conn.execute(
        delete(head_pages).where(
            head_pages.c.disk_id == disk_id, head_pages.c.gen.not_in(_frozen_gens(disk_id))
        )
    )
    conn.execute(delete(disks).where(disks.c.id == disk_id))


def frozen_gens(conn: Connection, disk_id: str) -> list[int]:
    """The head generations of the disk that snapshots still sealing froze."""
    return [int(g) for (g,) in conn.execute(_frozen_gens(disk_id)).all()]


def _frozen_gens(disk_id: str) -> Select[tuple[Any]]:
    return select(snapshots.c.frozen_gen).where(
        snapshots.c.state == "sealing", snapshots.c.disk_id == disk_id
    )


def disks_on_base(conn: Connection, snapshot_id: str) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(disks).where(disks.c.base_id == snapshot_id)
        ).scalar_one()
    )


# --- head pages ------------------------------------------------------------------------------
def head_bitmaps(conn: Connection, disk_id: str, gen: int) -> list[tuple[int, bytes]]:
    rows = conn.execute(
        select(head_pages.c.chunk, head_pages.c.bitmap).where(
            head_pages.c.disk_id == disk_id, head_pages.c.gen == gen
        )
    ).all()
    return [(int(r.chunk), bytes(r.bitmap)) for r in rows]


def put_head_bitmaps(conn: Connection, disk_id: str, gen: int, bitmaps: dict[int, bytes]) -> None:
    """Replace the bitmaps of the given chunks of one head generation."""
    conn.execute(
        delete(head_pages).where(
            head_pages.c.disk_id == disk_id,
            head_pages.c.gen == gen,
            head_pages.c.chunk.in_(list(bitmaps)),
        )
    )
    conn.execute(
        insert(head_pages),
        [{"disk_id": disk_id, "gen": gen, "chunk": c, "bitmap": b} for c, b in bitmaps.items()],
    )


def drop_head_gen(conn: Connection, disk_id: str, gen: int) -> None:
    conn.execute(delete(head_pages).where(head_pages.c.disk_id == disk_id, head_pages.c.gen == gen))


def drop_stale_head_gens(conn: Connection) -> None:
    """Delete the bitmap rows of every head generation that is neither its disk's live one (a
    deleted disk has none) nor frozen by a snapshot still sealing."""
    live = select(disks.c.head_gen).where(disks.c.id == head_pages.c.disk_id).scalar_subquery()
    current = func.coalesce(live, -1)
    frozen = select(snapshots.c.frozen_gen).where(
        snapshots.c.state == "sealing", snapshots.c.disk_id == head_pages.c.disk_id
    )
    conn.execute(
        delete(head_pages).where(head_pages.c.gen != current, head_pages.c.gen.not_in(frozen))
    )


def put_journal(conn: Connection, disk_id: str, gen: int, pages: bytes) -> None:
    conn.execute(insert(head_journal).values(disk_id=disk_id, gen=gen, pages=pages))


def journals(conn: Connection) -> list[tuple[str, int, bytes]]:
    rows = conn.execute(select(head_journal)).all()
    return [(str(r.disk_id), int(r.gen), bytes(r.pages)) for r in rows]


def drop_journal(conn: Connection, disk_id: str, gen: int) -> None:
    conn.execute(
        delete(head_journal).where(head_journal.c.disk_id == disk_id, head_journal.c.gen == gen)
    )


# --- packs -----------------------------------------------------------------------------------
def insert_pack(conn: Connection, key: str, created_at: float, zone: str | None = None) -> int:
    result = conn.execute(
        insert(packs).values(
            key=key, size_bytes=0, state="pending", created_at=created_at, zone=zone
        )
    )
    key_row = result.inserted_primary_key
    assert key_row is not None
    return int(key_row[0])


def mark_packs_live(conn: Connection, sizes: dict[int, int]) -> None:
    for pack_id, size in sizes.items():
        conn.execute(
            update(packs).where(packs.c.id == pack_id).values(state="live", size_bytes=size)
        )


def pack_places(conn: Connection, pack_ids: Iterable[int]) -> dict[int, tuple[str, str | None]]:
    """Each pack's key and zone (None: every zone)."""
    ids = list(pack_ids)
    rows = conn.execute(
        select(packs.c.id, packs.c.key, packs.c.zone).where(packs.c.id.in_(ids))
    ).all()
    return {int(r.id): (str(r.key), r.zone) for r in rows}


def zonal_packs(conn: Connection, pack_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Of the packs, those held in one zone only: key and zone."""
    ids = list(pack_ids)
    rows = conn.execute(
        select(packs.c.id, packs.c.key, packs.c.zone).where(
            packs.c.id.in_(ids), packs.c.zone.is_not(None)
        )
    ).all()
    return {int(r.id): (str(r.key), str(r.zone)) for r in rows}


def spread_packs(conn: Connection, pack_ids: Iterable[int]) -> None:
    """Record that the packs are (to be) held in every zone."""
    ids = list(pack_ids)
    if ids:
        conn.execute(update(packs).where(packs.c.id.in_(ids)).values(zone=None))


def pack_keys(conn: Connection, pack_ids: Iterable[int]) -> dict[int, str]:
    ids = list(pack_ids)
    rows = conn.execute(select(packs.c.id, packs.c.key).where(packs.c.id.in_(ids))).all()
    return {int(r.id): str(r.key) for r in rows}


def namable_packs(conn: Connection, pack_ids: Iterable[int]) -> set[int]:
    """Which of the packs a commit may name: stored and not dead (GC deletes dead packs
    without the engine lock, trusting that nothing comes to name them)."""
    ids = list(pack_ids)
    rows = conn.execute(
        select(packs.c.id).where(packs.c.id.in_(ids), packs.c.state != "dead")
    ).all()
    return {int(r.id) for r in rows}


def zone_names(conn: Connection) -> list[str]:
    """The region's zones, in the order they were added."""
    rows = conn.execute(select(zones.c.name).order_by(zones.c.added_at, zones.c.name)).all()
    return [str(r.name) for r in rows]


def add_zones(conn: Connection, names: Iterable[str], at: float) -> None:
    """Record zones the region did not have (in order, one after another)."""
    for i, name in enumerate(names):
        conn.execute(insert(zones).values(name=name, added_at=at + i * 1e-6))


def all_packs(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(select(packs).order_by(packs.c.id)).all()


def mark_packs_dead(conn: Connection, pack_ids: Iterable[int], at: float) -> None:
    ids = list(pack_ids)
    if ids:
        conn.execute(update(packs).where(packs.c.id.in_(ids)).values(state="dead", dead_at=at))


def delete_pack_row(conn: Connection, pack_id: int) -> None:
    """Forget a deleted pack, and the versions it held."""
    conn.execute(delete(versions).where(versions.c.pack == pack_id))
    conn.execute(delete(packs).where(packs.c.id == pack_id))


# --- the version index -----------------------------------------------------------------------
def put_versions(conn: Connection, rows: Iterable[tuple[bytes, int, int, int]]) -> None:
    """Record where frames lie: (oid, pack, offset, length) rows, each new to the index."""
    values = [{"oid": o, "pack": p, "offset": off, "length": n} for o, p, off, n in rows]
    if values:
        conn.execute(insert(versions), values)


def held_versions(conn: Connection, oids: Iterable[bytes]) -> dict[bytes, tuple[int, int, int]]:
    """Where this region holds each of the frames (those it holds), in a live pack."""
    wanted = list(oids)
    if not wanted:
        return {}
    rows = conn.execute(
        select(versions.c.oid, versions.c.pack, versions.c.offset, versions.c.length)
        .join(packs, packs.c.id == versions.c.pack)
        .where(versions.c.oid.in_(wanted), packs.c.state == "live")
    ).all()
    return {bytes(r.oid): (int(r.pack), int(r.offset), int(r.length)) for r in rows}


def versions_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(versions)).scalar_one())
