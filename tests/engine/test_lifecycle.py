"""The engine's promises told as user stories: cost follows writes, full snapshots stand alone,
restores share, GC reclaims exactly the garbage, compaction changes nothing a reader can see."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from snapferry.engine import Engine
from snapferry.engine.compact import compact
from snapferry.engine.gc import collect
from snapferry.engine.maps import chain_depth
from snapferry.settings import CHUNK, PAGE

TIB = 1024**4
MIB = 1024**2


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine.open(tmp_path / "region") as opened:
        yield opened


def stored(engine: Engine) -> int:
    with engine.db.connect() as conn:
        return int(
            conn.execute(text("SELECT coalesce(sum(size_bytes), 0) FROM packs")).scalar_one()
        )


def sha(engine: Engine, snapshot_id: str, size: int) -> str:
    digest = hashlib.sha256()
    for piece in engine.iter_read_snapshot(snapshot_id, 0, size):
        digest.update(piece)
    return digest.hexdigest()


def test_scattered_writes_on_a_terabyte_disk_store_about_what_was_written(engine: Engine) -> None:
    disk = engine.create_disk(TIB)
    rng = np.random.default_rng(1)
    pages = rng.choice(TIB // PAGE, 256, replace=False)
    data = rng.integers(0, 256, (256, PAGE), dtype=np.uint8)
    engine.write_many(disk.id, [(int(p) * PAGE, data[i].tobytes()) for i, p in enumerate(pages)])
    before = stored(engine)
    snap = engine.create_snapshot(disk.id)
    grew = stored(engine) - before
    written = 256 * PAGE
    # incompressible pages: stored ≈ written plus per-chunk bitmaps, never whole 4 MiB chunks
    assert written <= grew < written + 256 * 1024
    assert len(engine.allocated(snap.id)) == 256


def test_a_full_snapshot_survives_everything_else_going_away(engine: Engine) -> None:
    size = 16 * MIB
    disk = engine.create_disk(size)
    rng = np.random.default_rng(2)
    snaps = []
    for _ in range(4):
        for _ in range(8):
            engine.write(disk.id, int(rng.integers(0, size // PAGE)) * PAGE, rng.bytes(PAGE))
        snaps.append(engine.create_snapshot(disk.id))
    full = engine.create_snapshot(disk.id, incremental=False)
    want = sha(engine, full.id, size)
    for snap in snaps:
        engine.delete_snapshot(snap.id)
    engine.delete_disk(disk.id)
    collect(engine, grace_seconds=0)
    compact(engine, max_depth=0)
    assert sha(engine, full.id, size) == want
    assert [s.id for s in engine.list_snapshots()] == [full.id]


def test_restoring_costs_no_stored_bytes_and_diverges_copy_on_write(engine: Engine) -> None:
    size = 8 * MIB
    disk = engine.create_disk(size)
    engine.write(disk.id, 0, b"\x01" * MIB)
    snap = engine.create_snapshot(disk.id)
    before = stored(engine)
    copy = engine.restore_disk(snap.id)
    assert stored(engine) == before
    assert copy.source_snapshot_id == snap.id
    engine.write(copy.id, 0, b"\x02" * PAGE)
    assert engine.read(copy.id, 0, PAGE) == b"\x02" * PAGE
    assert engine.read(disk.id, 0, PAGE) == b"\x01" * PAGE
    assert engine.read_snapshot(snap.id, 0, PAGE) == b"\x01" * PAGE


def test_gc_waits_out_the_grace_period_then_reclaims_everything_unreferenced(
    engine: Engine,
) -> None:
    disk = engine.create_disk(8 * MIB)
    engine.write(disk.id, 0, b"\x03" * MIB)
    first = engine.create_snapshot(disk.id)
    engine.write(disk.id, 0, b"\x04" * MIB)
    second = engine.create_snapshot(disk.id)
    engine.delete_snapshot(first.id)
    engine.delete_disk(disk.id)

    report = collect(engine, grace_seconds=3600)
    assert report.deleted == 0
    assert sha(engine, second.id, 8 * MIB)  # still readable

    engine.delete_snapshot(second.id)
    collect(engine, grace_seconds=3600)  # marks the last packs dead
    assert collect(engine, grace_seconds=3600).deleted == 0
    collect(engine, grace_seconds=0)
    assert stored(engine) == 0
    assert list(engine.store.keys("packs/")) == []


def test_compaction_shortens_chains_and_changes_no_content_or_diff(engine: Engine) -> None:
    size = 2 * CHUNK
    disk = engine.create_disk(size)
    rng = np.random.default_rng(3)
    snaps = []
    for _ in range(12):
        for _ in range(4):
            engine.write(disk.id, int(rng.integers(0, CHUNK // PAGE)) * PAGE, rng.bytes(PAGE))
        snaps.append(engine.create_snapshot(disk.id))
    newest = snaps[-1].id
    chunk0 = np.array([0], dtype=np.uint64)
    _, depth_before = chain_depth(engine.maps.lineage(newest), chunk0)
    contents = [sha(engine, s.id, size) for s in snaps]
    diffs = [engine.diff(a.id, b.id) for a, b in itertools.pairwise(snaps)]

    report = compact(engine, max_depth=3)

    _, depth_after = chain_depth(engine.maps.lineage(newest), chunk0)
    assert report.compacted > 0
    assert depth_before[0] == 11
    assert depth_after[0] <= 3
    assert [sha(engine, s.id, size) for s in snaps] == contents
    assert [engine.diff(a.id, b.id) for a, b in itertools.pairwise(snaps)] == diffs


def test_a_disk_restart_keeps_unsnapshotted_writes(tmp_path: Path) -> None:
    with Engine.open(tmp_path) as engine:
        disk = engine.create_disk(8 * MIB)
        engine.write(disk.id, 512, b"\x05" * 1024)
        engine.write(disk.id, 0, b"\x06" * 512)
    with Engine.open(tmp_path) as engine:
        assert engine.read(disk.id, 0, 2048) == b"\x06" * 512 + b"\x05" * 1024 + bytes(512)
