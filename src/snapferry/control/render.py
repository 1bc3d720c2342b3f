"""ARM JSON of disks, snapshots and operation status resources."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from snapferry.control.ids import RESOURCE_TYPES
from snapferry.meta.records import Operation, Record
from snapferry.replication.jobs import FAILED, SUCCEEDED, CopyJob

PROVISIONING = {
    "creating": "Updating",
    "updating": "Updating",
    "deleting": "Deleting",
    "succeeded": "Succeeded",
    "failed": "Failed",
}


def timestamp(ts: float) -> str:
    """RFC 3339 with microseconds, as ARM writes times."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def disk_state(rec: Record, now: float | None = None) -> str:
    """The diskState ARM shows: access-derived while a SAS is live, else the resting state."""
    access = rec.body.get("access")
    resting: str = rec.body.get("restingState", "Unattached")
    if access and access["expiresAt"] > (time.time() if now is None else now):
        if access["access"] == "Write" and resting == "ReadyToUpload":
            return "ActiveUpload"
        return "ActiveSAS"
    return resting


def _tier(sku: str) -> str:
    return sku.split("_", 1)[0]


def resource(rec: Record, copy: CopyJob | None = None) -> dict[str, Any]:
    """The resource as GET answers it; a CopyStart target shows its copy's progress (``copy``):
    Pending until 100 %, Failed with ``copyCompletionError`` if its source went away."""
    props = dict(rec.props)
    props["uniqueId"] = rec.unique_id
    props["timeCreated"] = timestamp(rec.created_at)
    props["provisioningState"] = PROVISIONING[rec.state]
    props["diskState"] = disk_state(rec)
    if copy is not None:
        props["completionPercent"] = copy.completion_percent
        props["snapshotAccessState"] = "Available" if copy.state == SUCCEEDED else "Pending"
        if copy.state == FAILED and rec.state == "succeeded":
            props["provisioningState"] = "Failed"
            error = copy.last_error or {}
            props["copyCompletionError"] = {
                "errorCode": error.get("code", "CopySourceNotFound"),
                "errorMessage": error.get("message", "the copy failed"),
            }
    body: dict[str, Any] = {
        "id": rec.id,
        "name": rec.name,
        "type": RESOURCE_TYPES[rec.rtype],
        "location": rec.location,
    }
    if rec.body.get("tags"):
        body["tags"] = rec.body["tags"]
    sku = rec.body.get("sku")
    if sku:
        body["sku"] = {"name": sku, "tier": _tier(sku)}
    if rec.body.get("zones"):
        body["zones"] = rec.body["zones"]
    body["properties"] = props
    return body


def operation(op: Operation) -> dict[str, Any]:
    """The operation status resource."""
    body: dict[str, Any] = {
        "name": op.id,
        "status": op.status,
        "startTime": timestamp(op.started_at),
    }
    if op.ended_at is not None:
        body["endTime"] = timestamp(op.ended_at)
        body["percentComplete"] = 100
    if op.error is not None:
        body["error"] = op.error
    return body
