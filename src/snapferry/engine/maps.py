"""Cached snapshot rows and block maps, and lineage walks over them.

One region is served by one process (the data directory is locked), so an in-process cache is
coherent: every change to a snapshot's row or map goes through ``MapCache.invalidate``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine

from snapferry.engine import blockmap
from snapferry.engine.blockmap import NodeMap
from snapferry.errors import NotFound
from snapferry.meta import catalog


@dataclass(frozen=True)
class Node:
    """A snapshot as the engine sees it: its row's facts and its map."""

    id: str
    family_id: str
    disk_id: str | None
    parent_id: str | None
    seq: int
    size_bytes: int
    incremental: bool
    self_contained: bool
    state: str
    frozen_gen: int | None
    created_at: float
    map: NodeMap
    zone: str | None = None
    """Where its seal or copy writes packs: None, every zone; a zone's name, that zone only."""


class MapCache:
    """Snapshot nodes by id, loaded on first use."""

    def __init__(self, db: Engine) -> None:
        self._db = db
        self._nodes: dict[str, Node] = {}
        self._lock = threading.Lock()

    def node(self, snapshot_id: str, conn: Connection | None = None) -> Node:
        """The node, or NotFound."""
        with self._lock:
            hit = self._nodes.get(snapshot_id)
        if hit is not None:
            return hit
        if conn is None:
            with self._db.connect() as c:
                node = self._load(c, snapshot_id)
        else:
            node = self._load(conn, snapshot_id)
        with self._lock:
            self._nodes[snapshot_id] = node
        return node

    def _load(self, conn: Connection, snapshot_id: str) -> Node:
        row = catalog.snapshot(conn, snapshot_id)
        if row is None:
            raise NotFound(f"snapshot {snapshot_id} not found", snapshot=snapshot_id)
        parts = [blockmap.decode_segment(blob) for _, blob in catalog.segments(conn, snapshot_id)]
        entries = blockmap.merge_sorted(parts)
        return Node(
            id=row.id,
            family_id=row.family_id,
            disk_id=row.disk_id,
            parent_id=row.parent_id,
            seq=int(row.seq),
            size_bytes=int(row.size_bytes),
            incremental=bool(row.incremental),
            self_contained=bool(row.self_contained),
            state=row.state,
            frozen_gen=row.frozen_gen,
            created_at=float(row.created_at),
            map=NodeMap(entries),
            zone=row.zone,
        )

    def put(self, node: Node) -> None:
        """Cache a node the caller has just committed exactly as given."""
        with self._lock:
            self._nodes[node.id] = node

    def invalidate(self, *snapshot_ids: str | None) -> None:
        """Forget cached nodes (all of them when called with no ids)."""
        with self._lock:
            if not snapshot_ids:
                self._nodes.clear()
            for sid in snapshot_ids:
                if sid is not None:
                    self._nodes.pop(sid, None)

    def lineage(self, snapshot_id: str | None) -> list[Node]:
        """The nodes a read of snapshot_id consults, newest first: it, then its parents, up to and
        including the first self-contained one."""
        out: list[Node] = []
        current = snapshot_id
        while current is not None:
            node = self.node(current)
            out.append(node)
            if node.self_contained:
                break
            current = node.parent_id
        return out

    def ancestry(self, snapshot_id: str | None) -> list[Node]:
        """Every node from snapshot_id up its parent links to the root (ignoring self-containment)."""
        out: list[Node] = []
        current = snapshot_id
        while current is not None:
            node = self.node(current)
            out.append(node)
            current = node.parent_id
        return out


def chain_depth(
    lineage: list[Node], chunks: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """For each chunk: whether the lineage holds non-zero content for it, and the depth of the
    newest entry it has (-1 if none)."""
    n = len(chunks)
    has = np.zeros(n, dtype=bool)
    depth = np.full(n, -1, dtype=np.int64)
    open_ = np.ones(n, dtype=bool)
    for node in lineage:
        if not open_.any():
            break
        idx = node.map.find_many(chunks)
        hit = open_ & (idx >= 0)
        if hit.any():
            found = node.map.entries[idx[hit]]
            has[hit] = found["kind"] != 0
            depth[hit] = found["depth"]
            open_ &= ~hit
    return has, depth
