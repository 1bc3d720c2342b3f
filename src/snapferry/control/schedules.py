"""A serving region's scheduled maintenance, run by its upkeep thread: a scrub every
``scrub_hours`` (168), GC every ``gc_hours`` (24, with the default grace of an hour) and
compaction every ``compact_hours`` (24), and in a region with zones a zone repair every
``repair_hours`` (1: see ``snapferry.engine.zones``). Each pass holds the engine lock only for
metadata, so the region goes on serving. When each last ended is kept in ``<pass>.json`` in the
region's directory (``scrub.json``, ``gc.json``, ``compact.json``, ``repair.json``), so a
restart neither repeats nor skips one; the first is due one period after the region's first
start. What a pass did is logged; a scrub's problems are logged one line each (the first 20)
and shown in the ``snapferry_scrub_*`` metrics.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from snapferry.engine import Engine
from snapferry.engine.compact import compact
from snapferry.engine.gc import collect
from snapferry.engine.scrub import ScrubReport, scrub
from snapferry.engine.zones import repair
from snapferry.files import write_atomic
from snapferry.metrics import ScrubMetrics, ZoneRepairMetrics
from snapferry.store.zoned import ZonedStore

log = logging.getLogger(__name__)
LOGGED_PROBLEMS = 20
HOUR = 3600.0


class ScheduledPass:
    """Runs ``run()`` (which returns its report as a dict of numbers and more) when ``every``
    seconds have passed since it last ended, keeping when in ``directory/<name>.json``;
    ``told(state)`` hears each saved state (and the one found at start)."""

    def __init__(
        self,
        name: str,
        run: Callable[[], dict[str, Any]],
        every: float,
        directory: Path,
        told: Callable[[dict[str, float]], None] = lambda state: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name, self.run, self.every, self.told, self.clock = name, run, every, told, clock
        self.path = directory / f"{name}.json"
        self.state = self._load()
        if "lastEndedAt" in self.state:
            told(self.state)

    def _load(self) -> dict[str, float]:
        try:
            found = json.loads(self.path.read_text())
            if isinstance(found, dict):
                return {k: float(v) for k, v in found.items() if isinstance(v, int | float)}
        except (OSError, ValueError):
            pass
        state = {"since": self.clock()}  # the region's first start: the first pass is due later
        self._save(state)
        return state

    def _save(self, state: dict[str, float]) -> None:
        """Keep state (best effort: a region whose storage refuses it runs the pass again
        after a restart, which is harmless)."""
        try:
            write_atomic(self.path, json.dumps(state).encode())
        except OSError as exc:
            log.warning("the %s schedule was not saved: %s", self.name, exc)

    def due(self) -> bool:
        last = self.state.get("lastEndedAt", self.state.get("since", 0.0))
        return self.clock() - last >= self.every

    def run_if_due(self) -> None:
        if not self.due():
            return
        started = self.clock()
        log.info("scheduled %s started", self.name)
        report = self.run()
        numbers = {k: float(v) for k, v in report.items() if isinstance(v, int | float)}
        self.state = {**numbers, "lastStartedAt": started, "lastEndedAt": self.clock()}
        self._save(self.state)
        self.told(self.state)
        log.info(
            "scheduled %s ended: %s",
            self.name,
            ", ".join(f"{k} {v:g}" for k, v in sorted(numbers.items())),
        )


def scheduled_passes(
    engine: Engine,
    *,
    scrub_hours: float,
    gc_hours: float,
    compact_hours: float,
    scrub_metrics: ScrubMetrics,
    repair_hours: float = 0.0,
    repair_metrics: ZoneRepairMetrics | None = None,
) -> list[ScheduledPass]:
    """The region's scheduled passes (a period of 0 hours: that pass never runs by itself)."""
    passes = []
    if scrub_hours:
        passes.append(
            ScheduledPass(
                "scrub",
                lambda: _scrub(engine),
                scrub_hours * HOUR,
                engine.data_dir,
                scrub_metrics.observe,
            )
        )
    if gc_hours:
        passes.append(
            ScheduledPass("gc", lambda: collect(engine).to_dict(), gc_hours * HOUR, engine.data_dir)
        )
    if compact_hours:
        passes.append(
            ScheduledPass(
                "compact", lambda: compact(engine).to_dict(), compact_hours * HOUR, engine.data_dir
            )
        )
    if repair_hours and isinstance(engine.store, ZonedStore):
        passes.append(
            ScheduledPass(
                "repair",
                lambda: _repair(engine),
                repair_hours * HOUR,
                engine.data_dir,
                repair_metrics.observe if repair_metrics is not None else lambda state: None,
            )
        )
    return passes


def _repair(engine: Engine) -> dict[str, Any]:
    report = repair(engine)
    if not report.clean:
        log.warning("zone repair could not copy every pack: %s", report.failed)
    return {k: v for k, v in report.to_dict().items() if isinstance(v, int)}


def _scrub(engine: Engine) -> dict[str, Any]:
    report: ScrubReport = scrub(engine)
    for problem in report.problems[:LOGGED_PROBLEMS]:
        log.warning(
            "scrub: %s %s %s at offset %d: %s",
            problem.kind,
            problem.resource,
            problem.id,
            problem.offset,
            problem.detail,
        )
    if not report.clean:
        log.warning("scheduled scrub found %d problems", len(report.problems))
    return {
        "problems": len(report.problems),
        "packs": report.packs,
        "bytesRead": report.bytes_read,
        "zoneDamage": sum(report.zone_damage.values()),
        "mended": report.mended,
    }
