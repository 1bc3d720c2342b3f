"""``ReadBudget``: how many bytes a region's data plane may hold for answers being sent, all
answers together — so clients that stop reading cannot make the server hold more than that.

Counted in units of one chunk (the most one piece of an answer holds). An answer takes a unit
before it reads a piece and gives it back once the piece is handed to its connection. A new
read that finds the budget spent is refused (503 ``ServerBusy`` with ``Retry-After``, as Azure
storage answers); an answer already streaming waits for a unit while holding none, so answers
never wait on each other in a circle. When the budget falls back to empty after a busy spell,
the memory the pieces used is handed back to the system (``malloc_trim``).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools

from snapferry.settings import CHUNK

TRIM_AFTER = 64 * 1024 * 1024
"""Bytes held at the busiest moment since the last trim that make the next empty budget trim."""


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def return_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``; elsewhere a
    no-op). A freed 4 MiB piece otherwise stays in the heap, reused but never returned."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


class ReadBudget:
    """At most ``limit`` bytes (whole chunks) held for answers on one event loop."""

    def __init__(self, limit: int) -> None:
        self.units = max(1, limit // CHUNK)
        self.used = 0
        self._peak = 0
        self._freed = asyncio.Event()

    def try_take(self) -> bool:
        """Take a unit if one is free."""
        if self.used >= self.units:
            return False
        self.used += 1
        self._peak = max(self._peak, self.used)
        return True

    async def take(self) -> None:
        """Take a unit, waiting for one (the caller must hold none)."""
        while not self.try_take():
            self._freed.clear()
            await self._freed.wait()

    def give(self, units: int = 1) -> None:
        self.used -= units
        assert self.used >= 0, "a unit given back twice"
        self._freed.set()
        if self.used == 0 and self._peak * CHUNK >= TRIM_AFTER:
            self._peak = 0
            loop = asyncio.get_running_loop()
            loop.run_in_executor(None, return_free_memory)
