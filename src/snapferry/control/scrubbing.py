"""A serving region's scheduled scrub: every ``scrub_hours`` the upkeep verifies every stored
version (``engine.scrub``, which holds the engine lock only to take references, so the region
goes on serving). When the last one ended is kept in ``scrub.json`` in the region's directory, so
a restart neither repeats nor skips one; what it found is logged, one line per problem (the
first 20), and shown in ``snapferry_scrub_*`` metrics.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from snapferry.engine import Engine
from snapferry.engine.scrub import scrub
from snapferry.files import write_atomic
from snapferry.metrics import ScrubMetrics

log = logging.getLogger(__name__)
STATE_FILE = "scrub.json"
LOGGED_PROBLEMS = 20


class ScheduledScrub:
    """Runs ``engine.scrub`` when ``every`` seconds have passed since the last one ended (or,
    the first time, since this region's first start)."""

    def __init__(
        self,
        engine: Engine,
        every: float,
        metrics: ScrubMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.every = every
        self.metrics = metrics
        self.clock = clock
        self.path: Path = engine.data_dir / STATE_FILE
        self.state = self._load()
        if "lastEndedAt" in self.state:
            self.metrics.observe(self.state)

    def _load(self) -> dict[str, float]:
        try:
            found = json.loads(self.path.read_text())
            if isinstance(found, dict):
                return {k: float(v) for k, v in found.items() if isinstance(v, int | float)}
        except (OSError, ValueError):
            pass
        state = {"since": self.clock()}  # a region's first start: its first scrub is due later
        self._save(state)
        return state

    def _save(self, state: dict[str, float]) -> None:
        """Keep state (best effort: a region whose storage refuses it scrubs again after a
        restart, which is harmless)."""
        try:
            write_atomic(self.path, json.dumps(state).encode())
        except OSError as exc:
            log.warning("the scrub's schedule was not saved: %s", exc)

    def due(self) -> bool:
        last = self.state.get("lastEndedAt", self.state.get("since", 0.0))
        return self.clock() - last >= self.every

    def run_if_due(self) -> None:
        if not self.due():
            return
        started = self.clock()
        log.info("scheduled scrub started")
        report = scrub(self.engine)
        for problem in report.problems[:LOGGED_PROBLEMS]:
            log.warning(
                "scrub: %s %s %s at offset %d: %s",
                problem.kind,
                problem.resource,
                problem.id,
                problem.offset,
                problem.detail,
            )
        self.state = {
            "lastStartedAt": started,
            "lastEndedAt": self.clock(),
            "problems": float(len(report.problems)),
            "packs": float(report.packs),
            "bytesRead": float(report.bytes_read),
        }
        self._save(self.state)
        self.metrics.observe(self.state)
        log.log(
            logging.INFO if report.clean else logging.WARNING,
            "scheduled scrub ended: %d packs, %d bytes read, %d problems",
            report.packs,
            report.bytes_read,
            len(report.problems),
        )
