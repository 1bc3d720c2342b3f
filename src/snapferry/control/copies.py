"""CopyStart targets: a snapshot made in this region as a copy of a snapshot in any region.

``CopyStarts.locate`` finds the source through the peers (before the region's lock: it is
network work); ``create`` checks Azure's rules against this region's copy jobs and returns the
target's record, its engine snapshot (an empty import) and its job row, which the region
service commits together — so the PUT's long-running operation ends as soon as the target
exists, at ``completionPercent`` 0 and ``snapshotAccessState`` Pending, and the worker moves the
data. Rules (each ``OperationNotAllowed`` naming what is in the way): one copy in progress per
family per target region; at most ``max_active`` copies in progress per subscription here; a
family's snapshots are copied in creation order; the source must be Available.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from snapferry.control.creation import (
    Region,
    _with_defaults,
    check_sku,
    family_uuid,
    settable,
    size_props,
)
from snapferry.control.errors import InvalidParameter, OperationNotAllowed, ResourceNotFound
from snapferry.control.ids import ResourceId
from snapferry.control.models import SnapshotBody
from snapferry.control.records import Record
from snapferry.engine import Engine
from snapferry.errors import PeerUnavailable
from snapferry.ids import new_id
from snapferry.meta import jobs
from snapferry.replication.jobs import QUEUED, CopyJob
from snapferry.replication.peers import PeerClient, SourceInfo

COPY_START = "CopyStart"
DEFAULT_MAX_ACTIVE = 100
"""In-progress copies per subscription per target region, as in Azure."""


def is_copy_start(body: SnapshotBody) -> bool:
    return body.properties.creation_data.create_option.lower() == COPY_START.lower()


def is_copy_target(rec: Record) -> bool:
    return bool(rec.props.get("creationData", {}).get("createOption") == COPY_START)


async def locate(peers: PeerClient, resource_id: str) -> SourceInfo:
    """The source snapshot, asked of every region at once. ResourceNotFound if none holds it;
    PeerUnavailable if none does among those that answered and some did not."""
    regions = peers.regions
    answers = await asyncio.gather(
        *(peers.resolve(region, resource_id) for region in regions), return_exceptions=True
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


class CopyStarts:
    """Creating CopyStart targets in one region."""

    def __init__(self, region: Region, *, max_active: int = DEFAULT_MAX_ACTIVE) -> None:
        self.region = region
        self.max_active = max_active

    def check_rules(
        self, conn: Connection, subscription: str, source: SourceInfo, full: bool
    ) -> None:
        """OperationNotAllowed unless Azure's copy rules allow a copy of source here now."""
        if not source.available:
            raise OperationNotAllowed(
                f"the source {source.resource_id} is not Available yet (still being created or "
                "copied); retry when it is",
                target="properties.creationData.sourceResourceId",
            )
        if source.family is not None and not full:
            for row in jobs.family_jobs(conn, source.family, subscription):
                other = CopyJob.from_row(row)
                if other.active:
                    raise OperationNotAllowed(
                        f"a copy of this snapshot family to {self.region.name} is already in "
                        f"progress ({other.target_key}, {other.completion_percent}%); only one "
                        "may run at a time",
                        target="properties.creationData.sourceResourceId",
                    )
                if other.source_created_at > source.created_at and not other.full:
                    raise OperationNotAllowed(
                        "snapshots of a family are copied in the order they were created: a "
                        f"newer one ({other.source_resource_id}) is already copied to "
                        f"{self.region.name}",
                        target="properties.creationData.sourceResourceId",
                    )
        if jobs.active_count(conn, subscription) >= self.max_active:
            raise OperationNotAllowed(
                f"{self.max_active} copies are already in progress for this subscription in "
                f"{self.region.name}; retry when one completes"
            )

    def create(
        self, rid: ResourceId, body: SnapshotBody, source: SourceInfo, now: float
    ) -> tuple[dict[str, Any], Callable[[Engine], str], Callable[[str], dict[str, Any]]]:
        """The target's record body, the engine call that makes its (empty) import and returns
        its id, and the job row for that id."""
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
        }
        if speed is not None:
            creation["provisionedBandwidthCopySpeed"] = speed
        props = _with_defaults(settable(props_in))
        props.update(size_props(source.size_bytes), incremental=not full, creationData=creation)
        if not full:
            assert source.family is not None
            props["incrementalSnapshotFamilyId"] = family_uuid(source.family)
        record_body = {"tags": body.tags or {}, "sku": sku, "properties": props}

        def make(engine: Engine) -> str:
            return engine.begin_import(source.size_bytes, family_id=source.family, full=full).id

        def job_row(target_id: str) -> dict[str, Any]:
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

        return record_body, make, job_row
