"""Rejected requests: the right error class, a message that says what was wrong, nothing changed.

Every case runs against the same region — two families, a deleted snapshot, data on both disks —
and compares everything a user can observe (disks, snapshots, their bytes, the stored packs, the
disks' unsnapshotted pages) before and after the refused call.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from snapferry.engine import Engine
from snapferry.errors import IntegrityError, InvalidInput, NotFound, SnapferryError
from snapferry.settings import CHUNK, MAX_DISK_BYTES, PAGE, SECTOR
from snapferry.store import CountingStore, LocalStore

SIZE = 8 * 1024 * 1024
UNKNOWN = "0" * 32


@dataclass(frozen=True)
class Region:
    disk: str
    """Family A's disk; its snapshots are ``a1`` then ``a2``, and ``gone`` (between them) was
    deleted."""
    a1: str
    a2: str
    gone: str
    other_disk: str
    """Family B's disk, with snapshot ``b1``."""
    b1: str


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine.open(tmp_path / "region") as opened:
        yield opened


@pytest.fixture
def region(engine: Engine) -> Region:
    disk = engine.create_disk(SIZE).id
    engine.write(disk, 0, os.urandom(64 * 1024))
    a1 = engine.create_snapshot(disk).id
    engine.write(disk, CHUNK - PAGE, os.urandom(2 * PAGE))
    gone = engine.create_snapshot(disk).id
    engine.write(disk, 3 * PAGE, os.urandom(PAGE))
    a2 = engine.create_snapshot(disk).id
    engine.delete_snapshot(gone)
    engine.write(disk, SIZE - PAGE, os.urandom(PAGE))  # unsnapshotted pages in the head
    other = engine.create_disk(SIZE).id
    engine.write(other, SECTOR, os.urandom(SECTOR))
    b1 = engine.create_snapshot(other).id
    return Region(disk, a1, a2, gone, other, b1)


def observable(engine: Engine) -> dict[str, object]:
    """Everything a refused request must leave alone."""
    engine.trash.drain()  # deferred clean-ups of earlier snapshots are not the request's doing

    def sha(parts: Iterator[bytes]) -> str:
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        return digest.hexdigest()

    disks = engine.list_disks()
    snapshots = engine.list_snapshots()
    with engine.db.connect() as conn:
        heads = conn.execute(text("SELECT * FROM head_pages ORDER BY disk_id, gen, chunk")).all()
        packs = conn.execute(text("SELECT * FROM packs ORDER BY id")).all()
    return {
        "disks": [d.to_dict() for d in disks],
        "snapshots": [s.to_dict() for s in snapshots],
        "disk bytes": {d.id: sha(engine.iter_read(d.id, 0, d.size_bytes)) for d in disks},
        "snapshot bytes": {
            s.id: sha(engine.iter_read_snapshot(s.id, 0, s.size_bytes)) for s in snapshots
        },
        "head pages": [tuple(r) for r in heads],
        "packs": [tuple(r) for r in packs],
        "store": sorted(engine.store.keys()),
    }


def ill(value: object) -> Any:
    """An argument of the wrong type, passed on purpose."""
    return value


Call = Callable[[Engine, Region], object]
CASES: list[tuple[str, Call, type[SnapferryError], str]] = [
    # writes
    (
        "write misaligned offset",
        lambda e, r: e.write(r.disk, 100, bytes(512)),
        InvalidInput,
        "aligned",
    ),
    (
        "write misaligned length",
        lambda e, r: e.write(r.disk, 0, bytes(100)),
        InvalidInput,
        "aligned",
    ),
    ("write negative offset", lambda e, r: e.write(r.disk, -512, bytes(512)), InvalidInput, "-512"),
    (
        "write at the end",
        lambda e, r: e.write(r.disk, SIZE, bytes(512)),
        InvalidInput,
        "past the end",
    ),
    (
        "write across the end",
        lambda e, r: e.write(r.disk, SIZE - 512, bytes(1024)),
        InvalidInput,
        "past the end",
    ),
    (
        "write far past the end",
        lambda e, r: e.write(r.disk, 2**62, bytes(512)),
        InvalidInput,
        "past the end",
    ),
    (
        "write float offset",
        lambda e, r: e.write(r.disk, ill(512.0), bytes(512)),
        InvalidInput,
        "offset",
    ),
    (
        "write_many with one bad write",
        lambda e, r: e.write_many(r.disk, [(0, b"\x01" * 512), (100, b"\x02" * 512)]),
        InvalidInput,
        "aligned",
    ),
    ("write unknown disk", lambda e, r: e.write(UNKNOWN, 0, bytes(512)), NotFound, UNKNOWN),
    # reads
    ("read misaligned offset", lambda e, r: e.read(r.disk, 1, 512), InvalidInput, "aligned"),
    ("read misaligned length", lambda e, r: e.read(r.disk, 0, 513), InvalidInput, "aligned"),
    ("read negative offset", lambda e, r: e.read(r.disk, -512, 512), InvalidInput, "-512"),
    ("read negative length", lambda e, r: e.read(r.disk, 512, -512), InvalidInput, "-512"),
    (
        "read past the end",
        lambda e, r: e.read(r.disk, SIZE - 512, 1024),
        InvalidInput,
        "past the end",
    ),
    ("read float length", lambda e, r: e.read(r.disk, 0, ill(512.0)), InvalidInput, "length"),
    ("read unknown disk", lambda e, r: e.read(UNKNOWN, 0, 512), NotFound, UNKNOWN),
    (
        "read snapshot misaligned",
        lambda e, r: e.read_snapshot(r.a1, 256, 512),
        InvalidInput,
        "aligned",
    ),
    (
        "read snapshot past the end",
        lambda e, r: e.read_snapshot(r.a1, SIZE, 512),
        InvalidInput,
        "past the end",
    ),
    ("read unknown snapshot", lambda e, r: e.read_snapshot(UNKNOWN, 0, 512), NotFound, UNKNOWN),
    ("read deleted snapshot", lambda e, r: e.read_snapshot(r.gone, 0, 512), NotFound, "not found"),
    # disk sizes
    ("create zero bytes", lambda e, r: e.create_disk(0), InvalidInput, "positive multiple of 512"),
    ("create negative", lambda e, r: e.create_disk(-512), InvalidInput, "positive multiple of 512"),
    ("create 1000 bytes", lambda e, r: e.create_disk(1000), InvalidInput, "multiple of 512"),
    ("create 511 bytes", lambda e, r: e.create_disk(511), InvalidInput, "multiple of 512"),
    (
        "create over 32 TiB",
        lambda e, r: e.create_disk(MAX_DISK_BYTES + SECTOR),
        InvalidInput,
        "32 TiB",
    ),
    ("create True bytes", lambda e, r: e.create_disk(True), InvalidInput, "integer"),
    ("create False bytes", lambda e, r: e.create_disk(False), InvalidInput, "integer"),
    ("create float bytes", lambda e, r: e.create_disk(ill(1048576.0)), InvalidInput, "integer"),
    ("create string bytes", lambda e, r: e.create_disk(ill("1048576")), InvalidInput, "integer"),
    ("create None bytes", lambda e, r: e.create_disk(ill(None)), InvalidInput, "integer"),
    # resizing
    ("shrink", lambda e, r: e.resize_disk(r.disk, SIZE - SECTOR), InvalidInput, "only grow"),
    ("resize misaligned", lambda e, r: e.resize_disk(r.disk, SIZE + 100), InvalidInput, "512"),
    (
        "resize over 32 TiB",
        lambda e, r: e.resize_disk(r.disk, 2 * MAX_DISK_BYTES),
        InvalidInput,
        "32 TiB",
    ),
    ("resize to True", lambda e, r: e.resize_disk(r.disk, True), InvalidInput, "integer"),
    ("resize unknown disk", lambda e, r: e.resize_disk(UNKNOWN, 2 * SIZE), NotFound, UNKNOWN),
    # snapshots, restores, diffs
    ("snapshot unknown disk", lambda e, r: e.create_snapshot(UNKNOWN), NotFound, UNKNOWN),
    (
        "restore smaller",
        lambda e, r: e.restore_disk(r.a2, SIZE - SECTOR),
        InvalidInput,
        "at least",
    ),
    ("restore misaligned size", lambda e, r: e.restore_disk(r.a2, SIZE + 1), InvalidInput, "512"),
    (
        "restore float size",
        lambda e, r: e.restore_disk(r.a2, ill(float(SIZE))),
        InvalidInput,
        "integer",
    ),
    ("restore unknown", lambda e, r: e.restore_disk(UNKNOWN), NotFound, UNKNOWN),
    ("restore deleted", lambda e, r: e.restore_disk(r.gone), NotFound, "not found"),
    ("diff across families", lambda e, r: e.diff(r.a1, r.b1), InvalidInput, "same family"),
    ("diff unknown base", lambda e, r: e.diff(UNKNOWN, r.a2), NotFound, UNKNOWN),
    ("diff deleted base", lambda e, r: e.diff(r.gone, r.a2), NotFound, "not found"),
    ("delete deleted snapshot", lambda e, r: e.delete_snapshot(r.gone), NotFound, "not found"),
    ("delete unknown snapshot", lambda e, r: e.delete_snapshot(UNKNOWN), NotFound, UNKNOWN),
    ("delete unknown disk", lambda e, r: e.delete_disk(UNKNOWN), NotFound, UNKNOWN),
    ("get unknown disk", lambda e, r: e.get_disk(UNKNOWN), NotFound, UNKNOWN),
    ("get deleted snapshot", lambda e, r: e.get_snapshot(r.gone), NotFound, "not found"),
]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [pytest.param(call, error, match, id=name) for name, call, error, match in CASES],
)
def test_refused_request_says_why_and_changes_nothing(
    engine: Engine, region: Region, call: Call, error: type[SnapferryError], match: str
) -> None:
    before = observable(engine)
    with pytest.raises(error, match=match) as caught:
        call(engine, region)
    assert type(caught.value) is error
    assert caught.value.message == str(caught.value)
    assert observable(engine) == before


def test_deleting_a_deleted_snapshot_again_after_reopening_is_still_not_found(
    tmp_path: Path,
) -> None:
    with Engine.open(tmp_path) as engine:
        disk = engine.create_disk(SIZE).id
        engine.write(disk, 0, b"\x07" * PAGE)
        sid = engine.create_snapshot(disk).id
        engine.delete_snapshot(sid)  # the disk still builds on it: kept, hidden
    with Engine.open(tmp_path) as engine:
        before = observable(engine)
        with pytest.raises(NotFound, match=sid):
            engine.delete_snapshot(sid)
        assert observable(engine) == before
        assert engine.read(disk, 0, PAGE) == b"\x07" * PAGE


# --- the largest disk -------------------------------------------------------------------------
def disk_usage(root: Path) -> int:
    """Bytes actually allocated under root (sparse files count only their data). Files and
    directories the background trash removes meanwhile are skipped, not an error."""
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(directory, name)).st_blocks * 512
    return total


def test_largest_disk_is_created_at_once_and_costs_only_metadata(tmp_path: Path) -> None:
    root = tmp_path / "region"
    store = CountingStore(LocalStore(root / "store"))
    with Engine.open(root, store=store) as engine:
        baseline = disk_usage(root)
        started = time.monotonic()
        disk = engine.create_disk(MAX_DISK_BYTES)
        assert time.monotonic() - started < 1.0
        assert disk.size_bytes == MAX_DISK_BYTES
        assert list(store.keys()) == []
        assert sum(store.calls.values()) == 1  # only the keys() just above
        assert disk_usage(root) - baseline < 1024 * 1024
        for offset in (0, MAX_DISK_BYTES // 2 + 7 * SECTOR, MAX_DISK_BYTES - CHUNK):
            assert engine.read(disk.id, offset, CHUNK) == bytes(CHUNK)
        # one page at the very end: the head, the snapshot and the pack cost that page
        page = os.urandom(PAGE)
        engine.write(disk.id, MAX_DISK_BYTES - PAGE, page)
        snapshot = engine.create_snapshot(disk.id)
        assert engine.read_snapshot(snapshot.id, MAX_DISK_BYTES - PAGE, PAGE) == page
        assert engine.read_snapshot(snapshot.id, 0, CHUNK) == bytes(CHUNK)
        assert engine.allocated(snapshot.id) == [(MAX_DISK_BYTES - PAGE, PAGE)]
        assert store.nbytes["put_if_absent"] < 64 * 1024
        assert disk_usage(root) - baseline < 2 * 1024 * 1024


def test_opening_a_region_where_none_can_be_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(InvalidInput, match="cannot open a region"):
        Engine.open(blocker / "region")


def test_a_damaged_metadata_database_is_an_integrity_error(tmp_path: Path) -> None:
    (tmp_path / "meta.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IntegrityError, match="metadata database"):
        Engine.open(tmp_path)
    Engine.open(tmp_path / "elsewhere").close()  # the failed open released nothing it held
