"""Where bytes lie in memory: what lets a write skip a copy (``O_DIRECT`` wants a page-aligned
source; frames a peer sent lie end to end in one buffer)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def address(view: bytes | memoryview) -> int:
    """Where the first byte of view is in memory."""
    found: int = np.frombuffer(view, dtype=np.uint8).__array_interface__["data"][0]
    return found


def run_of(parts: Sequence[bytes | memoryview]) -> memoryview | None:
    """parts as one view when they lie end to end in one buffer (views of one object, each
    starting where the one before ends), else None."""
    if not parts or not all(isinstance(p, memoryview) and p.contiguous for p in parts):
        return None
    owner = parts[0].obj  # type: ignore[union-attr]
    if any(p.obj is not owner for p in parts):  # type: ignore[union-attr]
        return None
    whole = memoryview(owner).cast("B")
    base = address(whole)
    filled = [p for p in parts if memoryview(p).nbytes]
    if not filled:
        return None
    start = at = address(filled[0]) - base
    for part in filled:
        if address(part) - base != at:
            return None
        at += memoryview(part).nbytes
    return whole[start:at]
