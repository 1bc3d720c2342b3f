"""The space reserve: headroom kept free on the filesystem of a region's data directory (its
overlays, packs and database) that only deletions, metadata commits and recovery may use.

New data — page writes, snapshots, restores, incoming copies — is refused up front with
``StorageFull`` once taking it would leave less free than the reserve: the reserve is what lets a
full region still record a DELETE and free space.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from snapferry.errors import StorageFull

MiB = 1024 * 1024
DEFAULT_PERCENT = 1.0
DEFAULT_MIB = 256


@dataclass(frozen=True)
class Reserve:
    """Keeps ``percent`` of the filesystem under ``path`` free, but never more than ``most_mib``
    MiB (a big filesystem need not idle a percent of itself)."""

    path: Path
    percent: float = DEFAULT_PERCENT
    most_mib: int = DEFAULT_MIB

    def free(self) -> tuple[int, int]:
        """Bytes free to this process, and the bytes kept back, now."""
        st = os.statvfs(self.path)
        total = st.f_blocks * st.f_frsize
        kept = min(int(total * self.percent / 100), self.most_mib * MiB)
        return st.f_bavail * st.f_frsize, kept

    def check(self, incoming: int = 0) -> None:
        """StorageFull unless ``incoming`` more bytes leave the reserve untouched."""
        free, kept = self.free()
        if free - incoming < kept:
            raise StorageFull(
                f"the region's storage is full: {free // MiB} MiB free, {kept // MiB} MiB of it "
                "kept for deletions and recovery; deleting disks or snapshots frees space",
                free_bytes=free,
                reserve_bytes=kept,
            )
