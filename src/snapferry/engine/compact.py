"""Compaction: rewrite long patch chains as full versions, off the snapshot's critical path.

Reading a chunk overlays its versions newest first, so each link of a chain costs a read. This pass
walks snapshots oldest first, computes each patch's exact chain depth, and replaces a patch with a
full version of the chunk when the depth passes ``max_depth`` or the patch already covers most of
the chunk. The entry keeps its ``written`` pages, so diffs do not change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from snapferry.engine import bitmaps, blockmap, bundles
from snapferry.engine.base import segment_blobs
from snapferry.engine.core import Engine
from snapferry.engine.maps import Node, chain_depth
from snapferry.engine.objects import PackWriter
from snapferry.engine.resolve import View
from snapferry.engine.versions import write_full
from snapferry.errors import NotFound
from snapferry.meta import catalog
from snapferry.settings import PAGES_PER_CHUNK

DEFAULT_MAX_DEPTH = 8
DEFAULT_COVERAGE = 0.75


@dataclass
class CompactReport:
    snapshots: int = 0
    compacted: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def compact(
    engine: Engine, max_depth: int = DEFAULT_MAX_DEPTH, coverage: float = DEFAULT_COVERAGE
) -> CompactReport:
    """One compaction pass over every snapshot. Safe to interrupt and repeat.

    The engine lock is held only to commit a snapshot's new map, so a serving region goes on
    meanwhile: each snapshot's full versions are written without it, and committed only if the
    snapshot's map is still the one they were made from (a fold or a repack that changed it
    meanwhile leaves that snapshot to the next pass, and its new versions are deleted)."""
    report = CompactReport()
    with engine.maintenance_lock:
        with engine.db.connect() as conn:
            rows = [
                r for r in catalog.all_snapshots(conn) if r.state not in ("sealing", "importing")
            ]
        for row in rows:
            try:
                node = engine.maps.node(row.id)
            except NotFound:
                continue  # folded away meanwhile
            if node.self_contained:
                continue
            done = _compact_node(engine, node, max_depth, coverage)
            report.snapshots += 1
            report.compacted += done
    return report


def _compact_node(engine: Engine, node: Node, max_depth: int, coverage: float) -> int:
    entries = node.map.entries.copy()
    patch = np.flatnonzero(entries["kind"] == bundles.KIND_PATCH)
    if len(patch) == 0:
        return 0
    has_base, depth = chain_depth(engine.maps.lineage(node.parent_id), entries["chunk"][patch])
    exact = np.where(has_base, np.minimum(depth + 1, blockmap.MAX_DEPTH), 0)
    covers = bitmaps.popcount(entries["written"][patch]) >= coverage * PAGES_PER_CHUNK
    todo = patch[(exact > max_depth) | covers | ~has_base]
    changed = bool(len(todo)) or bool(np.any(entries["depth"][patch] != exact))
    entries["depth"][patch] = exact
    if len(todo):
        view = View(f"snapshot {node.id}", node.size_bytes, engine.maps.lineage(node.id))
        with engine.writer() as writer:
            fresh = []
            for i in todo.tolist():
                chunk = int(entries["chunk"][i])
                entry = write_full(writer, chunk, engine.chunks.materialize(view, chunk))
                entry["written"] = entries["written"][i]
                fresh.append(entry)
            writer.finish()
            entries[todo] = np.concatenate(fresh)
            return len(todo) if _commit(engine, node, entries, writer) else 0
    if changed:
        _commit(engine, node, entries, None)
    return 0


def _commit(
    engine: Engine, node: Node, entries: blockmap.Entries, writer: PackWriter | None
) -> bool:
    """Replace node's map with entries, under the engine lock, if its map is still the one
    they were worked out from; whether it was."""
    with engine.lock:
        try:
            current = engine.maps.node(node.id)
        except NotFound:
            return False
        if current.state != node.state or not np.array_equal(current.map.entries, node.map.entries):
            return False
        with engine.db.begin() as conn:
            catalog.put_segments(conn, node.id, segment_blobs(entries))
            if writer is not None:
                writer.commit(conn)
        engine.maps.invalidate(node.id)
    return True
