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
