"""Copying a full snapshot within a region: a new, parentless full snapshot with the same content,
sharing the source's versions (no bytes stored), that outlives everything it was copied from."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from snapferry.engine import Engine
from snapferry.engine.compact import compact
from snapferry.engine.gc import collect
from snapferry.errors import InvalidInput, NotFound
from snapferry.settings import CHUNK, PAGE

SIZE = 16 * CHUNK + 3 * PAGE  # a partial last chunk
UNKNOWN = "0" * 32


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine.open(tmp_path / "region") as opened:
        yield opened


def stored(engine: Engine) -> int:
    with engine.db.connect() as conn:
        return int(
            conn.execute(text("SELECT coalesce(sum(size_bytes), 0) FROM packs")).scalar_one()
        )


def sha(engine: Engine, snapshot_id: str) -> str:
    digest = hashlib.sha256()
    for piece in engine.iter_read_snapshot(snapshot_id, 0, SIZE):
        digest.update(piece)
    return digest.hexdigest()


def sparse_history(engine: Engine, seed: int = 7) -> tuple[str, list[str], str]:
    """A disk with incremental snapshots around a full one: (disk, incrementals, full). Chunks
    are sparse and varied: scattered pages, whole chunks, a chunk written then zeroed, pages
    cleared over data, and a page in the partial last chunk."""
    disk = engine.create_disk(SIZE).id
    rng = np.random.default_rng(seed)
    incrementals = []
    for chunk in (0, 3, 9):
        for page in rng.choice(1024, 12, replace=False).tolist():
            engine.write(disk, chunk * CHUNK + page * PAGE, rng.bytes(PAGE))
        incrementals.append(engine.create_snapshot(disk).id)
    engine.write(disk, 5 * CHUNK, rng.bytes(CHUNK))
    engine.write(disk, 7 * CHUNK, rng.bytes(8 * PAGE))
    engine.write(disk, 16 * CHUNK + PAGE, rng.bytes(PAGE))
    incrementals.append(engine.create_snapshot(disk).id)
    engine.write(disk, 7 * CHUNK, bytes(8 * PAGE))  # the chunk reads all zeros again
    engine.write(disk, 3 * CHUNK, bytes(CHUNK // 2))  # clears over earlier data
    engine.write(disk, 9 * CHUNK + 17 * PAGE, rng.bytes(3 * PAGE))
    full = engine.create_snapshot(disk, incremental=False).id
    engine.write(disk, 5 * CHUNK, rng.bytes(PAGE))
    incrementals.append(engine.create_snapshot(disk).id)
    return disk, incrementals, full


def test_a_copy_reads_as_its_source_and_stores_no_bytes(engine: Engine) -> None:
    _, _, full = sparse_history(engine)
    source = engine.get_snapshot(full)
    before = stored(engine)

    copy = engine.copy_snapshot(full)

    assert stored(engine) == before
    assert copy.id != full
    assert copy.family_id not in {source.family_id, copy.id}
    assert (copy.disk_id, copy.parent_id, copy.incremental, copy.state) == (
        None,
        None,
        False,
        "ready",
    )
    assert copy.size_bytes == source.size_bytes == SIZE
    assert copy.seq > source.seq
    assert engine.maps.node(copy.id).self_contained
    assert engine.read_snapshot(copy.id, 0, SIZE) == engine.read_snapshot(full, 0, SIZE)
    assert engine.list_snapshots(copy.family_id) == [copy]


def test_a_copy_lists_the_same_allocated_ranges_as_its_source(engine: Engine) -> None:
    _, _, full = sparse_history(engine)
    copy = engine.copy_snapshot(full)

    allocated = engine.allocated(full)
    assert allocated  # the history leaves data in several chunks
    assert engine.allocated(copy.id) == allocated
    assert engine.diff(None, copy.id).changed == allocated
    assert engine.diff(copy.id, copy.id).changed == []
    with pytest.raises(InvalidInput, match="same family"):
        engine.diff(full, copy.id)


def test_copying_an_incremental_snapshot_is_refused_and_changes_nothing(engine: Engine) -> None:
    _, incrementals, _ = sparse_history(engine)
    listed = engine.list_snapshots()
    before = stored(engine)

    with pytest.raises(InvalidInput, match="CopyStart") as refused:
        engine.copy_snapshot(incrementals[-1])

    assert "only full snapshots can be copied within a region" in refused.value.message
    assert engine.list_snapshots() == listed
    assert stored(engine) == before


def test_a_missing_or_deleted_source_is_not_found(engine: Engine) -> None:
    _, _, full = sparse_history(engine)
    with pytest.raises(NotFound):
        engine.copy_snapshot(UNKNOWN)
    engine.delete_snapshot(full)
    with pytest.raises(NotFound):
        engine.copy_snapshot(full)


def test_a_copy_outlives_its_source_disk_gc_compaction_and_reopening(tmp_path: Path) -> None:
    root = tmp_path / "region"
    with Engine.open(root) as engine:
        disk, incrementals, full = sparse_history(engine)
        want = sha(engine, full)
        allocated = engine.allocated(full)
        copy = engine.copy_snapshot(full).id

        for sid in [full, *incrementals]:  # the full source folds into its incremental child
            engine.delete_snapshot(sid)
        engine.delete_disk(disk)
        collect(engine, grace_seconds=0)  # marks the unreferenced packs dead, repacks the rest
        report = collect(engine, grace_seconds=0)
        compact(engine, max_depth=0)

        assert report.live_bytes == stored(engine)  # all that is left is what the copy names
        assert sha(engine, copy) == want
    with Engine.open(root) as engine:
        assert [s.id for s in engine.list_snapshots()] == [copy]
        assert sha(engine, copy) == want
        assert engine.allocated(copy) == allocated
        collect(engine, grace_seconds=0)
        assert sha(engine, copy) == want


def test_repacking_moves_a_shared_version_for_the_source_and_the_copy(engine: Engine) -> None:
    disk = engine.create_disk(SIZE).id
    rng = np.random.default_rng(8)
    engine.write(disk, 0, rng.bytes(CHUNK))
    engine.write(disk, CHUNK, rng.bytes(4 * PAGE))
    older = engine.create_snapshot(disk).id  # one pack: chunk 0's version, then chunk 1's
    engine.write(disk, 0, rng.bytes(CHUNK))
    full = engine.create_snapshot(disk, incremental=False).id  # shares chunk 1's version
    want = sha(engine, full)
    copy = engine.copy_snapshot(full).id
    engine.delete_snapshot(older)
    engine.delete_disk(disk)

    report = collect(engine, grace_seconds=0)  # the first pack is mostly dead: repacked

    assert report.repacked == 1
    engine.objects.forget()  # reads below go to the store, not to cached objects
    assert sha(engine, full) == want
    assert sha(engine, copy) == want
    engine.delete_snapshot(full)
    collect(engine, grace_seconds=0)
    collect(engine, grace_seconds=0)
    assert sha(engine, copy) == want


def test_a_copy_of_a_copy_outlives_both_sources(engine: Engine) -> None:
    disk, _, full = sparse_history(engine)
    want = sha(engine, full)
    first = engine.copy_snapshot(full)
    second = engine.copy_snapshot(first.id)

    assert second.family_id not in {first.family_id, engine.get_snapshot(full).family_id}
    engine.delete_snapshot(full)
    engine.delete_snapshot(first.id)
    engine.delete_disk(disk)
    collect(engine, grace_seconds=0)
    collect(engine, grace_seconds=0)

    assert sha(engine, second.id) == want
    assert engine.allocated(second.id) == engine.diff(None, second.id).changed


def test_a_disk_restored_from_a_copy_diverges_without_touching_it(engine: Engine) -> None:
    _, _, full = sparse_history(engine)
    want = sha(engine, full)
    copy = engine.copy_snapshot(full).id
    restored = engine.restore_disk(copy).id
    assert engine.read(restored, 0, SIZE) == engine.read_snapshot(copy, 0, SIZE)

    engine.write(restored, 3 * CHUNK, b"\x09" * CHUNK)
    first = engine.create_snapshot(restored).id
    engine.delete_snapshot(copy)  # hidden while the restored disk builds on it
    engine.write(restored, 0, b"\x0a" * PAGE)
    second = engine.create_snapshot(restored).id  # folds the copy into its child
    collect(engine, grace_seconds=0)
    collect(engine, grace_seconds=0)

    assert sha(engine, full) == want
    expected = bytearray(engine.read_snapshot(full, 0, SIZE))
    expected[3 * CHUNK : 4 * CHUNK] = b"\x09" * CHUNK
    assert engine.read_snapshot(first, 0, SIZE) == expected
    expected[0:PAGE] = b"\x0a" * PAGE
    assert engine.read_snapshot(second, 0, SIZE) == expected
    assert engine.diff(first, second).changed == [(0, PAGE)]
