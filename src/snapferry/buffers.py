"""Where bytes lie in memory: what lets a write skip a copy (``O_DIRECT`` wants a page-aligned
source; frames a peer sent lie end to end in one buffer), and ``AlignedBuffers`` to receive
bodies into."""

from __future__ import annotations

import mmap
import queue
import threading
import weakref
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


class AlignedBuffers:
    """Page-aligned buffers of ``size`` bytes (for bodies received: a peer's answer, a Put
    Page), used again once nothing refers to them: touching fresh memory for every body cost
    these VMs ~1 CPU-second of kernel time per GB, and a page-aligned body goes to disk around
    the page cache without another copy.

    ``take(n)`` returns a view of n bytes. When the last view of a buffer is gone, it comes
    back (at most ``keep`` are kept); one bigger than ``size`` is made for its body alone.
    """

    def __init__(self, keep: int = 8, size: int = 24 * 1024 * 1024) -> None:
        self._free: list[mmap.mmap] = []
        # filled by finalizers, which may run in any thread at any allocation, even one made
        # while take() holds the lock: so never a lock there, only SimpleQueue.put
        self._returned: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._keep = keep
        self._size = size

    def take(self, n: int) -> memoryview:
        buffer = None
        if n <= self._size:
            with self._lock:
                while not self._returned.empty():
                    self._free.append(self._returned.get_nowait())
                del self._free[self._keep :]
                if self._free:
                    buffer = self._free.pop()
        if buffer is None:
            buffer = mmap.mmap(-1, max(n, self._size))
        owner = np.frombuffer(buffer, dtype=np.uint8)  # every view refers to it
        if len(buffer) == self._size:
            weakref.finalize(owner, self._returned.put, buffer)
        return owner.data[:n]
