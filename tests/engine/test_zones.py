"""A region with zones keeps every pack in each zone's store and loses nothing when one zone's
store is deleted, corrupted or unreachable: reads, restores and the frames a copy ships come
out byte-identical, the damaged zone is mended, and ``repair`` brings a lost zone back.

Damage is done for real (files removed, bytes flipped) or through ``FailingStore``.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapferry.engine import Engine
from snapferry.engine.scrub import scrub
from snapferry.engine.zones import repair, zone_root
from snapferry.errors import InvalidInput, StoreError, ZoneUnavailable
from snapferry.meta import catalog
from snapferry.settings import CHUNK
from snapferry.store import FailingStore, FaultSchedule, LocalStore, MemoryStore
from snapferry.store.zoned import ZonedStore

ZONES = ("1", "2", "3")
DISK = 4 * CHUNK


@dataclass
class Region:
    root: Path
    disk: str
    snapshots: list[str]
    content: dict[str, bytes]
    """What each snapshot holds."""


def _packs(root: Path, zone: str) -> dict[str, bytes]:
    """Zone ``zone``'s stored packs: key → bytes."""
    base = zone_root(root, zone)
    return {
        str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()
    }


def _build(root: Path, zones: tuple[str, ...] | None = ZONES) -> Region:
    rng = random.Random(13)
    with Engine.open(root, zones=zones) as engine:
        disk = engine.create_disk(DISK).id
        model = bytearray(DISK)
        snapshots, content = [], {}
        for step in range(3):
            at = rng.randrange(0, DISK - CHUNK, 4096)
            data = rng.randbytes(CHUNK + (step + 1) * 8192)
            data = data[: min(len(data), DISK - at)]
            engine.write(disk, at, data)
            model[at : at + len(data)] = data
            snap = engine.create_snapshot(disk).id
            snapshots.append(snap)
            content[snap] = bytes(model)
    return Region(root, disk, snapshots, content)


@pytest.fixture
def region(tmp_path: Path) -> Region:
    return _build(tmp_path / "eastus")


def _reads_back(engine: Engine, region: Region) -> None:
    for snap, expected in region.content.items():
        assert engine.read_snapshot(snap, 0, DISK) == expected
    restored = engine.restore_disk(region.snapshots[-1]).id
    assert engine.read(restored, 0, DISK) == region.content[region.snapshots[-1]]


def test_every_pack_is_in_every_zone(region: Region) -> None:
    held = [_packs(region.root, z) for z in ZONES]
    assert held[0] and held[0] == held[1] == held[2]
    assert not (region.root / "store").exists()


def test_a_deleted_zone_loses_nothing_and_repair_refills_it(region: Region) -> None:
    shutil.rmtree(zone_root(region.root, "1"))  # the zone reads go to first

    with Engine.open(region.root) as engine:  # the zones come from the region's database
        assert isinstance(engine.store, ZonedStore) and list(engine.store.zones) == list(ZONES)
        _reads_back(engine, region)
        disk = engine.create_disk(CHUNK).id  # writes go on with two zones of three
        engine.write(disk, 0, b"\x07" * CHUNK)
        engine.create_snapshot(disk)
        assert not zone_root(region.root, "1").exists()  # a lost zone is not silently recreated

        report = repair(engine)
        assert report.clean and report.copied == {"1": report.packs}
        assert _packs(region.root, "1") == _packs(region.root, "2")
        assert repair(engine).copied == {}  # nothing left to do
        _reads_back(engine, region)


def test_a_corrupted_zone_is_read_around_and_mended_by_scrub(region: Region) -> None:
    good = _packs(region.root, "2")
    for path in zone_root(region.root, "1").rglob("*"):
        if path.is_file():
            data = bytearray(path.read_bytes())
            for at in range(0, len(data), 4096):
                data[at] ^= 0xFF
            path.write_bytes(bytes(data))

    with Engine.open(region.root) as engine:
        _reads_back(engine, region)
        engine.trash.drain()
        # a read checks one frame, not the whole copy it came from: it never overwrites a
        # zone's copy (that copy may hold the only good bytes of another frame) — scrub does
        assert _packs(region.root, "1") != good
        report = scrub(engine)
        assert report.clean and report.zone_damage.keys() == {"1"}
        assert _packs(region.root, "1") == good


def test_a_zone_missing_a_pack_gets_it_from_a_read(region: Region) -> None:
    good = _packs(region.root, "2")
    for path in zone_root(region.root, "1").rglob("*"):  # the zone reads ask first
        if path.is_file():
            path.unlink()
    with Engine.open(region.root) as engine:
        _reads_back(engine, region)
        engine.trash.drain()  # copies into the zone run in the background
        assert _packs(region.root, "1") == good


def test_frames_a_copy_ships_are_the_ones_that_verify(region: Region) -> None:
    with Engine.open(region.root) as engine:
        snap = region.snapshots[0]
        oids = sorted(engine.referenced_frames([snap]))
        expected = engine.read_frames(snap, oids)
    for path in zone_root(region.root, "1").rglob("*"):
        if path.is_file():
            path.write_bytes(bytes(b ^ 0x5A for b in path.read_bytes()))
    with Engine.open(region.root) as engine:
        assert engine.read_frames(snap, oids) == expected


def test_scrub_counts_and_mends_a_damaged_zone_without_a_problem(region: Region) -> None:
    victim = next(iter(_packs(region.root, "3")))
    path = zone_root(region.root, "3") / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with Engine.open(region.root) as engine:
        report = scrub(engine)
        assert report.clean, report.problems
        assert report.zone_damage == {"3": 1} and report.mended == 1
        assert scrub(engine).zone_damage == {}
    assert _packs(region.root, "3") == _packs(region.root, "1")


def test_damage_in_every_zone_is_a_problem_never_wrong_bytes(region: Region) -> None:
    for zone in ZONES:
        for path in zone_root(region.root, zone).rglob("*"):
            if path.is_file():
                data = bytearray(path.read_bytes())
                data[len(data) // 2] ^= 0xFF
                path.write_bytes(bytes(data))
    with Engine.open(region.root) as engine:
        report = scrub(engine)
        assert not report.clean and {p.kind for p in report.problems} == {"corrupt"}


def test_a_zone_down_while_writing_is_filled_by_repair(tmp_path: Path) -> None:
    root = tmp_path / "eastus"
    down = FaultSchedule(every=1)
    zones = {z: LocalStore(zone_root(root, z)) for z in ZONES}
    store = ZonedStore({**zones, "3": FailingStore(zones["3"], down, StoreError)})
    with Engine.open(root, store=store) as engine:
        disk = engine.create_disk(CHUNK).id
        engine.write(disk, 0, b"\x42" * CHUNK)
        snap = engine.create_snapshot(disk).id
        assert _packs(root, "3") == {} and _packs(root, "1")
        down.limit = 0  # the zone is back
        report = repair(engine)
        assert report.copied == {"3": len(_packs(root, "1"))}
        assert _packs(root, "3") == _packs(root, "1")
        assert engine.read_snapshot(snap, 0, CHUNK) == b"\x42" * CHUNK


def test_two_zones_down_refuse_a_write_to_the_store() -> None:
    schedule = FaultSchedule(every=1)
    store = ZonedStore(
        {
            "1": MemoryStore(),
            "2": FailingStore(MemoryStore(), schedule, StoreError),
            "3": FailingStore(MemoryStore(), schedule, StoreError),
        }
    )
    with pytest.raises(StoreError):
        store.put_if_absent("packs/ab/x", b"data")


def test_repair_removes_what_a_zone_kept_that_nothing_names(region: Region) -> None:
    stray = zone_root(region.root, "2") / "packs" / "ff" / ("f" * 32)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"left behind by a deletion while the zone was down")
    with Engine.open(region.root) as engine:
        report = repair(engine)
        assert report.removed == {"2": 1} and report.copied == {}
    assert not stray.exists()


def test_a_region_gaining_zones_moves_its_store_into_the_first(tmp_path: Path) -> None:
    region = _build(tmp_path / "westus", zones=None)
    single = {
        str(p.relative_to(region.root / "store")): p.read_bytes()
        for p in (region.root / "store").rglob("*")
        if p.is_file()
    }
    with Engine.open(region.root, zones=ZONES) as engine:
        assert _packs(region.root, "1") == single
        _reads_back(engine, region)
        repair(engine)
    assert _packs(region.root, "2") == _packs(region.root, "3") == single


def test_zones_cannot_be_dropped(region: Region) -> None:
    with pytest.raises(InvalidInput, match="zones can be added to, not removed"):
        Engine.open(region.root, zones=("1", "2"))
    with Engine.open(region.root, zones=(*ZONES, "4")) as engine:  # added: filled by repair
        assert repair(engine).copied["4"] >= 1


# --- locally redundant snapshots in a region with zones ------------------------------------
def _lrs_region(root: Path) -> tuple[Region, str]:
    """A region with zones whose disk has an LRS snapshot in zone 2 (the first of the family)
    and then ZRS snapshots; the LRS snapshot's id."""
    rng = random.Random(3)
    with Engine.open(root, zones=ZONES) as engine:
        disk = engine.create_disk(DISK).id
        first = rng.randbytes(2 * CHUNK)
        engine.write(disk, 0, first)
        lrs = engine.create_snapshot(disk, zone="2").id
        content = {lrs: first + bytes(DISK - 2 * CHUNK)}
    return Region(root, disk, [lrs], content), lrs


def test_an_lrs_snapshot_lives_in_its_zone_alone_and_is_unavailable_without_it(
    tmp_path: Path,
) -> None:
    region, lrs = _lrs_region(tmp_path / "eastus")
    assert (
        _packs(region.root, "2") and not _packs(region.root, "1") and not _packs(region.root, "3")
    )
    saved = tmp_path / "zone-2-backup"
    shutil.copytree(zone_root(region.root, "2"), saved)
    shutil.rmtree(zone_root(region.root, "2"))

    with Engine.open(region.root) as engine:
        with pytest.raises(ZoneUnavailable, match="zone 2"):
            engine.read_snapshot(lrs, 0, CHUNK)
        with pytest.raises(ZoneUnavailable):
            engine.read(engine.restore_disk(lrs).id, 0, CHUNK)
        report = repair(engine)
        lost = sum(1 for p in saved.rglob("*") if p.is_file())
        assert not report.clean and report.lost == {"2": lost}
    shutil.copytree(saved, zone_root(region.root, "2"), dirs_exist_ok=True)  # the zone is back
    with Engine.open(region.root) as engine:
        assert engine.read_snapshot(lrs, 0, DISK) == region.content[lrs]
        assert repair(engine).clean


def test_a_zrs_snapshot_hardens_the_lrs_data_it_reads_through(tmp_path: Path) -> None:
    region, lrs = _lrs_region(tmp_path / "eastus")
    with Engine.open(region.root) as engine:
        engine.write(region.disk, 3 * CHUNK, b"\x11" * 8192)  # the ZRS child changes little
        zrs = engine.create_snapshot(region.disk).id  # reads chunks 0 and 1 through the LRS one
        expected = region.content[lrs][: 3 * CHUNK] + b"\x11" * 8192
        expected += bytes(DISK - len(expected))
    held = [_packs(region.root, z) for z in ZONES]
    assert held[1] and held[0] == held[1] == held[2]  # the LRS snapshot's packs spread too
    shutil.rmtree(zone_root(region.root, "2"))
    with Engine.open(region.root) as engine:
        assert engine.read_snapshot(zrs, 0, DISK) == expected
        assert engine.read_snapshot(lrs, 0, DISK) == region.content[lrs]


def test_copying_a_full_lrs_snapshot_to_zrs_hardens_it(tmp_path: Path) -> None:
    root = tmp_path / "eastus"
    with Engine.open(root, zones=ZONES) as engine:
        disk = engine.create_disk(CHUNK).id
        engine.write(disk, 0, b"\x33" * CHUNK)
        full = engine.create_snapshot(disk, incremental=False, zone="3").id
        assert not _packs(root, "1")
        copy = engine.copy_snapshot(full).id
        assert _packs(root, "1") == _packs(root, "2") == _packs(root, "3")
    shutil.rmtree(zone_root(root, "3"))
    with Engine.open(root) as engine:
        assert engine.read_snapshot(copy, 0, CHUNK) == b"\x33" * CHUNK


def test_a_zone_must_be_one_of_the_regions(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "eastus", zones=ZONES) as engine:
        disk = engine.create_disk(CHUNK).id
        with pytest.raises(InvalidInput, match="not one of this region's zones"):
            engine.create_snapshot(disk, zone="9")
        assert engine.list_snapshots() == []
    with Engine.open(tmp_path / "westus") as engine:
        disk = engine.create_disk(CHUNK).id
        with pytest.raises(InvalidInput, match="it has none"):
            engine.create_snapshot(disk, zone="1")


def test_repair_removes_copies_of_an_lrs_pack_outside_its_zone(tmp_path: Path) -> None:
    region, _ = _lrs_region(tmp_path / "eastus")
    for key, data in _packs(region.root, "2").items():
        stray = zone_root(region.root, "1") / key
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(data)
    with Engine.open(region.root) as engine:
        report = repair(engine)
        assert report.removed == {"1": len(_packs(region.root, "2"))} and report.clean
    assert not _packs(region.root, "1")


def test_a_fold_that_reparents_keeps_what_a_zrs_snapshot_reads_zone_redundant(
    tmp_path: Path,
) -> None:
    """Found by the engine's model test: A and A2 (full, zone 2) <- B (full, ZRS) <- C (zone 1)
    <- D (ZRS). Deleting B and then A2 folds them into C, whose lineage then reaches A — never
    hardened, as B read through A2 alone: so does D's, and nothing a ZRS snapshot's lineage
    names may be kept in one zone (the rule the model test checks)."""
    root = tmp_path / "eastus"
    with Engine.open(root, zones=ZONES) as engine:
        disk = engine.create_disk(2 * CHUNK).id
        engine.write(disk, 0, b"\x01" * CHUNK)
        engine.create_snapshot(disk, incremental=False, zone="2")
        engine.write(disk, 0, b"\x05" * CHUNK)  # A2 names none of A's packs
        a2 = engine.create_snapshot(disk, incremental=False, zone="2").id
        engine.write(disk, CHUNK, b"\x02" * 4096)
        b = engine.create_snapshot(disk, incremental=False).id
        engine.write(disk, CHUNK, b"\x03" * 4096)
        engine.create_snapshot(disk, zone="1")
        engine.write(disk, CHUNK + 4096, b"\x04" * 4096)
        d = engine.create_snapshot(disk).id
        expected = engine.read_snapshot(d, 0, 2 * CHUNK)
        engine.delete_snapshot(b)
        engine.delete_snapshot(a2)
        lineage = engine.maps.lineage(d)
        assert len(lineage) == 3  # D, C and now A
        packs = {p for node in lineage for p in node.map.entries["pack"].tolist() if p >= 0}
        with engine.db.connect() as conn:
            assert catalog.zonal_packs(conn, sorted(packs)) == {}
        assert engine.read_snapshot(d, 0, 2 * CHUNK) == expected
    shutil.rmtree(zone_root(root, "2"))
    shutil.rmtree(zone_root(root, "1"))  # and C's zone: D needs neither
    with Engine.open(root) as engine:
        assert engine.read_snapshot(d, 0, 2 * CHUNK) == expected
