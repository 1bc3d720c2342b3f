"""Every ChunkStore backend, and the wrappers around one, keep the same contract."""

from __future__ import annotations

from pathlib import Path

from snapferry.store import (
    ChunkStore,
    CountingStore,
    FailingStore,
    FaultSchedule,
    LocalStore,
    MemoryStore,
)
from snapferry.store.zoned import ZonedStore
from snapferry.testing.store_contract import ChunkStoreContract


class TestLocalStore(ChunkStoreContract):
    def make_store(self, tmp_path: Path) -> ChunkStore:
        return LocalStore(tmp_path / "store")


class TestMemoryStore(ChunkStoreContract):
    def make_store(self, tmp_path: Path) -> ChunkStore:
        return MemoryStore()


class TestWrappedLocalStore(ChunkStoreContract):
    """Wrappers whose schedule never fires must be invisible."""

    def make_store(self, tmp_path: Path) -> ChunkStore:
        return CountingStore(FailingStore(LocalStore(tmp_path / "store"), FaultSchedule()))


class TestZonedLocalStore(ChunkStoreContract):
    def make_store(self, tmp_path: Path) -> ChunkStore:
        return ZonedStore({z: LocalStore(tmp_path / "zones" / z) for z in ("1", "2", "3")})


class TestZonedStoreWithAZoneDown(ChunkStoreContract):
    """Two of three zones answering is invisible to a caller."""

    def make_store(self, tmp_path: Path) -> ChunkStore:
        down = FailingStore(MemoryStore(), FaultSchedule(every=1))
        return ZonedStore({"1": down, "2": MemoryStore(), "3": MemoryStore()})
