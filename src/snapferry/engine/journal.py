"""A ``write_many``'s overwrites of pages its head generation already holds.

Overwriting such pages in place could tear them if the process died mid-write, so their new content
is written to the generation's journal file first, committed with the page bitmap, and only then
copied into place (see ``Engine.write_many``; recovery replays committed journals).
"""

from __future__ import annotations

import numpy as np

from snapferry.engine.head import Head
from snapferry.settings import PAGE, PAGES_PER_CHUNK


class Journal:
    """The pages of one ``write_many`` that overwrite pages its head already holds, in order."""

    def __init__(self) -> None:
        self.parts: list[memoryview] = []
        self._pages: list[np.ndarray] = []

    def __bool__(self) -> bool:
        return bool(self._pages)

    def add(self, first: int, buf: memoryview, held: np.ndarray) -> None:
        rows = np.flatnonzero(held).astype(np.int64)
        pages = np.frombuffer(buf, dtype=np.uint8).reshape(-1, PAGE)[rows]
        self._pages.append(first + rows)
        self.parts.append(memoryview(pages.reshape(-1).data))

    def pages(self) -> np.ndarray:
        return np.concatenate(self._pages)

    def latest(self, page: int) -> np.ndarray | None:
        """The newest journaled content of page in this batch, if any."""
        for pages, part in zip(reversed(self._pages), reversed(self.parts), strict=True):
            hit = np.flatnonzero(pages == page)
            if len(hit):
                row = int(hit[-1])
                return np.frombuffer(part, dtype=np.uint8)[row * PAGE : (row + 1) * PAGE]
        return None


def held_pages(head: Head, first: int, end: int) -> np.ndarray:
    """Which of pages ``[first, end)`` the head generation already holds (committed)."""
    held = np.zeros(end - first, dtype=bool)
    for chunk in range(first // PAGES_PER_CHUNK, (end - 1) // PAGES_PER_CHUNK + 1):
        mask = head.mask(chunk)
        if mask is None:
            continue
        lo = max(first, chunk * PAGES_PER_CHUNK)
        hi = min(end, (chunk + 1) * PAGES_PER_CHUNK)
        held[lo - first : hi - first] = mask[
            lo - chunk * PAGES_PER_CHUNK : hi - chunk * PAGES_PER_CHUNK
        ]
    return held
