"""``CopyWorker``: leases a region's runnable copy jobs and runs them, on its own event loop.

A worker is one thread with an asyncio loop (peer calls are async; engine and database calls
go to threads). Every ``poll`` seconds, or at once when woken (a new copy), it leases jobs that
are due and whose lease is free or expired, up to ``max_jobs`` at a time, and runs an attempt of
each (``transfer.run_copy``); a heartbeat renews each lease while the attempt runs. It claims
nothing until ``resume`` (the host calls it once every server answers). A lease held by a
process of this host that no longer exists (a ``kill -9``) is taken over at once; any other
lease is waited out. A graceful stop releases the leases it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy import Connection

from snapferry.engine import Engine
from snapferry.errors import PeerUnavailable
from snapferry.meta import events as copy_events
from snapferry.meta import jobs as store
from snapferry.metrics import CopyMetrics, new_registry
from snapferry.replication.jobs import COPYING, CopyJob, log_event
from snapferry.replication.peers import PeerClient
from snapferry.replication.transfer import CopyContext, run_copy

log = logging.getLogger(__name__)
T = TypeVar("T")
PRUNE_EVERY = 600.0
"""Seconds between two prunings of the event log."""


def new_owner() -> str:
    """A lease owner id: ``host/pid/random``."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """Whether the owner is a process of this host that no longer runs."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this process: an earlier worker of it stopped without releasing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class CopyWorker:
    """Runs the copy jobs of one region. ``start`` it, ``wake`` it, ``stop`` it."""

    def __init__(
        self,
        engine: Engine,
        peers: PeerClient,
        *,
        lease_seconds: float = 15.0,
        max_jobs: int = 4,
        streams: int = 4,
        poll: float = 0.5,
        clock: Callable[[], float] = time.time,
        event_retention_seconds: float = 14 * 86400.0,
        stall_seconds: float = 600.0,
        metrics: CopyMetrics | None = None,
    ) -> None:
        self.engine = engine
        self.peers = peers
        self.owner = new_owner()
        self.lease_seconds = lease_seconds
        self.max_jobs = max_jobs
        self.poll = poll
        self.clock = clock
        self.event_retention_seconds = event_retention_seconds
        self.stall_seconds = stall_seconds
        self._pruned_at = self._watched_at = 0.0
        self.metrics = metrics or CopyMetrics(new_registry())
        self.ctx = CopyContext(
            engine, peers, self.owner, clock, lease_seconds, streams, stall_seconds, self.metrics
        )
        self._watching: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._claiming = threading.Event()
        self._stopping = False
        self._running: dict[str, asyncio.Task[None]] = {}

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker's loop; it runs no job until ``resume`` (its peers must answer)."""
        self._thread = threading.Thread(target=self._run, name="copy-worker", daemon=True)
        self._thread.start()
        self._ready.wait()

    def resume(self) -> None:
        """Start leasing and running jobs."""
        self._claiming.set()
        self.wake()

    def stop(self) -> None:
        """Stop claiming, cancel running attempts and release their leases."""
        self._stopping = True
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def wake(self) -> None:
        """Look for runnable jobs now."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the worker's loop (where the peer client lives) and wait."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ready.set()
        try:
            while not self._stopping:
                try:
                    await self._claim()
                    await self._prune()
                    self._start_watch()
                except Exception:
                    log.exception("copy worker: claiming jobs failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                self._wake.clear()
        finally:
            tasks = [*self._running.values(), *([self._watching] if self._watching else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.ctx.db(self._release)
            await self.peers.close()

    def _release(self, conn: Connection) -> None:
        """Give back every lease (a graceful stop), telling each copy's log why it paused."""
        for row in store.release(conn, self.owner):
            job = CopyJob.from_row(row)
            if job.state == COPYING:
                log_event(
                    conn,
                    job,
                    "paused",
                    f"paused at {job.completion_percent}%: its region is stopping; it resumes "
                    "where it stopped when a copy worker runs again",
                    self.clock(),
                    percent=job.completion_percent,
                )

    def _start_watch(self) -> None:
        """Look for stalled copies every tenth of the stall time, one look at a time (a look
        may wait seconds on a region that does not answer)."""
        if self._watching is not None and not self._watching.done():
            return
        if self.clock() - self._watched_at < self.stall_seconds / 10:
            return
        self._watched_at = self.clock()
        self._watching = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """Log once, for each stall of a copy into this region, that it stopped moving and
        why: a source region that does not answer a health check becomes the copy's last
        error (the attempt itself may wait minutes before its own call times out)."""
        now = self.clock()

        def stalled(conn: Connection) -> list[CopyJob]:
            jobs = map(CopyJob.from_row, store.active(conn))
            return [job for job in jobs if job.stalled_since(now, self.stall_seconds)]

        try:
            jobs = await self.ctx.db(stalled, write=False)
            if not jobs:
                return
            regions = sorted({job.source_region for job in jobs})
            checks = await asyncio.gather(
                *(self.peers.health(region) for region in regions), return_exceptions=True
            )
            down = {
                region: check
                for region, check in zip(regions, checks, strict=True)
                if isinstance(check, PeerUnavailable)
            }
            told = await self.ctx.db(lambda conn: self._tell_stalled(conn, jobs, down))
        except Exception:
            log.exception("copy worker: looking for stalled copies failed")
            return
        for job_id, message in told:  # committed: count and log each once
            self.metrics.stalls.inc()
            log.warning("copy %s %s", job_id, message)

    def _tell_stalled(
        self, conn: Connection, jobs: list[CopyJob], down: dict[str, PeerUnavailable]
    ) -> list[tuple[str, str]]:
        """Log the stall of each job still stalled as read now (a health check takes seconds:
        meanwhile a copy may have moved, ended or been deleted); (job id, message) of each told."""
        now = self.clock()
        told = []
        for seen in jobs:
            row = store.job(conn, seen.id)
            job = None if row is None else CopyJob.from_row(row)
            since = None if job is None else job.stalled_since(now, self.stall_seconds)
            if job is None or since is None:
                continue
            error = job.last_error or {}
            unreachable = down.get(job.source_region)
            if unreachable is not None and error.get("code") != unreachable.code:
                error = {
                    "code": unreachable.code,
                    "message": f"a health check of the source region failed: {unreachable.message}",
                }
                store.note_error(
                    conn,
                    job.id,
                    json.dumps(error),
                    attempts=job.attempts,
                    last_progress_at=job.last_progress_at,
                )
            last = copy_events.last_of_kind(conn, job.target_key, "stalled")
            if last is not None and float(last.at) >= since:
                continue
            cause = (
                f"the last error: {error.get('code')}: {error.get('message')}"
                if error
                else "no error seen"
            )
            reach = (
                f"region {job.source_region} does not answer"
                if unreachable is not None
                else f"region {job.source_region} answers"
            )
            message = (
                f"stalled at {job.completion_percent}%: no byte has moved for "
                f"{now - since:.0f} s; {cause}; {reach}"
            )
            log_event(
                conn,
                job,
                "stalled",
                message,
                now,
                since=since,
                code=error.get("code"),
                sourceReachable=unreachable is None,
            )
            told.append((job.id, message))
        return told

    async def _prune(self) -> None:
        """Drop the events of targets deleted longer ago than the retention (every few
        minutes: the log only grows by a few rows per copy)."""
        now = self.clock()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        before = now - self.event_retention_seconds
        dropped = await self.ctx.db(lambda conn: copy_events.prune(conn, before))
        if dropped:
            log.info("copy worker: pruned %d events of deleted copy targets", dropped)

    # --- claiming ------------------------------------------------------------------------------
    async def _claim(self) -> None:
        room = self.max_jobs - len(self._running)
        if room <= 0 or not self._claiming.is_set():
            return
        now = self.clock()
        expires = now + self.lease_seconds

        def claim(conn: Any) -> list[str]:
            taken = [
                job_id
                for job_id in store.runnable(conn, now, room)
                if store.claim(conn, job_id, self.owner, now, expires)
            ]
            for job_id, owner in store.leases(conn, now):
                if len(taken) >= room or job_id in self._running or owner == self.owner:
                    continue
                if owner_is_dead(owner) and store.take_over(
                    conn, job_id, owner, self.owner, expires
                ):
                    log.info("copy %s: taking over the lease of dead worker %s", job_id, owner)
                    taken.append(job_id)
            return taken

        for job_id in await self.ctx.db(claim):
            self._running[job_id] = asyncio.create_task(self._attempt(job_id))

    async def _attempt(self, job_id: str) -> None:
        beat = asyncio.create_task(self._heartbeat(job_id, asyncio.current_task()))
        try:
            await run_copy(self.ctx, job_id)
        except asyncio.CancelledError:
            pass
        finally:
            beat.cancel()
            self._running.pop(job_id, None)
            self.wake()  # a retry may be due, or a queued copy of the same family

    async def _heartbeat(self, job_id: str, attempt: asyncio.Task[Any] | None) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            expires = self.clock() + self.lease_seconds

            def renew(conn: Any, until: float = expires) -> bool:
                return store.update_leased(conn, job_id, self.owner, lease_expires=until)

            kept = await self.ctx.db(renew)
            if not kept and attempt is not None:
                log.info("copy %s: lease lost; stopping this attempt", job_id)
                attempt.cancel()
                return
