"""Copies between two engines (two regions), the engine's half: plans are exact deltas against
the newest copied ancestor, imports rebuild byte-identical snapshots on their base, and a
half-done import is resumable, deletable and collectable."""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Connection, text

from snapferry.engine import Engine, objects
from snapferry.engine.compact import compact
from snapferry.engine.delta import ChunkDelta, CopyPlan
from snapferry.engine.gc import collect
from snapferry.engine.imports import ImportAborted
from snapferry.errors import IntegrityError, InvalidInput, NotReady
from snapferry.settings import CHUNK, PAGE

SIZE = 24 * CHUNK + 5 * PAGE


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    with Engine.open(tmp_path / "east") as east, Engine.open(tmp_path / "west") as west:
        yield east, west


def sha(engine: Engine, snapshot_id: str) -> str:
    digest = hashlib.sha256()
    for piece in engine.iter_read_snapshot(snapshot_id, 0, SIZE):
        digest.update(piece)
    return digest.hexdigest()


def always(_: Connection) -> bool:
    return True


def scatter(engine: Engine, disk: str, rng: np.random.Generator, pages: int) -> int:
    """Random 4 KiB writes (some of zeros, clearing data); the distinct pages written."""
    chosen = rng.choice(SIZE // PAGE, pages, replace=False)
    for page in chosen.tolist():
        data = bytes(PAGE) if page % 7 == 0 else rng.bytes(PAGE)
        engine.write(disk, page * PAGE, data)
    return len(chosen)


def copy(
    source: Engine,
    target: Engine,
    snapshot: str,
    copies: dict[str, str],
    *,
    full: bool = False,
    batch_pages: int = 300,
    received: bool = False,
) -> tuple[str, int]:
    """Copy snapshot from source to target as the replication worker does; (target id, bytes
    of page data moved). ``copies`` maps source ids to their target copies. ``received``: the
    frames lie end to end in one page-aligned buffer, as a peer's answer arrives."""
    info = source.get_snapshot(snapshot)
    candidates = list(reversed(copies))
    anchor, plan = source.plan_copy(snapshot, candidates, full=full)
    made = target.begin_import(info.size_bytes, family_id=info.family_id, full=full)
    target.set_import_base(made.id, None if anchor is None else copies[anchor])
    moved = 0
    for piece in plan.pieces(np.zeros(0, dtype=np.uint64), batch_pages, 8 * CHUNK):
        if piece.oids:
            frames = source.read_frames(snapshot, piece.oids)
            if received:
                frames = end_to_end(frames)
            moved += piece.delta.changed_bytes
            pairs = list(zip(piece.oids, frames, strict=True))
            target.stage_frames(made.id, piece.delta, pairs, piece.frame_of, always)
            continue
        pages = source.read_pages(snapshot, piece.delta.chunks, piece.delta.changed)
        moved += pages.nbytes
        target.stage_import(made.id, piece.delta, pages, always)
    target.finish_import(made.id, always)
    copies[snapshot] = made.id
    return made.id, moved


def end_to_end(frames: Sequence[bytes | memoryview]) -> list[memoryview]:
    whole = memoryview(mmap.mmap(-1, sum(len(f) for f in frames)))
    views, at = [], 0
    for frame in frames:
        whole[at : at + len(frame)] = frame
        views.append(whole[at : at + len(frame)])
        at += len(frame)
    return views


def test_first_copy_then_exact_deltas(regions: tuple[Engine, Engine]) -> None:
    east, west = regions
    rng = np.random.default_rng(1)
    disk = east.create_disk(SIZE).id
    east.write(disk, 0, rng.bytes(3 * CHUNK))
    east.write(disk, 10 * CHUNK + 17 * PAGE, rng.bytes(PAGE))
    east.write(disk, SIZE - PAGE, rng.bytes(PAGE))
    copies: dict[str, str] = {}
    first = east.create_snapshot(disk).id
    target, moved = copy(east, west, first, copies)
    assert sha(west, target) == sha(east, first)
    assert moved == east.diff(None, first).changed_bytes
    for _ in range(3):
        changed = scatter(east, disk, rng, 200)
        snap = east.create_snapshot(disk).id
        target, moved = copy(east, west, snap, copies)
        assert sha(west, target) == sha(east, snap)
        assert moved <= changed * PAGE  # cleared pages move no data
    # the copies form a family in the target whose diffs are the source's
    older, newer = list(copies.values())[-2:]
    src_older, src_newer = list(copies)[-2:]
    assert west.diff(older, newer) == east.diff(src_older, src_newer)


def test_delta_after_source_deletes_and_compacts_between(
    regions: tuple[Engine, Engine],
) -> None:
    east, west = regions
    rng = np.random.default_rng(2)
    disk = east.create_disk(SIZE).id
    east.write(disk, 0, rng.bytes(8 * CHUNK))
    copies: dict[str, str] = {}
    base = east.create_snapshot(disk).id
    copy(east, west, base, copies)
    written = 0
    middles = []
    for _ in range(3):
        written += scatter(east, disk, rng, 150)
        middles.append(east.create_snapshot(disk).id)
    east.delete_snapshot(middles[0])
    east.delete_snapshot(middles[1])
    compact(east, max_depth=1)
    target, moved = copy(east, west, middles[2], copies)
    assert sha(west, target) == sha(east, middles[2])
    assert moved <= written * PAGE


def test_anchor_is_newest_copied_ancestor(regions: tuple[Engine, Engine]) -> None:
    east, _ = regions
    disk = east.create_disk(SIZE).id
    east.write(disk, 0, b"\x01" * PAGE)
    a = east.create_snapshot(disk).id
    east.write(disk, PAGE, b"\x02" * PAGE)
    b = east.create_snapshot(disk).id
    other = east.create_disk(SIZE).id
    east.write(other, 0, b"\x03" * PAGE)
    foreign = east.create_snapshot(other).id
    assert east.plan_copy(b, [foreign, b, a])[0] == b
    assert east.plan_copy(b, [foreign, a])[0] == a
    anchor, plan = east.plan_copy(b, [foreign])
    assert anchor is None and plan.delta.changed_pages == 2
    assert east.plan_copy(b, [a], full=True)[0] is None
    assert east.plan_copy(b, [b])[1].delta.changed_pages == 0


def test_full_copy_is_self_contained(regions: tuple[Engine, Engine]) -> None:
    east, west = regions
    rng = np.random.default_rng(3)
    disk = east.create_disk(SIZE).id
    east.write(disk, CHUNK, rng.bytes(CHUNK))
    copies: dict[str, str] = {}
    first = east.create_snapshot(disk).id
    copy(east, west, first, copies)
    scatter(east, disk, rng, 50)
    second = east.create_snapshot(disk).id
    target, _ = copy(east, west, second, {}, full=True)
    assert sha(west, target) == sha(east, second)
    info = west.get_snapshot(target)
    assert not info.incremental and info.parent_id is None
    restored = west.restore_disk(target)
    assert west.read(restored.id, CHUNK, PAGE) == east.read_snapshot(second, CHUNK, PAGE)


def test_half_import_resumes_is_invisible_and_deletes_to_garbage(
    regions: tuple[Engine, Engine], tmp_path: Path
) -> None:
    east, west = regions
    rng = np.random.default_rng(4)
    disk = east.create_disk(SIZE).id
    east.write(disk, 0, rng.bytes(6 * CHUNK))
    snap = east.create_snapshot(disk).id
    _, plan = east.plan_copy(snap, [])
    delta = plan.delta
    made = west.begin_import(SIZE, family_id=east.get_snapshot(snap).family_id, full=False)
    pieces = list(delta.batches(1024))
    first = pieces[0]
    west.stage_import(made.id, first, east.read_pages(snap, first.chunks, first.changed), always)
    with pytest.raises(NotReady):
        west.read_snapshot(made.id, 0, PAGE)
    # a refused guard commits nothing
    second = pieces[1]
    pages = east.read_pages(snap, second.chunks, second.changed)
    with pytest.raises(ImportAborted):
        west.stage_import(made.id, second, pages, lambda _: False)
    # the checkpoint is what the target holds, also after reopening
    west.close()
    west = Engine.open(tmp_path / "west")
    try:
        held = west.staged_chunks(made.id)
        assert held.tolist() == first.chunks.tolist()
        rest = delta.without(held)
        for piece in rest.batches(1024):
            pages = east.read_pages(snap, piece.chunks, piece.changed)
            west.stage_import(made.id, piece, pages, always)
        west.finish_import(made.id, always)
        assert sha(west, made.id) == sha(east, snap)
        # a deleted half-import leaves only garbage
        again = west.begin_import(SIZE, family_id=None, full=False)
        west.stage_import(
            again.id, first, east.read_pages(snap, first.chunks, first.changed), always
        )
        west.delete_snapshot(again.id)
        with pytest.raises(ImportAborted):
            west.stage_import(
                again.id, first, east.read_pages(snap, first.chunks, first.changed), always
            )
        report = collect(west, grace_seconds=0)
        assert report.deleted >= 1
        assert sha(west, made.id) == sha(east, snap)
    finally:
        west.close()


def test_whole_chunks_travel_as_stored_frames_and_are_verified(
    regions: tuple[Engine, Engine],
) -> None:
    east, west = regions
    rng = np.random.default_rng(8)
    disk = east.create_disk(SIZE).id
    east.write(disk, 2 * CHUNK, rng.bytes(3 * CHUNK))  # whole chunks: full versions
    east.write(disk, 9 * CHUNK + PAGE, rng.bytes(PAGE))  # a lone page: a small bundle
    snap = east.create_snapshot(disk).id
    _, plan = east.plan_copy(snap, [])
    framed = plan.delta.chunks[plan.frame >= 0].tolist()
    assert framed == [2, 3, 4, 9]
    copies: dict[str, str] = {}
    target, moved = copy(east, west, snap, copies)
    assert sha(west, target) == sha(east, snap) and moved == 3 * CHUNK + PAGE
    # a corrupted frame is refused and nothing is stored
    (piece,) = [p for p in plan.pieces(np.zeros(0, dtype=np.uint64), 100, 1 << 30) if p.oids]
    frames = east.read_frames(snap, piece.oids)
    bad = bytearray(frames[0])
    bad[len(bad) // 2] ^= 1
    made = west.begin_import(SIZE, family_id=None, full=False)
    with pytest.raises(IntegrityError):
        west.stage_frames(
            made.id,
            piece.delta,
            [(piece.oids[0], bytes(bad)), *zip(piece.oids[1:], frames[1:], strict=True)],
            piece.frame_of,
            always,
        )
    assert len(west.staged_chunks(made.id)) == 0
    # only frames of the snapshot are served
    with pytest.raises(InvalidInput):
        east.read_frames(snap, [bytes(32)])


def test_frames_received_end_to_end_are_stored_as_their_pack_without_a_copy(
    regions: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    east, west = regions
    rng = np.random.default_rng(9)
    disk = east.create_disk(SIZE).id
    east.write(disk, 3 * CHUNK, rng.bytes(5 * CHUNK))
    snap = east.create_snapshot(disk).id

    def no_copies(*args: object) -> None:
        raise AssertionError("a received frame was copied into a pack buffer")

    monkeypatch.setattr(objects.PackWriter, "_append", no_copies)
    target, moved = copy(east, west, snap, {}, received=True)
    assert moved == 5 * CHUNK and sha(west, target) == sha(east, snap)


def test_delta_encoding_round_trips() -> None:
    rng = np.random.default_rng(5)
    chunks = np.sort(rng.choice(10_000, 50, replace=False)).astype(np.uint64)
    changed = rng.integers(0, 256, (50, 128), dtype=np.uint8)
    cleared = changed ^ 0xFF
    delta = ChunkDelta(chunks, changed, cleared)
    back = ChunkDelta.decode(delta.encode())
    assert back.chunks.tolist() == chunks.tolist()
    assert (back.changed == changed).all() and (back.cleared == cleared).all()
    assert sum(p.changed_pages for p in delta.batches(700)) == delta.changed_pages


def test_gc_and_base_deletion_never_take_what_an_import_needs(
    regions: tuple[Engine, Engine],
) -> None:
    east, west = regions
    rng = np.random.default_rng(6)
    disk = east.create_disk(SIZE).id
    east.write(disk, 0, rng.bytes(4 * CHUNK))
    copies: dict[str, str] = {}
    first = east.create_snapshot(disk).id
    base, _ = copy(east, west, first, copies)
    scatter(east, disk, rng, 300)
    second = east.create_snapshot(disk).id
    anchor, plan = east.plan_copy(second, [first])
    delta = plan.delta
    made = west.begin_import(SIZE, family_id=east.get_snapshot(second).family_id, full=False)
    west.set_import_base(made.id, copies[anchor or ""])
    pieces = list(delta.batches(100))
    for i, piece in enumerate(pieces):
        pages = east.read_pages(second, piece.chunks, piece.changed)
        west.stage_import(made.id, piece, pages, always)
        if i == 0:
            west.delete_snapshot(base)  # the base goes while the import builds on it
            east.delete_snapshot(first)  # and so does the anchor on the source
        collect(west, grace_seconds=0)
        collect(east, grace_seconds=0)
    west.finish_import(made.id, always)
    assert sha(west, made.id) == sha(east, second)
    assert [s.id for s in west.list_snapshots()] == [made.id]  # the base folded into it
    collect(west, grace_seconds=0)
    assert sha(west, made.id) == sha(east, second)


def test_a_copy_plan_round_trips() -> None:
    rng = np.random.default_rng(6)
    chunks = np.arange(10, dtype=np.uint64)
    changed = rng.integers(0, 256, (10, 128), dtype=np.uint8)
    delta = ChunkDelta(chunks, changed, np.zeros_like(changed))
    frame = np.array([-1, 0, 0, 1, -1, -1, 1, 1, -1, 0], dtype=np.int64)
    oids = rng.integers(0, 256, (2, 32), dtype=np.uint8)
    plan = CopyPlan(delta, frame, oids, np.array([100, 200], dtype=np.int64))
    back = CopyPlan.decode(plan.encode())
    assert back.frame.tolist() == frame.tolist() and (back.oids == oids).all()
    pieces = list(back.pieces(np.array([3], dtype=np.uint64), 10_000, 100))
    assert [p.delta.chunks.tolist() for p in pieces] == [[0, 4, 5, 8], [1, 2, 9], [6, 7]]
    with pytest.raises(IntegrityError):
        CopyPlan.decode(b"nonsense")


def test_the_version_index_finds_what_a_region_holds(
    regions: tuple[Engine, Engine], tmp_path: Path
) -> None:
    east, west = regions
    rng = np.random.default_rng(9)
    disk = east.create_disk(SIZE).id
    east.write(disk, 0, rng.bytes(2 * CHUNK))
    snap = east.create_snapshot(disk).id
    _, plan = east.plan_copy(snap, [])
    oids = [bytes(o) for o in plan.oids]
    assert len(oids) == 2 and set(east.held_frames(oids)) == set(oids)
    assert west.held_frames(oids) == {}
    copies: dict[str, str] = {}
    copy(east, west, snap, copies)
    assert set(west.held_frames(oids)) == set(oids)
    # a full copy of the same snapshot needs none of them again
    made = west.begin_import(SIZE, family_id=None, full=True)
    (piece,) = plan.pieces(np.zeros(0, dtype=np.uint64), 100, 1 << 30)
    local = [(oid, None) for oid in piece.oids]
    west.stage_frames(made.id, piece.delta, local, piece.frame_of, always)
    west.finish_import(made.id, always)
    assert sha(west, made.id) == sha(east, snap)
    # an index lost (a region from before it) is rebuilt from the maps at open
    east.close()
    reopened = Engine.open(tmp_path / "east")
    try:
        with reopened.db.begin() as conn:
            conn.execute(text("DELETE FROM versions"))
        reopened.close()
        reopened = Engine.open(tmp_path / "east")
        assert set(reopened.held_frames(oids)) == set(oids)
    finally:
        reopened.close()
    # deleting everything and collecting drops the rows with their packs
    west.delete_snapshot(copies[snap])
    west.delete_snapshot(made.id)
    collect(west, grace_seconds=0)
    collect(west, grace_seconds=0)
    assert west.held_frames(oids) == {}


@pytest.mark.parametrize("seed", range(6))
def test_each_chunk_takes_its_own_frame_when_one_bundle_holds_an_older_version(
    regions: tuple[Engine, Engine], seed: int
) -> None:
    """A chunk whose old full version shares a bundle with a chunk still current must come from
    its own newer frame, whichever order the frames of a batch arrive in."""
    east, west = regions
    rng = np.random.default_rng(seed)
    disk = east.create_disk(SIZE).id
    east.write(disk, 0, rng.bytes(PAGE))  # chunk 0: one page ...
    east.write(disk, CHUNK, rng.bytes(CHUNK - 8 * PAGE))  # ... in one bundle with chunk 1
    first = east.create_snapshot(disk).id
    east.write(disk, 0, rng.bytes(CHUNK))  # chunk 0 rewritten whole
    second = east.create_snapshot(disk).id
    east.delete_snapshot(first)  # folded: chunk 0 gets a new full frame, chunk 1 keeps the old
    _, plan = east.plan_copy(second, [])
    assert len(plan.oids) == 2
    target, _ = copy(east, west, second, {}, batch_pages=4096)
    assert sha(west, target) == sha(east, second)


def test_a_refused_commit_leaves_no_pack_behind(regions: tuple[Engine, Engine]) -> None:
    """What a failed step wrote is deleted at once (no waiting for gc): a full region gets its
    space back as soon as the step fails."""
    east, west = regions
    disk = east.create_disk(SIZE).id
    east.write(disk, 0, np.random.default_rng(9).bytes(4 * CHUNK))
    snap = east.create_snapshot(disk).id
    _, plan = east.plan_copy(snap, [])
    made = west.begin_import(SIZE, family_id=east.get_snapshot(snap).family_id, full=False)
    piece = next(iter(plan.delta.batches(1024)))
    pages = east.read_pages(snap, piece.chunks, piece.changed)

    def stored() -> tuple[int, int]:
        with west.db.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM packs")).scalar_one()
        objects_held = sum(1 for p in (west.data_dir / "store").rglob("*") if p.is_file())
        return int(rows), objects_held

    before = stored()
    with pytest.raises(ImportAborted):
        west.stage_import(made.id, piece, pages, lambda _: False)
    assert stored() == before
    west.stage_import(made.id, piece, pages, always)  # a commit keeps its pack
    assert stored()[0] == before[0] + 1
