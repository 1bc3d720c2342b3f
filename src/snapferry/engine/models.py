"""What the engine hands back: plain, frozen descriptions of disks and snapshots."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DiskInfo:
    """A disk. ``source_snapshot_id`` is the snapshot it was restored from, if any."""

    id: str
    size_bytes: int
    family_id: str
    created_at: float
    source_snapshot_id: str | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot. ``parent_id`` is the snapshot its content is a delta against (for the first
    snapshot of a restored disk: the snapshot the disk came from). State is ``sealing`` while its
    pages are being stored and ``ready`` after."""

    id: str
    disk_id: str | None
    family_id: str
    parent_id: str | None
    size_bytes: int
    incremental: bool
    state: str
    created_at: float
    seq: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
