"""Folding a deleted snapshot into its children, so every other snapshot stays byte-identical.

For each chunk the deleted snapshot P changed, each child C ends up with an entry meaning
"P's change, then C's": C keeps its own full version; takes P's entry when it has none; or gets a
merged version (C's touched pages over P's) when its own is a patch. ``written`` becomes the union,
so diffs across the gap stay exact. A self-contained child lacking a chunk P changed holds zeros
there, and records that as a zero entry.
"""

from __future__ import annotations

import numpy as np

from snapferry.engine import bitmaps, blockmap, bundles
from snapferry.engine.maps import Node
from snapferry.engine.objects import ObjectReader, PackWriter, location_of
from snapferry.engine.versions import ChunkBatch, write_versions
from snapferry.settings import PAGE, PAGES_PER_CHUNK


def fold_into(
    writer: PackWriter, objects: ObjectReader, parent: Node, child: Node
) -> blockmap.Entries:
    """The child's new map after absorbing parent's delta."""
    p_entries = parent.map.entries
    c_map = child.map
    idx = c_map.find_many(p_entries["chunk"])
    missing = p_entries[idx < 0]
    if child.self_contained:
        inherited = blockmap.empty(len(missing))
        inherited["chunk"] = missing["chunk"]
        inherited["written"] = missing["written"]
    else:
        inherited = missing.copy()
    both_p = p_entries[idx >= 0]
    both_c_idx = idx[idx >= 0]
    updated = c_map.entries[both_c_idx].copy()
    updated["written"] |= both_p["written"]
    patch = np.flatnonzero(updated["kind"] == bundles.KIND_PATCH)
    if len(patch):
        merged = _merge_patches(writer, objects, both_p[patch], updated[patch])
        merged["written"] = updated["written"][patch]
        updated[patch] = merged
    return blockmap.overlay(c_map.entries, blockmap.merge_sorted([inherited, updated]))


def _merge_patches(
    writer: PackWriter,
    objects: ObjectReader,
    older: blockmap.Entries,
    newer: blockmap.Entries,
) -> blockmap.Entries:
    """Versions equal to applying each newer patch on top of the older entry of the same chunk."""
    n = len(newer)
    touched = np.zeros((n, PAGES_PER_CHUNK), dtype=bool)
    pages = []
    kinds = np.empty(n, dtype=np.uint8)
    for i in range(n):
        new_mask, new_pages, new_zero = _slot(objects, newer[i])
        new_touched = new_mask | new_zero
        old_kind = int(older[i]["kind"])
        if old_kind == bundles.KIND_ZERO:
            kinds[i] = bundles.KIND_FULL
            old_mask = np.zeros(PAGES_PER_CHUNK, dtype=bool)
            old_zero = np.zeros(PAGES_PER_CHUNK, dtype=bool)
            old_pages = np.zeros((0, PAGE), dtype=np.uint8)
        else:
            kinds[i] = old_kind
            old_mask, old_pages, old_zero = _slot(objects, older[i])
        chunk = np.zeros((PAGES_PER_CHUNK, PAGE), dtype=np.uint8)
        chunk[old_mask] = old_pages
        chunk[new_touched] = 0
        chunk[new_mask] = new_pages
        if kinds[i] == bundles.KIND_FULL:
            touched[i] = True
        else:
            touched[i] = new_touched | old_mask | old_zero
        pages.append(chunk[touched[i]])
    batch = ChunkBatch.dense(newer["chunk"].copy(), kinds, touched, np.concatenate(pages))
    merged = write_versions(writer, batch)
    merged["depth"] = np.where(older["kind"] == bundles.KIND_ZERO, 0, older["depth"])
    return merged


def _slot(objects: ObjectReader, entry: np.void) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(present mask, present pages, zeroed mask) of the version an entry names."""
    bundle = objects.bundle(location_of(entry))
    slot = int(entry["slot"])
    mask, data = bundle.slot_pages(slot)
    return mask, data, bitmaps.unpack(bundle.zeroed[slot])
