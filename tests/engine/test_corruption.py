"""Corrupt or missing stored data is an error that names what it spoils — never wrong bytes.

The region: snapshot S1 holds three full 4 MiB chunks (three objects in one pack); S2 rewrites a
few pages of chunks 1 and 2 (patches that read through S1's versions); S3 rewrites all of chunk 1
(a patch that covers every page, so its reads of chunk 1 stop there). A disk restored from S2 reads
through S2 and S1; the original disk builds on S3. Damage is done for real — a byte flipped in a
pack file, a pack file removed — or through ``CorruptingStore`` without touching files.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapferry.engine import Engine
from snapferry.engine.scrub import scrub
from snapferry.errors import IntegrityError
from snapferry.settings import CHUNK, PAGE
from snapferry.store import CorruptingStore, FaultSchedule, LocalStore

CHUNKS = 3
DISK = 6 * CHUNK


@dataclass
class Region:
    root: Path
    disk: str
    restored: str
    s1: str
    s2: str
    s3: str
    content: dict[str, bytes]
    """Expected bytes of every snapshot and disk, by id."""
    pack_key: str
    """The pack holding S1's objects."""

    def name(self, resource_id: str) -> str:
        """The role of an id in this region, for readable assertion messages."""
        roles = {self.s1: "S1", self.s2: "S2", self.s3: "S3", self.disk: "disk on S3"}
        return roles.get(resource_id, "disk restored from S2")


def _build(root: Path) -> Region:
    rng = _rng()
    with Engine.open(root) as engine:
        disk = engine.create_disk(DISK).id
        model = bytearray(DISK)

        def write(offset: int, data: bytes) -> None:
            engine.write(disk, offset, data)
            model[offset : offset + len(data)] = data

        write(0, rng.randbytes(CHUNKS * CHUNK))
        s1 = engine.create_snapshot(disk).id
        content = {s1: bytes(model)}
        write(CHUNK + 8 * PAGE, rng.randbytes(4 * PAGE))
        write(2 * CHUNK + 100 * PAGE, rng.randbytes(PAGE))
        s2 = engine.create_snapshot(disk).id
        content[s2] = bytes(model)
        write(CHUNK, rng.randbytes(CHUNK))
        s3 = engine.create_snapshot(disk).id
        content[s3] = bytes(model)
        content[disk] = bytes(model)
        restored = engine.restore_disk(s2).id
        content[restored] = content[s2]
        (pack,) = {int(p) for p in engine.maps.node(s1).map.entries["pack"]}
        key = engine.objects.place_of(pack)[0]
    return Region(root, disk, restored, s1, s2, s3, content, key)


def _rng() -> random.Random:
    return random.Random(20240611)


@pytest.fixture
def region(tmp_path: Path) -> Region:
    return _build(tmp_path / "region")


@pytest.fixture
def engine(region: Region) -> Iterator[Engine]:
    with Engine.open(region.root) as opened:
        yield opened


def pack_path(region: Region) -> Path:
    return region.root / "store" / region.pack_key


def flip_middle_byte(region: Region) -> int:
    """Invert the middle byte of S1's pack file, in place; its offset in the pack."""
    path = pack_path(region)
    size = path.stat().st_size
    middle = size // 2
    with path.open("r+b") as f:
        f.seek(middle)
        byte = f.read(1)[0]
        f.seek(middle)
        f.write(bytes([byte ^ 0xFF]))
        f.flush()
        os.fsync(f.fileno())
    return middle


def chunk_at(engine: Engine, region: Region, pack_offset: int) -> int:
    """The chunk of S1 whose object covers the given offset of its pack."""
    entries = engine.maps.node(region.s1).map.entries
    hit = entries[
        (entries["offset"] <= pack_offset) & (pack_offset < entries["offset"] + entries["length"])
    ]
    (chunk,) = {int(c) for c in hit["chunk"]}
    return chunk


def read(engine: Engine, resource: str, offset: int, length: int) -> bytes:
    """Read a snapshot or a disk, whichever the id names."""
    if resource in {d.id for d in engine.list_disks()}:
        return engine.read(resource, offset, length)
    return engine.read_snapshot(resource, offset, length)


def unreadable_chunks(engine: Engine, region: Region) -> set[tuple[str, str, int]]:
    """(resource, id, offset) of every chunk of every snapshot and disk whose read fails."""
    failed = set()
    for resource, ids in (
        ("snapshot", [region.s1, region.s2, region.s3]),
        ("disk", [region.disk, region.restored]),
    ):
        for rid in ids:
            for chunk in range(CHUNKS):
                try:
                    data = read(engine, rid, chunk * CHUNK, CHUNK)
                except IntegrityError:
                    failed.add((resource, rid, chunk * CHUNK))
                else:
                    assert data == region.content[rid][chunk * CHUNK : (chunk + 1) * CHUNK]
    return failed


# --- a byte flipped in a pack file ---------------------------------------------------------------
def test_flipped_byte_fails_reads_that_reach_it_and_names_snapshot_and_offset(
    region: Region,
) -> None:
    middle = flip_middle_byte(region)
    with Engine.open(region.root) as engine:
        chunk = chunk_at(engine, region, middle)
        assert chunk == 1, "the middle of the pack should lie in chunk 1's object"
        offset = chunk * CHUNK
        for sid in (region.s1, region.s2):
            with pytest.raises(IntegrityError) as caught:
                engine.read_snapshot(sid, offset + 16 * PAGE, 8 * PAGE)
            exc = caught.value
            assert exc.details["snapshot"] == sid
            assert exc.details["offset"] == offset
            assert sid in str(exc)
            assert f"offset {offset}" in str(exc)
            # a read spanning good and bad chunks fails whole rather than return some bytes
            with pytest.raises(IntegrityError):
                engine.read_snapshot(sid, 0, CHUNKS * CHUNK)
        with pytest.raises(IntegrityError) as caught:
            engine.read(region.restored, offset, PAGE)
        assert region.restored in str(caught.value)
        assert caught.value.details["offset"] == offset
        # unaffected ranges read exactly
        for rid in (region.s1, region.s2, region.restored):
            for good in (0, 2):
                want = region.content[rid][good * CHUNK : (good + 1) * CHUNK]
                assert read(engine, rid, good * CHUNK, CHUNK) == want
            assert read(engine, rid, CHUNKS * CHUNK, CHUNK) == bytes(CHUNK)
        # S3 rewrote every page of chunk 1: its reads, and the disk's, never reach S1's object
        for rid in (region.s3, region.disk):
            assert read(engine, rid, 0, DISK) == region.content[rid]


def test_scrub_reports_the_flipped_byte_for_the_snapshot_and_everything_reading_through_it(
    region: Region,
) -> None:
    flip_middle_byte(region)
    with Engine.open(region.root) as engine:
        report = scrub(engine)
        assert not report.clean
        assert {p.kind for p in report.problems} == {"corrupt"}
        found = {(p.resource, p.id, p.offset) for p in report.problems}
        assert {
            ("snapshot", region.s1, CHUNK),
            ("snapshot", region.s2, CHUNK),
            ("disk", region.restored, CHUNK),
        } <= found
        assert all(p.offset == CHUNK for p in report.problems)
        assert all(p.detail for p in report.problems)


def test_scrub_reports_exactly_the_chunks_whose_reads_fail(region: Region) -> None:
    """No false alarms: a snapshot whose patch rewrote every page of the chunk (S3), and the
    disk built on it, read it fine, so scrub must not call them damaged."""
    flip_middle_byte(region)
    with Engine.open(region.root) as engine:
        found = {(region.name(p.id), p.offset) for p in scrub(engine).problems}
        failing = {
            (region.name(rid), offset) for _, rid, offset in unreadable_chunks(engine, region)
        }
        assert found == failing


# --- a pack file gone ----------------------------------------------------------------------------
def test_missing_pack_is_reported_missing(region: Region) -> None:
    pack_path(region).unlink()
    with Engine.open(region.root) as engine:
        with pytest.raises(IntegrityError, match="missing") as caught:
            engine.read_snapshot(region.s1, CHUNK, PAGE)
        assert caught.value.details == {"offset": CHUNK, "snapshot": region.s1}
        report = scrub(engine)
        assert {p.kind for p in report.problems} == {"missing"}
        found = {(p.resource, p.id, p.offset) for p in report.problems}
        every_chunk = {("snapshot", region.s1, c * CHUNK) for c in range(CHUNKS)}
        assert every_chunk <= found
        assert ("snapshot", region.s2, 0) in found
        assert all(region.pack_key in p.detail for p in report.problems)


# --- corruption through the store wrapper, no files touched -------------------------------------
def test_every_get_corrupted_fails_every_stored_read_and_scrub_flags_every_object(
    region: Region,
) -> None:
    store = CorruptingStore(LocalStore(region.root / "store"), FaultSchedule(every=1))
    with Engine.open(region.root, store=store) as engine:
        for sid in (region.s1, region.s2, region.s3):
            for chunk in range(CHUNKS):
                with pytest.raises(IntegrityError) as caught:
                    engine.read_snapshot(sid, chunk * CHUNK, PAGE)
                assert caught.value.details == {"offset": chunk * CHUNK, "snapshot": sid}
            assert engine.read_snapshot(sid, CHUNKS * CHUNK, CHUNK) == bytes(CHUNK)
        # scrub reads each pack whole, so the wrapper spoils the object in the middle of each
        report = scrub(engine)
        assert report.objects > 0
        assert {p.kind for p in report.problems} == {"corrupt"}
        found = {(p.resource, p.id, p.offset) for p in report.problems}
        assert ("snapshot", region.s1, CHUNK) in found


def test_intermittent_corruption_never_returns_wrong_bytes(region: Region) -> None:
    store = CorruptingStore(LocalStore(region.root / "store"), FaultSchedule(every=2))
    outcomes: dict[str, list[tuple[str, object]]] = {"ok": [], "error": []}
    # a one-object cache, read round-robin, so every read goes to the store
    with Engine.open(region.root, store=store, cache_bytes=1) as engine:
        for _ in range(4):
            for sid in (region.s1, region.s2):
                for chunk in range(CHUNKS):
                    try:
                        data = engine.read_snapshot(sid, chunk * CHUNK, CHUNK)
                    except IntegrityError as exc:
                        outcomes["error"].append(
                            (str(exc.details["snapshot"]), exc.details["offset"])
                        )
                        assert outcomes["error"][-1] == (sid, chunk * CHUNK)
                    else:
                        assert data == region.content[sid][chunk * CHUNK : (chunk + 1) * CHUNK]
                        outcomes["ok"].append((sid, chunk * CHUNK))
    assert outcomes["ok"], "no read got through: the schedule corrupted everything"
    assert outcomes["error"], "no read was corrupted: the wrapper did nothing"


def test_data_corrupted_on_its_way_into_the_store_is_caught_on_read(tmp_path: Path) -> None:
    root = tmp_path / "region"
    store = CorruptingStore(
        LocalStore(root / "store"), FaultSchedule(ops={"put_if_absent"}, nth={1}), puts=True
    )
    rng = _rng()
    with Engine.open(root, store=store) as engine:
        disk = engine.create_disk(DISK).id
        engine.write(disk, 0, rng.randbytes(2 * CHUNK))
        bad = engine.create_snapshot(disk).id
        assert store.schedule.fired, "the seal's pack was not corrupted"
        engine.write(disk, 4 * CHUNK, rng.randbytes(PAGE))
        good = engine.create_snapshot(disk).id
    with Engine.open(root) as engine:
        with pytest.raises(IntegrityError) as caught:
            engine.read_snapshot(bad, 0, 2 * CHUNK)
        assert caught.value.details["snapshot"] == bad
        assert engine.read_snapshot(good, 4 * CHUNK, PAGE) != bytes(PAGE)
        report = scrub(engine)
        assert {(p.kind, p.id) for p in report.problems if p.resource == "snapshot"} >= {
            ("corrupt", bad),
            ("corrupt", good),
        }
