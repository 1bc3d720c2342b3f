"""Seals the storage refuses are postponed, never lost: a region whose store has no room opens,
its disks read every acknowledged byte meanwhile, a disk whose snapshot waits to seal can be
deleted, and the snapshot seals, byte-exact, once the store takes data again."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from snapferry.engine import Engine
from snapferry.settings import CHUNK
from snapferry.store import FailingStore, FaultSchedule, LocalStore


def no_room(message: str) -> OSError:
    return OSError(errno.ENOSPC, f"No space left on device ({message})")


def refusing(root: Path, fault: type[Exception] | None = None) -> FailingStore:
    schedule = FaultSchedule(ops=["put_if_absent"], every=1)
    if fault is None:
        return FailingStore(LocalStore(root / "store"), schedule, no_room)
    return FailingStore(LocalStore(root / "store"), schedule, fault)


def test_a_seal_without_room_waits_and_its_disk_can_go(tmp_path: Path) -> None:
    data = np.random.default_rng(5).bytes(3 * CHUNK)
    with Engine.open(tmp_path, store=refusing(tmp_path)) as engine:
        disk = engine.create_disk(4 * CHUNK).id
        engine.write(disk, 0, data)
        snap = engine.freeze_snapshot(disk).id
        with pytest.raises(OSError, match="No space"):
            engine.seal_pending(disk)
    with Engine.open(tmp_path, store=refusing(tmp_path)) as engine:  # opens all the same
        assert engine.get_snapshot(snap).state == "sealing"
        assert engine.read(disk, 0, 3 * CHUNK) == data  # through the frozen pages
        engine.write(disk, 3 * CHUNK, b"\x07" * 4096)
        engine.delete_disk(disk)  # the seal waits; the disk goes now
        assert engine.finish_pending() == 1
    with Engine.open(tmp_path, store=refusing(tmp_path)) as engine:  # a restart keeps it
        assert engine.get_snapshot(snap).state == "sealing"
    with Engine.open(tmp_path) as engine:  # the store takes data again: sealed at open
        assert engine.get_snapshot(snap).state == "ready"
        assert engine.read_snapshot(snap, 0, 4 * CHUNK) == data + bytes(CHUNK)
        with engine.db.connect() as conn:
            rows = conn.exec_driver_sql("SELECT count(*) FROM head_pages").scalar_one()
        assert rows == 0  # nothing of the deleted disk's head is left
    assert not any((tmp_path / "heads").rglob("*.ovl"))


def test_a_seal_failing_otherwise_still_stops_the_disks_deletion(tmp_path: Path) -> None:
    """Only a storage fault is postponed: any other failure is not hidden."""
    with Engine.open(tmp_path, store=refusing(tmp_path, RuntimeError)) as engine:
        disk = engine.create_disk(CHUNK).id
        engine.write(disk, 0, b"\x01" * 4096)
        engine.freeze_snapshot(disk)
        with pytest.raises(RuntimeError, match="injected fault"):
            engine.delete_disk(disk)
        assert engine.get_disk(disk).size_bytes == CHUNK
