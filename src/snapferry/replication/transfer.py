"""Running one copy job: grant, plan, transfer, commit — each step repeatable.

An attempt (``run_copy``) holds the job's lease. It asks the source region for a system grant,
plans once (the anchor among this region's copies of the family, the delta, the base it lands
on; all saved in the job), then fetches the pieces of the delta the target does not hold yet —
as pages, or as the stored frames that hold whole chunks — verifies each (BLAKE3 of the
plaintext) and stages it — each piece's map entries, progress and
lease renewal commit in one transaction. The last step makes the target ready and the job
Succeeded together. A source that is gone fails the job (``CopySourceNotFound``); anything
else retryable puts it back in the queue with a backoff — but a target region whose storage
refuses the data (full, read-only) pauses the copy, looked at again every 30 s, and what it
staged stays; losing the lease or the target stops the attempt silently.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import blake3
import numpy as np
import numpy.typing as npt
import zstandard
from sqlalchemy import Connection

from snapferry.engine import Engine
from snapferry.engine.delta import ChunkDelta, CopyPlan, Piece
from snapferry.engine.imports import HeldFrameUnreadable, ImportAborted
from snapferry.errors import (
    IntegrityError,
    NotFound,
    PeerUnavailable,
    SnapferryError,
    SourceNotFound,
    StorageFault,
)
from snapferry.faults import named
from snapferry.meta import jobs as store
from snapferry.metrics import CopyMetrics, new_registry
from snapferry.replication.jobs import (
    COPYING,
    FAILED,
    QUEUED,
    SUCCEEDED,
    CopyJob,
    log_event,
)
from snapferry.replication.peers import PageFrame, PeerClient
from snapferry.settings import PAGE

log = logging.getLogger(__name__)
T = TypeVar("T")

PIECE_PAGES = 2048
"""Pages per fetch (8 MiB of data): big enough to stream well, small enough to redo."""
PIECE_FRAME_BYTES = 16 * 1024 * 1024
"""Stored bytes of frames per fetch."""
FETCH_TRIES = 4
MAX_BACKOFF = 30.0
PAUSE_SECONDS = 30.0
GRANT_MARGIN = 86400.0
"""A saved grant is asked for again when it has less than this left."""
Event = tuple[str, str, dict[str, Any]]
"""An event to log: kind, message, details."""
PROGRESS_EVENT_SECONDS = 5.0
"""A progress event at the first committed piece and then at most this far apart."""


@dataclass
class CopyContext:
    """What an attempt works with. ``streams`` fetches run at once (``enhanced``: double);
    a piece committed ``stall_seconds`` or more after the copy last moved logs that it moves
    again."""

    engine: Engine
    peers: PeerClient
    owner: str
    clock: Callable[[], float]
    lease_seconds: float
    streams: int = 4
    stall_seconds: float = 600.0
    metrics: CopyMetrics = field(default_factory=lambda: CopyMetrics(new_registry()))
    pause_seconds: float = PAUSE_SECONDS
    """How often a copy paused by this region's storage (full, read-only) looks again."""

    async def db(self, fn: Callable[[Connection], Any], *, write: bool = True) -> Any:
        def run() -> Any:
            if write:
                with self.engine.db.begin() as conn:
                    return fn(conn)
            with self.engine.db.connect() as conn:
                return fn(conn)

        return await asyncio.to_thread(run)

    async def job(self, job_id: str) -> CopyJob | None:
        row = await self.db(lambda conn: store.job(conn, job_id), write=False)
        return None if row is None else CopyJob.from_row(row)

    def leased(
        self, job: CopyJob, event: Event | Callable[[Connection], Event] | None, **values: Any
    ) -> Callable[[Connection], bool]:
        """A change of the job this worker leases, and its event (kind, message, details; or
        what makes it from the changed row's transaction), to run in one transaction: False
        (nothing changed) if the lease is lost."""

        def change(conn: Connection) -> bool:
            if not store.update_leased(conn, job.id, self.owner, **values):
                return False
            if event is not None:
                kind, message, details = event(conn) if callable(event) else event
                log_event(conn, job, kind, message, self.clock(), **details)
            return True

        return change

    async def update(self, job: CopyJob, *, event: Event | None = None, **values: Any) -> None:
        """Change the job (and log ``event``) in one transaction; ImportAborted if this worker
        no longer leases it."""
        if not await self.db(self.leased(job, event, **values)):
            raise ImportAborted(f"copy {job.id} is no longer leased by this worker")


async def run_copy(ctx: CopyContext, job_id: str) -> None:
    """One attempt at the job (the caller holds its lease)."""
    job = await ctx.job(job_id)
    if job is None or not job.active:
        return
    began = job.started_at or ctx.clock()  # the copy's first attempt: this one, or earlier
    try:
        await _attempt(ctx, job, began)
    except ImportAborted:
        log.info("copy %s stopped: its target is gone or another worker has it", job.id)
        if await asyncio.to_thread(_target_gone, ctx.engine, job):
            # a job its target outlived (a crash in the middle of the target's deletion):
            # failed, so it neither runs forever nor blocks its family
            gone = CopyTargetNotFound("the copy's target is gone")
            await _settle(ctx, job, began, FAILED, gone)
    except SourceNotFound as exc:
        await _settle(ctx, job, began, FAILED, exc)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a storage fault of this region pauses the copy (see _settle)
        typed = named(exc)
        if typed is None:
            log.exception("copy %s: attempt failed unexpectedly", job.id)
        await _settle(ctx, job, began, QUEUED, typed or exc)


class CopyTargetNotFound(NotFound):
    """The snapshot a copy was filling no longer exists in its region."""

    code = "CopyTargetNotFound"


def _target_gone(engine: Engine, job: CopyJob) -> bool:
    try:
        return engine.get_snapshot(job.target_id).state not in ("importing", "ready")
    except NotFound:
        return True


async def _settle(
    ctx: CopyContext, job: CopyJob, began: float, state: str, exc: BaseException
) -> None:
    if isinstance(exc, SnapferryError):
        error = {"code": exc.code, "message": exc.message}
    else:
        error = {"code": "InternalError", "message": "the copy failed unexpectedly"}
    now = ctx.clock()
    values: dict[str, Any] = {
        "state": state,
        "last_error": json.dumps(error),
        "lease_owner": None,
        "lease_expires": None,
    }
    attempt = job.attempts + 1  # the attempt that failed counted itself; job is from before it
    if state == FAILED:
        values["ended_at"] = now
        log.warning("copy %s failed: %s", job.id, error["message"])
        event = (
            "failed",
            f"failed with {error['code']} for copy destination {job.target_key}: "
            f"{error['message']}",
            {"code": error["code"], "attempt": attempt},
        )
    elif isinstance(exc, StorageFault):
        # no backoff growing while an operator frees space: a look every retry_after seconds
        values["next_attempt_at"] = retry_at = now + ctx.pause_seconds
        log.info("copy %s paused: %s", job.id, error["message"])
        event = (
            "paused",
            f"paused at {job.completion_percent}%: this region's storage refused the copy's "
            f"data ({error['code']}: {error['message']}); it resumes by itself once the region "
            "takes data again, sending nothing it already holds",
            {"code": error["code"], "attempt": attempt, "nextAttemptAt": retry_at},
        )
    else:
        values["next_attempt_at"] = retry_at = now + min(MAX_BACKOFF, 0.5 * 2**job.attempts)
        log.warning("copy %s will retry: %s", job.id, error["message"])
        event = (
            "retry",
            f"attempt {attempt} failed ({error['code']}: {error['message']}); the next starts "
            f"in {retry_at - now:.1f} s",
            {"code": error["code"], "attempt": attempt, "nextAttemptAt": retry_at},
        )
    try:
        await ctx.update(job, event=event, **values)
    except ImportAborted:  # the target or the lease went meanwhile: nothing settled
        return
    if state == FAILED:
        ctx.metrics.duration.labels(FAILED).observe(now - began)
    else:
        ctx.metrics.retries.labels(error["code"]).inc()


async def _attempt(ctx: CopyContext, job: CopyJob, began: float) -> None:
    now = ctx.clock()
    if job.state == COPYING:  # the attempt before never settled: its worker died or hung
        event = (
            "takeover",
            f"resumed by worker {ctx.owner}: the attempt before stopped without finishing (its "
            f"process died or its lease ran out) with {job.completion_percent}% copied",
            {"attempt": job.attempts + 1, "percent": job.completion_percent},
        )
    else:
        event = ("started", f"attempt {job.attempts + 1} started", {"attempt": job.attempts + 1})
    await ctx.update(
        job,
        event=event,
        state=COPYING,
        attempts=job.attempts + 1,
        started_at=began,
        lease_expires=now + ctx.lease_seconds,
    )
    if event[0] == "takeover":
        ctx.metrics.takeovers.inc()
    sas = await _grant(ctx, job)
    if job.plan is None:
        job = await _plan(ctx, job, sas)
    assert job.plan is not None
    plan = CopyPlan.decode(job.plan)
    delta = plan.delta
    held = await asyncio.to_thread(ctx.engine.staged_chunks, job.target_id)
    reusable = await ctx.db(lambda conn: _reusable(ctx.engine, conn, job), write=False)
    pieces = list(plan.pieces(held, PIECE_PAGES, PIECE_FRAME_BYTES))
    await _transfer(ctx, job, sas, pieces, reusable)

    def succeeded(conn: Connection) -> Event:
        row = store.job(conn, job.id)
        wire = int(row.bytes_transferred) if row is not None else 0
        took = ctx.clock() - began
        return (
            "succeeded",
            f"completed with Succeeded for copy destination {job.target_key}: "
            f"{delta.changed_bytes} bytes planned, {wire} on the wire, {took:.1f} s since it "
            "started",
            {"bytesPlanned": delta.changed_bytes, "bytesTransferred": wire},
        )

    done = ctx.leased(
        job,
        succeeded,
        state=SUCCEEDED,
        bytes_staged=delta.changed_bytes,
        ended_at=ctx.clock(),
        last_error=None,
        lease_owner=None,
        lease_expires=None,
    )
    await asyncio.to_thread(ctx.engine.finish_import, job.target_id, done)
    ctx.metrics.duration.labels(SUCCEEDED).observe(ctx.clock() - began)
    log.info("copy %s succeeded (%d bytes planned)", job.id, delta.changed_bytes)


async def _grant(ctx: CopyContext, job: CopyJob) -> str:
    access = job.access
    if access is None or float(access["expiresAt"]) - ctx.clock() < GRANT_MARGIN:
        grant = await _retrying(
            job,
            "asking for a grant",
            lambda: ctx.peers.grant(job.source_region, job.source_unique_id),
        )
        access = {"sas": grant.sas, "expiresAt": grant.expires_at}
        await ctx.update(job, access=json.dumps(access))
    return str(access["sas"])


async def _plan(ctx: CopyContext, job: CopyJob, sas: str) -> CopyJob:
    copies = await ctx.db(lambda conn: _copies_here(ctx.engine, conn, job), write=False)
    candidates = [src for src, _ in copies]
    anchor, planned = await _retrying(
        job,
        "planning",
        lambda: ctx.peers.plan(job.source_region, job.source_engine_id, sas, candidates, job.full),
    )
    delta = planned.delta
    base = dict(copies).get(anchor) if anchor is not None else None
    if anchor is not None and base is None:
        raise PeerUnavailable(f"region {job.source_region} chose an anchor this copy did not offer")
    values = {
        "plan": planned.encode(),
        "anchor_id": anchor,
        "base_id": base,
        "bytes_total": delta.changed_bytes,
        "bytes_staged": 0,
    }

    on = "no base (a first copy: every non-zero page travels)" if base is None else base
    planned_event = (
        "planned",
        f"planned {delta.changed_bytes} bytes in {len(delta)} chunks "
        f"({len(planned.lengths)} as stored frames) on {on}",
        {"bytesPlanned": delta.changed_bytes, "anchor": anchor, "base": base},
    )
    save = ctx.leased(job, planned_event, **values)  # the base and the plan, together

    try:
        await asyncio.to_thread(ctx.engine.set_import_base, job.target_id, base, save)
    except NotFound:
        raise PeerUnavailable(
            "the base snapshot was deleted while planning; planning again"
        ) from None
    log.info(
        "copy %s planned: %d bytes in %d chunks (%d as stored frames), anchor %s",
        job.id,
        delta.changed_bytes,
        len(delta),
        len(planned.lengths),
        anchor,
    )
    fresh = await ctx.job(job.id)
    assert fresh is not None
    return fresh


def _reusable(engine: Engine, conn: Connection, job: CopyJob) -> set[bytes]:
    """Frames a copy may take from what this region holds instead of fetching them: those
    the finished copies into the same subscription read. (Never another subscription's: what a
    copy moves must not tell whether someone else holds some content.)"""
    targets = [
        str(row.target_id)
        for row in store.jobs(conn, job.subscription)
        if row.state == SUCCEEDED and row.id != job.id
    ]
    return engine.referenced_frames(targets)


def _copies_here(engine: Engine, conn: Connection, job: CopyJob) -> list[tuple[str, str]]:
    """(source engine id, target engine id) of this region's finished copies of the job's family
    into the same subscription from the same source region, newest source first, whose target
    still exists."""
    if job.source_family is None or job.full:
        return []
    out = []
    for row in store.family_jobs(conn, job.source_family, job.subscription):
        other = CopyJob.from_row(row)
        if other.id == job.id or other.state != SUCCEEDED or other.full:
            continue
        if other.source_region != job.source_region:
            continue
        try:
            if engine.get_snapshot(other.target_id).state != "ready":
                continue
        except NotFound:
            continue
        out.append((other.source_engine_id, other.target_id))
    return out


async def _transfer(
    ctx: CopyContext, job: CopyJob, sas: str, pieces: list[Piece], reusable: set[bytes]
) -> None:
    if not pieces:
        return
    queue: asyncio.Queue[Piece] = asyncio.Queue()
    for piece in pieces:
        queue.put_nowait(piece)
    streams = min(len(pieces), ctx.streams * (2 if job.enhanced else 1))
    progress = Progress(job, job.moved_at() or ctx.clock(), ctx.stall_seconds)

    async def worker() -> None:
        while True:
            try:
                piece = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await _move(ctx, job, sas, piece, reusable, progress)

    tasks = [asyncio.create_task(worker()) for _ in range(streams)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Progress:
    """What an attempt last told of its progress (events are a log, not state: an attempt that
    starts over logs again at its first piece), and when the copy last moved (the attempt holds
    the lease: only its own pieces move it)."""

    def __init__(self, job: CopyJob, moved_at: float, stall_seconds: float) -> None:
        self.job = job
        self.moved_at = moved_at
        self.stall_seconds = stall_seconds
        self.logged_at: float | None = None
        self._lock = threading.Lock()

    def log(self, conn: Connection, now: float) -> None:
        """A piece is committed in conn: log that the copy moves again if it stood still for
        the stall time, and its percent if one is due."""
        with self._lock:
            still, self.moved_at = now - self.moved_at, now
            if still >= self.stall_seconds:
                log_event(
                    conn,
                    self.job,
                    "moving",
                    f"moving again after {still:.0f} s without progress",
                    now,
                    stillSeconds=round(still, 1),
                )
                self.logged_at = None  # its percent follows at once
            if self.logged_at is not None and now - self.logged_at < PROGRESS_EVENT_SECONDS:
                return
            self.logged_at = now
        row = store.job(conn, self.job.id)
        if row is None:
            return
        percent = CopyJob.from_row(row).completion_percent
        log_event(
            conn,
            self.job,
            "progress",
            f"completion percent for the copy destination {self.job.target_key} with copy id "
            f"{self.job.id} is {percent}%",
            now,
            percent=percent,
            bytesCopied=int(row.bytes_staged),
            bytesTransferred=int(row.bytes_transferred),
        )


async def _move(
    ctx: CopyContext,
    job: CopyJob,
    sas: str,
    piece: Piece,
    reusable: set[bytes],
    progress: Progress,
) -> None:
    """Fetch one piece, verify it, store it and commit it with the job's progress. Frames of
    ``reusable`` this region holds are not fetched (unless their local copy is unreadable)."""

    def checkpoint(wire: int) -> Callable[[Connection], bool]:
        def commit(conn: Connection) -> bool:
            now = ctx.clock()
            if not store.add_progress(
                conn,
                job.id,
                ctx.owner,
                staged=piece.delta.changed_bytes,
                transferred=wire,
                now=now,
                lease_expires=now + ctx.lease_seconds,
            ):
                return False
            progress.log(conn, now)
            return True

        return commit

    def count(wire: int) -> None:
        ctx.metrics.transferred.inc(wire)
        ctx.metrics.copied.inc(piece.delta.changed_bytes)

    if not piece.oids:
        pages, wire = await _fetch(ctx, job, sas, piece.delta)
        stage = functools.partial(ctx.engine.stage_import, job.target_id, piece.delta, pages)
        await asyncio.to_thread(stage, checkpoint(wire))
        count(wire)
        return

    refetch: set[bytes] = set()

    async def frames() -> None:
        local = [oid for oid in piece.oids if oid in reusable and oid not in refetch]
        held = await asyncio.to_thread(ctx.engine.held_frames, local)
        fetch = [oid for oid in piece.oids if oid not in held]  # never fetched twice
        got = (
            await ctx.peers.frames(job.source_region, job.source_engine_id, sas, fetch)
            if fetch
            else []
        )
        wire = sum(len(f) for f in got)
        arrived = dict(zip(fetch, got, strict=True))
        stage = functools.partial(
            ctx.engine.stage_frames,
            job.target_id,
            piece.delta,
            [(oid, arrived.get(oid)) for oid in piece.oids],
            piece.frame_of,
        )
        try:
            await asyncio.to_thread(stage, checkpoint(wire))
            count(wire)
        except HeldFrameUnreadable as exc:  # fetch it from the source instead
            refetch.add(exc.oid)
            raise PeerUnavailable(exc.message) from None
        except IntegrityError as exc:  # corrupted in transit: nothing was stored
            raise PeerUnavailable(
                f"frames from the source do not match their ids ({exc.message})"
            ) from None

    await _retrying(job, "fetching frames", frames)


async def _fetch(
    ctx: CopyContext, job: CopyJob, sas: str, piece: ChunkDelta
) -> tuple[npt.NDArray[np.uint8], int]:
    """The piece's pages, verified, and the bytes they took on the wire."""

    async def fetch() -> tuple[npt.NDArray[np.uint8], int]:
        frame = await ctx.peers.pages(job.source_region, job.source_engine_id, sas, piece)
        pages = await asyncio.to_thread(verify, frame, piece.changed_pages)
        return pages, len(frame.payload)

    return await _retrying(job, "fetching pages", fetch)


async def _retrying(job: CopyJob, what: str, call: Callable[[], Awaitable[T]]) -> T:
    """call(), tried a few times with a short backoff (a slow or faulty link) before the
    attempt gives up on PeerUnavailable."""
    for attempt in range(FETCH_TRIES):
        if attempt:
            await asyncio.sleep(0.2 * 2**attempt)
        try:
            return await call()
        except PeerUnavailable as exc:
            log.warning(
                "copy %s: %s failed (%s), try %d of %d",
                job.id,
                what,
                exc.message,
                attempt + 1,
                FETCH_TRIES,
            )
            if attempt == FETCH_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def verify(frame: PageFrame, pages: int) -> npt.NDArray[np.uint8]:
    """The frame's pages as ``(pages, 4096)``; PeerUnavailable if it is not exactly what was
    asked for (wrong size, undecodable, or content not matching its BLAKE3 id)."""
    expected = pages * PAGE
    if frame.length != expected:
        raise PeerUnavailable(f"the source sent {frame.length} bytes for {expected}")
    try:
        data = (
            zstandard.ZstdDecompressor().decompress(frame.payload, max_output_size=expected)
            if frame.compressed
            else frame.payload
        )
    except zstandard.ZstdError:
        raise PeerUnavailable("pages from the source do not decompress (corrupted)") from None
    if len(data) != expected or blake3.blake3(data).digest() != frame.content_id:
        raise PeerUnavailable("pages from the source do not match their id (corrupted)")
    return np.frombuffer(data, dtype=np.uint8).reshape(pages, PAGE)
