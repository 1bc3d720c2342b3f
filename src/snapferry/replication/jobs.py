"""Copy jobs as the replication layer sees them: ``CopyJob`` (a ``copy_jobs`` row), what
``snapferry copy list|show`` report of one, and the events it logs (``snapferry copy events``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from snapferry.meta import events as event_store
from snapferry.meta.jobs import ACTIVE

QUEUED, COPYING, SUCCEEDED, FAILED = "Queued", "Copying", "Succeeded", "Failed"
STALLED = "Stalled"
"""Reported (never stored) for a started copy that has not moved for the stall time."""


@dataclass(frozen=True)
class CopyJob:
    """One copy into this region (see ``meta.schema.copy_jobs``)."""

    id: str
    target_key: str
    target_id: str
    subscription: str
    state: str
    source_resource_id: str
    source_region: str
    source_unique_id: str
    source_engine_id: str
    source_family: str | None
    source_created_at: float
    full: bool
    enhanced: bool
    access: dict[str, Any] | None
    base_id: str | None
    anchor_id: str | None
    plan: bytes | None
    bytes_total: int
    bytes_staged: int
    bytes_transferred: int
    attempts: int
    last_error: dict[str, Any] | None
    next_attempt_at: float
    lease_owner: str | None
    lease_expires: float | None
    created_at: float
    started_at: float | None
    last_progress_at: float | None
    ended_at: float | None

    @classmethod
    def from_row(cls, row: Any) -> CopyJob:
        values = dict(row._mapping)
        values["access"] = None if row.access is None else json.loads(row.access)
        values["last_error"] = None if row.last_error is None else json.loads(row.last_error)
        values["plan"] = None if row.plan is None else bytes(row.plan)
        return cls(**values)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def completion_percent(self) -> int:
        """Monotonic: the share of the planned bytes the target durably holds; 100 only once
        the copy has committed."""
        if self.state == SUCCEEDED:
            return 100
        if self.bytes_total <= 0:
            return 0
        return min(99, self.bytes_staged * 100 // self.bytes_total)

    def moved_at(self) -> float | None:
        """When the copy last moved: its last committed piece, else when it first started
        (None: never started)."""
        return self.last_progress_at or self.started_at

    def stalled_since(self, now: float, stall_seconds: float) -> float | None:
        """When a copy that has started but not moved for ``stall_seconds`` stopped moving
        (None if it is moving, waiting for its first attempt, or over). Worked out from durable
        times, so it holds in any process and clears by itself when bytes move again."""
        moved = self.moved_at()
        if not self.active or moved is None or now - moved < stall_seconds:
            return None
        return moved

    def report(
        self,
        target: str,
        base: str | None,
        *,
        now: float,
        stall_seconds: float,
        ahead: int = 0,
    ) -> dict[str, Any]:
        """What ``snapferry copy show`` prints (``target``/``base``: ARM ids; ``ahead``: the
        region's copies not over that were accepted before this one)."""
        stalled = self.stalled_since(now, stall_seconds)
        return {
            "target": target,
            "state": STALLED if stalled is not None else self.state,
            "stalledSince": stalled,
            "queuedBehind": ahead if self.state == QUEUED and self.attempts == 0 else 0,
            "completionPercent": self.completion_percent,
            "bytesTotal": self.bytes_total,
            "bytesCopied": self.bytes_staged if self.state != SUCCEEDED else self.bytes_total,
            "bytesTransferred": self.bytes_transferred,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "lastProgressAt": self.last_progress_at,
            "endedAt": self.ended_at,
            "lastError": self.last_error,
            "attempts": self.attempts,
            "source": self.source_resource_id,
            "sourceRegion": self.source_region,
            "baseSnapshot": base,
            "full": self.full,
            "provisionedBandwidthCopySpeed": "Enhanced" if self.enhanced else "None",
        }


def log_event(
    conn: Connection, job: CopyJob, kind: str, message: str, at: float, **details: Any
) -> None:
    """Append an event to the job's log (in the caller's transaction). Messages name ids,
    sizes and causes, never a grant or a key."""
    event_store.add(
        conn,
        job_id=job.id,
        target_key=job.target_key,
        subscription=job.subscription,
        at=at,
        kind=kind,
        message=message,
        details=details,
    )


def event_report(row: Any) -> dict[str, Any]:
    """What ``snapferry copy events`` prints of one event."""
    return {
        "id": int(row.id),
        "at": float(row.at),
        "kind": str(row.kind),
        "message": str(row.message),
        "copyId": str(row.job_id),
        "details": json.loads(row.details),
    }
