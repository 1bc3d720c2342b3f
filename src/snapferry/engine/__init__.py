"""The storage engine: disks, snapshots, block maps, diffs, restores, GC, scrub.

Nouns: a *head generation* holds the pages written to a disk since its last snapshot (overlay
files plus page bitmaps); a *snapshot* seals a frozen head into a block-map *delta* of chunk
*versions* (full or patch) against its lineage *parent*; versions live in *bundles* framed by the
codec and appended to *packs* in the chunk store. ``Engine`` is the entry point; ``gc``,
``scrub``, ``compact`` and ``images`` are maintenance and bulk-transfer passes over an Engine.
"""

from snapferry.engine.core import Engine
from snapferry.engine.diff import Diff
from snapferry.engine.models import DiskInfo, SnapshotInfo

__all__ = ["Diff", "DiskInfo", "Engine", "SnapshotInfo"]
