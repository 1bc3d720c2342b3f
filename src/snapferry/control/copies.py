"""CopyStart targets: snapshots made in this region as copies of snapshots in any region.

``CopyTargets.locate`` finds the source through the peers (before the region's lock: it is
network work); ``create`` checks Azure's rules against this region's copy jobs, makes the
target's engine snapshot (an empty import) and commits its record, a Succeeded operation and
its job row together — so the PUT's long-running operation ends as soon as the target exists,
at ``completionPercent`` 0 and ``snapshotAccessState`` Pending, and the copy worker moves the
data. A target is usable (restore, SAS, onward copy) once its copy reached 100 %; a failed one
stays visible, deletable, and retried by a PUT again.

Rules, each an ``OperationNotAllowed`` naming what is in the way, and each within the target's
subscription (another subscription's copies are never named, nor used as a delta's base): one
copy in progress per family per target region; at most ``max_active`` copies in progress per
subscription here; a family's snapshots are copied in creation order; the source must be
Available.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from snapferry.control import render
from snapferry.control.creation import (
    Region,
    _with_defaults,
    check_sku,
    family_uuid,
    kept_options,
    settable,
    size_props,
)
from snapferry.control.errors import InvalidParameter, OperationNotAllowed, ResourceNotFound
from snapferry.control.ids import ResourceId
from snapferry.control.models import SnapshotBody
from snapferry.engine import Engine
from snapferry.errors import PeerUnavailable
from snapferry.ids import new_id
from snapferry.meta import events as copy_events
from snapferry.meta import jobs, records
from snapferry.meta.records import Operation, Record
from snapferry.replication.jobs import (
    COPYING,
    FAILED,
    QUEUED,
    STALLED,
    SUCCEEDED,
    CopyJob,
    event_report,
    log_event,
)
from snapferry.replication.peers import PeerClient, SourceInfo
from snapferry.replication.worker import CopyWorker

COPY_START = "CopyStart"
DEFAULT_MAX_ACTIVE = 100
"""In-progress copies per subscription per target region, as in Azure."""
DEFAULT_STALL_SECONDS = 600.0
"""A started copy that moves no byte for this long is reported Stalled."""


def is_copy_start(body: SnapshotBody) -> bool:
    return body.properties.creation_data.create_option.lower() == COPY_START.lower()


def is_copy_target(rec: Record) -> bool:
    return bool(rec.props.get("creationData", {}).get("createOption") == COPY_START)


RESOLVE_SECONDS = 10.0
"""A region that has not said whether it holds a copy's source by then counts as down."""


async def locate(peers: PeerClient, resource_id: str) -> SourceInfo:
    """The source snapshot, asked of every region at once. ResourceNotFound if none holds it;
    PeerUnavailable if none does among those that answered and some did not (in time)."""
    regions = peers.regions
    answers = await asyncio.gather(
        *(
            asyncio.wait_for(peers.resolve(region, resource_id), RESOLVE_SECONDS)
            for region in regions
        ),
        return_exceptions=True,
    )
    down = []
    for region, answer in zip(regions, answers, strict=True):
        if isinstance(answer, SourceInfo):
            return answer
        if isinstance(answer, BaseException):
            down.append(region)
    if down:
        raise PeerUnavailable(
            f"the source {resource_id[:300]} was not found, and region(s) {', '.join(down)} "
            "could not be asked; retry when they are back"
        )
    raise ResourceNotFound(
        f"the source {resource_id[:300]} was not found in any region",
        target="properties.creationData.sourceResourceId",
    )


class CopyTargets:
    """The CopyStart targets of one region and their jobs. The region service calls ``create``
    and ``retry`` under its lock."""

    def __init__(
        self,
        region: Region,
        engine: Engine,
        copier: CopyWorker | None,
        *,
        clock: Callable[[], float] = time.time,
        max_active: int = DEFAULT_MAX_ACTIVE,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
    ) -> None:
        self.region = region
        self.engine = engine
        self.copier = copier
        self.clock = clock
        self.max_active = max_active
        self.stall_seconds = stall_seconds

    # --- reads ---------------------------------------------------------------------------------
    def job_of(self, rec: Record) -> CopyJob | None:
        """The copy job of a CopyStart target (None for any other resource)."""
        if not is_copy_target(rec):
            return None
        with self.engine.db.connect() as conn:
            row = jobs.job_of_target(conn, rec.key)
        return None if row is None else CopyJob.from_row(row)

    def usable(self, key: str) -> Record | None:
        """The record at key as a source (of a restore, a copy, a SAS); OperationNotAllowed for
        a copy target still short of 100 %, or a resource whose creation failed."""
        with self.engine.db.connect() as conn:
            rec = records.get(conn, key)
        if rec is not None and rec.state == "failed":
            raise OperationNotAllowed(
                f"{rec.id} failed to be created: it cannot be restored, read or copied; delete "
                "it, or PUT it again"
            )
        copy = None if rec is None else self.job_of(rec)
        if rec is not None and copy is not None and copy.state != SUCCEEDED:
            raise OperationNotAllowed(
                f"{rec.id} is still being copied ({copy.completion_percent}%); it can be "
                "restored, read or copied once it reaches 100%"
            )
        return rec

    def reports(self, subscription: str, target: str | None = None) -> list[dict[str, Any]]:
        """Where the copies into this region stand (of one subscription; of one target)."""
        now = self.clock()
        with self.engine.db.connect() as conn:
            out = []
            waiting = jobs.active_since(conn)
            for job in map(CopyJob.from_row, jobs.jobs(conn, subscription.lower())):
                if target is not None and job.target_key != target.lower():
                    continue
                rec = records.get(conn, job.target_key)
                base = records.by_engine_id(conn, job.base_id) if job.base_id else None
                out.append(
                    job.report(
                        rec.id if rec else job.target_key,
                        base.id if base else None,
                        now=now,
                        stall_seconds=self.stall_seconds,
                        ahead=bisect.bisect_left(waiting, job.created_at),
                    )
                )
        return out

    def counts(self) -> dict[str, int]:
        """How many copies into this region are in each state, Stalled apart from Copying
        (``snapferry_copies``)."""
        now = self.clock()
        with self.engine.db.connect() as conn:
            counts = dict.fromkeys((QUEUED, COPYING, STALLED, SUCCEEDED, FAILED), 0)
            counts.update(jobs.count_by_state(conn))
            for row in jobs.active(conn):
                if CopyJob.from_row(row).stalled_since(now, self.stall_seconds) is not None:
                    counts[STALLED] += 1
                    counts[str(row.state)] -= 1
        return counts

    def events(self, subscription: str, target: str, after: int = 0) -> list[dict[str, Any]]:
        """The events of the copy into target (a resource id) with ids above ``after``, in
        order; kept after the target is deleted, until pruned."""
        with self.engine.db.connect() as conn:
            rows = copy_events.events(conn, subscription.lower(), target.lower(), after)
        return [event_report(row) for row in rows]

    # --- changes -------------------------------------------------------------------------------
    def locate(self, source_id: str | None) -> SourceInfo:
        """The source a CopyStart names, from whichever region holds it."""
        if not source_id:
            raise InvalidParameter(
                "createOption CopyStart needs creationData.sourceResourceId",
                target="properties.creationData.sourceResourceId",
            )
        if ResourceId.parse(source_id).rtype != "snapshots":
            raise InvalidParameter(
                "CopyStart copies a snapshot: snapshot the disk first",
                target="properties.creationData.sourceResourceId",
            )
        if self.copier is None:
            raise OperationNotAllowed(f"region {self.region.name} does not run copies")
        return self.copier.call(locate(self.copier.peers, source_id))

    def create(
        self, rid: ResourceId, body: SnapshotBody, source: SourceInfo, request: str
    ) -> tuple[dict[str, Any], Operation]:
        """Make the target (an empty import), its record, a Succeeded operation and its job,
        committed together; the worker is woken to move the data. ``request``: the PUT's
        digest (a retried PUT joins the same creation)."""
        now = self.clock()
        record_body, full = self._target_body(body, source)
        if not source.available:
            raise OperationNotAllowed(
                f"the source {source.resource_id} is not Available yet (still being created or "
                "copied); retry when it is",
                target="properties.creationData.sourceResourceId",
            )
        with self.engine.db.connect() as conn:
            family = None if full else source.family
            self.check_rules(conn, rid.subscription.lower(), family, source.created_at)
        target_id = self.engine.begin_import(
            source.size_bytes,
            family_id=source.family,
            full=full,
            zone=self.region.zone_for(str(record_body["sku"])),
        ).id
        body_out = {**record_body, "request": request}
        rec = Record.new(rid, self.region.name, target_id, "succeeded", body_out, now)
        op = Operation(
            new_id(), rec.subscription, rec.key, "create", "Succeeded", None, None, now, now
        )
        job = self._job_row(rid, source, target_id, full, record_body, now)
        try:
            with self.engine.db.begin() as conn:
                self.forget(conn, rid.key)  # a job its target's record outlived (none, normally)
                records.put(conn, rec)
                records.add_operation(conn, op)
                jobs.insert_job(conn, **job)
                made = CopyJob.from_row(jobs.job(conn, job["id"]))
                log_event(
                    conn,
                    made,
                    "accepted",
                    f"accepted: {'a full' if full else 'an incremental'} copy of "
                    f"{source.resource_id} (region {source.region}) into {rid.key}",
                    now,
                    source=source.resource_id,
                    sourceRegion=source.region,
                    sizeBytes=source.size_bytes,
                )
        except Exception:
            self.engine.delete_snapshot(target_id)
            raise
        self._wake()
        return render.resource(rec, made), op

    def retry(self, rec: Record) -> Operation | None:
        """Queue a failed target's copy again (what it already holds is kept: nothing stored is
        fetched again); None if rec is not a failed copy."""
        copy = self.job_of(rec)
        if copy is None or copy.state != FAILED:
            return None
        with self.engine.db.connect() as conn:
            self.check_rules(
                conn, rec.subscription, copy.source_family, copy.source_created_at, exclude=copy.id
            )
        now = self.clock()
        op = Operation(
            new_id(), rec.subscription, rec.key, "create", "Succeeded", None, None, now, now
        )
        with self.engine.db.begin() as conn:
            jobs.update_job(
                conn,
                copy.id,
                state=QUEUED,
                next_attempt_at=now,
                ended_at=None,
                lease_owner=None,
                lease_expires=None,
            )
            records.add_operation(conn, op)
            log_event(
                conn,
                copy,
                "queued",
                f"queued again by a retry of the failed copy ({copy.completion_percent}% held)",
                now,
            )
        self._wake()
        return op

    @staticmethod
    def forget(conn: Connection, key: str) -> None:
        """Drop the job of a deleted target (in the transaction that drops its record): a
        worker still running it stops at its next commit."""
        row = jobs.job_of_target(conn, key)
        if row is not None:
            job = CopyJob.from_row(row)
            stopped = f"; its copy stopped at {job.completion_percent}%" if job.active else ""
            log_event(
                conn,
                job,
                "deleted",
                f"the copy destination {key} was deleted{stopped}",
                time.time(),
            )
            jobs.delete_job(conn, row.id)

    def _wake(self) -> None:
        if self.copier is not None:
            self.copier.wake()

    # --- rules and shapes ----------------------------------------------------------------------
    def check_rules(
        self,
        conn: Connection,
        subscription: str,
        family: str | None,
        created_at: float,
        *,
        exclude: str | None = None,
    ) -> None:
        """OperationNotAllowed unless Azure's copy rules allow another copy into subscription
        here now: of a snapshot of ``family`` (None: a full copy) made at ``created_at``
        (``exclude``: a job to leave out, the one being retried)."""
        if family is not None:
            for row in jobs.family_jobs(conn, family, subscription):
                other = CopyJob.from_row(row)
                if other.id == exclude:
                    continue
                if other.active:
                    raise OperationNotAllowed(
                        f"a copy of this snapshot family to {self.region.name} is already in "
                        f"progress ({other.target_key}, {other.completion_percent}%); only one "
                        "may run at a time",
                        target="properties.creationData.sourceResourceId",
                    )
                if other.source_created_at > created_at and not other.full:
                    raise OperationNotAllowed(
                        "snapshots of a family are copied in the order they were created: a "
                        f"newer one ({other.source_resource_id}) is already copied to "
                        f"{self.region.name}",
                        target="properties.creationData.sourceResourceId",
                    )
        active = jobs.active_count(conn, subscription)
        if active >= self.max_active:
            raise OperationNotAllowed(
                f"{self.max_active} copies are already in progress for this subscription in "
                f"{self.region.name}; retry when one completes"
            )

    def _target_body(self, body: SnapshotBody, source: SourceInfo) -> tuple[dict[str, Any], bool]:
        """The target's record body, and whether it is a full snapshot."""
        props_in = body.properties
        if props_in.incremental and not source.incremental:
            raise InvalidParameter(
                "the copy of a full snapshot is a full snapshot: leave incremental out or false",
                target="properties.incremental",
            )
        full = props_in.incremental is False or not source.incremental
        sku = body.sku.name if body.sku else self.region.snapshot_sku
        check_sku(self.region, sku, None)
        speed = props_in.creation_data.provisioned_bandwidth_copy_speed
        creation: dict[str, Any] = {
            "createOption": COPY_START,
            "sourceResourceId": source.resource_id,
            "sourceUniqueId": source.unique_id,
            **kept_options(props_in.creation_data),
        }
        if speed is not None:
            creation["provisionedBandwidthCopySpeed"] = speed
        props = _with_defaults(settable(props_in))
        props.update(size_props(source.size_bytes), incremental=not full, creationData=creation)
        if not full:
            assert source.family is not None
            props["incrementalSnapshotFamilyId"] = family_uuid(source.family)
        return {"tags": body.tags or {}, "sku": sku, "properties": props}, full

    @staticmethod
    def _job_row(
        rid: ResourceId,
        source: SourceInfo,
        target_id: str,
        full: bool,
        record_body: dict[str, Any],
        now: float,
    ) -> dict[str, Any]:
        speed = record_body["properties"]["creationData"].get("provisionedBandwidthCopySpeed")
        return {
            "id": new_id(),
            "target_key": rid.key,
            "target_id": target_id,
            "subscription": rid.subscription.lower(),
            "state": QUEUED,
            "source_resource_id": source.resource_id,
            "source_region": source.region,
            "source_unique_id": source.unique_id,
            "source_engine_id": source.engine_id,
            "source_family": None if full else source.family,
            "source_created_at": source.created_at,
            "full": full,
            "enhanced": speed == "Enhanced",
            "bytes_total": 0,
            "bytes_staged": 0,
            "bytes_transferred": 0,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
