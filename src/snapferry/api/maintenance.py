"""Maintenance of a serving region on demand — what ``snapferry scrub|gc|compact|repair`` ask of a
region that a running cloud holds: ``POST /snapferry/maintenance/v1/{scrub,gc,compact,repair}``
runs the engine's pass in a worker thread and streams JSON lines as it goes: ``{"progress": [done,
total]}`` (scrub and zone repair, at most twice a second), then ``{"result": {...}}`` (the pass's
report) or ``{"error": {"code", "message"}}``. Behind the front door's key, like every region
route.

Scrub, GC and compaction hold the engine lock only for metadata (``docs/engine.md``), so the
region's writes, snapshots and copies go on while they run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from snapferry.engine import Engine
from snapferry.engine.compact import DEFAULT_COVERAGE, DEFAULT_MAX_DEPTH, compact
from snapferry.engine.gc import DEFAULT_GRACE, collect
from snapferry.engine.scrub import scrub
from snapferry.engine.zones import repair
from snapferry.errors import InvalidInput, SnapferryError
from snapferry.faults import named

log = logging.getLogger("snapferry.api")
PREFIX = "/snapferry/maintenance/v1"
PROGRESS_EVERY = 0.5
MIN_SERVING_GRACE = 60.0
"""Seconds a serving region's GC keeps a dead pack at least: a read that took its view before
a repack or a fold may still be reading it."""
Progress = Callable[[int, int], None]


def maintenance_router(region: Callable[[], Engine]) -> APIRouter:
    """The routes, over the engine ``region()`` gives when a pass is asked for."""
    router = APIRouter(include_in_schema=False)

    @router.post(f"{PREFIX}/scrub")
    async def scrub_now() -> StreamingResponse:
        return _streamed(lambda progress: scrub(region(), progress).to_dict())

    @router.post(f"{PREFIX}/gc")
    async def gc_now(
        grace: Annotated[float, Query(ge=0, le=10**9)] = DEFAULT_GRACE,
        repack_below: Annotated[float, Query(alias="repackBelow", ge=0, le=1)] = 0.5,
    ) -> StreamingResponse:
        if grace < MIN_SERVING_GRACE:
            raise InvalidInput(
                f"a serving region keeps dead packs at least {MIN_SERVING_GRACE:.0f} s for the "
                f"reads in flight that may still need them; pass --grace {MIN_SERVING_GRACE:.0f} "
                "or more, or stop the cloud first"
            )
        return _streamed(
            lambda _: collect(region(), grace_seconds=grace, repack_below=repack_below).to_dict()
        )

    @router.post(f"{PREFIX}/compact")
    async def compact_now(
        max_depth: Annotated[int, Query(alias="maxDepth", ge=0, le=10**6)] = DEFAULT_MAX_DEPTH,
        coverage: Annotated[float, Query(ge=0, le=1)] = DEFAULT_COVERAGE,
    ) -> StreamingResponse:
        return _streamed(
            lambda _: compact(region(), max_depth=max_depth, coverage=coverage).to_dict()
        )

    @router.post(f"{PREFIX}/repair")
    async def repair_now() -> StreamingResponse:
        return _streamed(lambda progress: repair(region(), progress).to_dict())

    return router


def _streamed(task: Callable[[Progress], dict[str, Any]]) -> StreamingResponse:
    """task run in a thread of its own, its progress and outcome as JSON lines."""
    return StreamingResponse(_lines(task), media_type="application/x-ndjson")


async def _lines(task: Callable[[Progress], dict[str, Any]]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    told = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal told
        now = time.monotonic()
        if now - told >= PROGRESS_EVERY:
            told = now
            loop.call_soon_threadsafe(queue.put_nowait, {"progress": [done, total]})

    def run() -> None:
        try:
            line: dict[str, Any] = {"result": task(progress)}
        except Exception as exc:
            typed = named(exc)
            if typed is None:
                log.exception("maintenance failed")
                typed = SnapferryError("the pass failed")
            line = {"error": {"code": typed.code, "message": typed.message}}
        loop.call_soon_threadsafe(queue.put_nowait, line)

    threading.Thread(target=run, name="snapferry-maintenance", daemon=True).start()
    while True:
        line = await queue.get()
        yield (json.dumps(line) + "\n").encode()
        if "progress" not in line:
            return
