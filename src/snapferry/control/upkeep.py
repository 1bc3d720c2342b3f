"""A region's upkeep: a background thread that finishes what the region left for later — seals
and folds the storage refused (no space, a read-only filesystem) and then the engine objects of
creations that failed meanwhile — so that freeing space is all an operator has to do: no restart.
It also runs the scheduled maintenance passes (``control.schedules``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from snapferry.control.schedules import ScheduledPass
from snapferry.engine import Engine

log = logging.getLogger(__name__)
UPKEEP_SECONDS = 30.0
SWEEP_SECONDS = 300.0
"""The orphan sweep runs at least this often, and whenever a postponed seal or fold ended."""
YOUNGEST_ORPHAN = 300.0
"""Seconds an unnamed engine object must have existed before a serving region's sweep drops
it: a creation makes its engine object a moment before its record names it."""


class Upkeep:
    """Every ``every`` seconds: ``engine.finish_pending()``, then ``sweep(min_age)`` (the
    service's orphan sweep) when that finished something or ``SWEEP_SECONDS`` have passed, then
    each scheduled maintenance pass that is due."""

    def __init__(
        self,
        engine: Engine,
        sweep: Callable[[float], None],
        every: float = UPKEEP_SECONDS,
        passes: Sequence[ScheduledPass] = (),
    ) -> None:
        self.engine = engine
        self.sweep = sweep
        self.every = every
        self.passes = passes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: int | None = None
        self._swept = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snapferry-upkeep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def run_once(self) -> int:
        """One round; how many snapshots still wait for a seal or a fold."""
        pending = self.engine.finish_pending()
        now = time.monotonic()
        finished = self._pending is not None and pending < self._pending
        if finished or now - self._swept >= SWEEP_SECONDS:
            self.sweep(YOUNGEST_ORPHAN)
            self._swept = now
        self._pending = pending
        for scheduled in self.passes:
            scheduled.run_if_due()
        return pending

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.run_once()
            except Exception:
                log.exception("region upkeep failed; it runs again in %.0f s", self.every)
