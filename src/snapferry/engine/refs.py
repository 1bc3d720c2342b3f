"""Every reference the block maps hold to stored objects, gathered in one scan."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from snapferry.engine import blockmap
from snapferry.meta import catalog

REF = np.dtype(
    [
        ("pack", "<i8"),
        ("offset", "<u8"),
        ("length", "<u4"),
        ("chunk", "<u8"),
        ("oid", "u1", (32,)),
        ("owner", "<i8"),
    ]
)


@dataclass(frozen=True)
class References:
    """One row per entry that names an object; ``owners[row["owner"]]`` is its snapshot and
    ``segments`` lists (snapshot, segment) rows by owner index."""

    rows: npt.NDArray[np.void]
    owners: list[tuple[str, int]]

    def live_bytes(self) -> dict[int, int]:
        """Bytes of distinct objects referenced, per pack."""
        if len(self.rows) == 0:
            return {}
        uniq = np.unique(self.rows[["pack", "offset", "length"]])
        packs = uniq["pack"]
        ids, starts = np.unique(packs, return_index=True)
        sums = np.add.reduceat(uniq["length"].astype(np.int64), starts)
        return dict(zip(ids.tolist(), sums.tolist(), strict=True))


def scan(db: Engine) -> References:
    """Read every block-map segment and collect the objects its entries point at."""
    parts = []
    owners: list[tuple[str, int]] = []
    with db.connect() as conn:
        for snapshot_id, segment, blob in catalog.all_segments(conn):
            entries = blockmap.decode_segment(blob)
            entries = entries[entries["pack"] >= 0]
            if len(entries) == 0:
                continue
            rows = np.zeros(len(entries), dtype=REF)
            for name in ("pack", "offset", "length", "chunk", "oid"):
                rows[name] = entries[name]
            rows["owner"] = len(owners)
            owners.append((snapshot_id, segment))
            parts.append(rows)
    rows = np.concatenate(parts) if parts else np.zeros(0, dtype=REF)
    return References(rows, owners)
