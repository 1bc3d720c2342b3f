"""What a copy is doing and what to do about it, in plain words, from its report and its events
(``snapferry copy diagnose``). A pure function of what the cloud answered: no calls.

Codes (stable, for scripts): ``moving``, ``queued``, ``succeeded`` (healthy), and
``paused-storage-full``, ``paused-storage-read-only``, ``stalled-source-unreachable``,
``stalled-no-progress``, ``failed-source-deleted``, ``failed-other`` (not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RATE_WINDOW = 60.0
"""Seconds of progress events the rate is measured over."""
UNREACHABLE = ("PeerUnavailable", "RegionUnavailable")
"""Error codes that mean the target region could not get what it asked of the source."""
PAUSED = {"StorageFull": "paused-storage-full", "StorageReadOnly": "paused-storage-read-only"}
"""Error codes that mean the target region's own storage refused the copy's data."""


@dataclass(frozen=True)
class Diagnosis:
    code: str
    summary: str
    advice: str
    rate: float | None = None
    """Bytes copied per second over the last minute (of a copy that is moving)."""
    eta: float | None = None
    """Seconds left at that rate."""

    @property
    def healthy(self) -> bool:
        return self.code in ("moving", "queued", "succeeded")

    def fields(self) -> dict[str, Any]:
        return {
            "diagnosis": self.code,
            "summary": self.summary,
            "advice": self.advice,
            "rateBytesPerSecond": self.rate,
            "etaSeconds": self.eta,
        }


def diagnose(
    report: Mapping[str, Any], events: Sequence[Mapping[str, Any]], now: float
) -> Diagnosis:
    """What the copy of ``report`` (as ``copy show`` gives it) is doing at ``now``, using its
    events (as ``copy events`` gives them) for the rate."""
    state = report["state"]
    error = report.get("lastError") or {}
    code = str(error.get("code", ""))
    cause = f"{code}: {error.get('message', '')}" if error else "none seen"
    total, copied = int(report["bytesTotal"]), int(report["bytesCopied"])
    if state == "Succeeded":
        began = report.get("startedAt") or report["createdAt"]
        took = float(report.get("endedAt") or now) - float(began)
        return Diagnosis(
            "succeeded",
            f"copied {total} bytes in {took:.1f} s ({report['bytesTransferred']} bytes on the "
            f"wire); the target is Available",
            "nothing to do.",
        )
    if state == "Failed":
        if code == "CopySourceNotFound":
            return Diagnosis(
                "failed-source-deleted",
                f"failed at {report['completionPercent']}%: its source snapshot was deleted",
                "delete this target, or copy another snapshot of the family (a retry would "
                "fail the same way).",
            )
        return Diagnosis(
            "failed-other",
            f"failed at {report['completionPercent']}% ({cause})",
            f"retry it with the same CopyStart: {_retry_command(report)}",
        )
    if state in ("Queued", "Stalled") and code in PAUSED:
        region = report.get("region", "the target region")
        if code == "StorageFull":
            why, fix = "is full", f"free space in {region} (delete disks or snapshots there)"
        else:
            why, fix = "is read-only", f"make the filesystem of {region} writable again"
        return Diagnosis(
            PAUSED[code],
            f"paused at {report['completionPercent']}%: the storage of {region} {why} ({cause})",
            f"{fix}; the copy resumes by itself within 30 s, sending nothing it already holds.",
        )
    if state == "Stalled":
        since = float(report.get("stalledSince") or now)
        still = f"no byte has moved for {now - since:.0f} s (since {since:.0f})"
        if code in UNREACHABLE:
            return Diagnosis(
                "stalled-source-unreachable",
                f"stalled at {report['completionPercent']}%: {still}; the last error: {cause}",
                f"check that region {report.get('sourceRegion')} runs and that "
                f"{report.get('region', 'the target region')} reaches it; the copy resumes by "
                "itself when it answers.",
            )
        return Diagnosis(
            "stalled-no-progress",
            f"stalled at {report['completionPercent']}%: {still}; the last error: {cause}",
            "read `snapferry copy events` and the target region's log for what it waits on; "
            "the copy resumes by itself when bytes move again.",
        )
    if state == "Queued" and not report.get("attempts"):
        ahead = int(report.get("queuedBehind", 0))
        return Diagnosis(
            "queued",
            f"accepted, waiting for a copy worker ({ahead} cop{'y' if ahead == 1 else 'ies'} "
            f"into {report.get('region', 'its region')} accepted before it not over yet)",
            "nothing to do: it starts when a worker is free.",
        )
    rate = _rate(events, now)
    if rate is None:
        began = report.get("startedAt")
        if began and now > float(began) and copied:
            rate = copied / (now - float(began))
    eta = (total - copied) / rate if rate else None
    doing = "retrying after an error" if state == "Queued" else "copying"
    pace = f", {rate / 1e6:.1f} MB/s" if rate else ""
    left = f", about {eta:.0f} s left" if eta is not None else ""
    retry = f" (last error: {cause})" if state == "Queued" else ""
    return Diagnosis(
        "moving",
        f"{doing}: {report['completionPercent']}% of {total} bytes{pace}{left}{retry}",
        "nothing to do: it is moving.",
        rate,
        eta,
    )


def _rate(events: Sequence[Mapping[str, Any]], now: float) -> float | None:
    """Bytes per second between the first and last progress events of the last minute."""
    recent = [e for e in events if e["kind"] == "progress" and now - float(e["at"]) <= RATE_WINDOW]
    if len(recent) < 2:
        return None
    first, last = recent[0], recent[-1]
    seconds = float(last["at"]) - float(first["at"])
    moved = int(last["details"]["bytesCopied"]) - int(first["details"]["bytesCopied"])
    return moved / seconds if seconds > 0 and moved >= 0 else None


def _retry_command(report: Mapping[str, Any]) -> str:
    parts = str(report["target"]).split("/")
    try:
        group = parts[parts.index("resourceGroups") + 1]
    except (ValueError, IndexError):
        group = "GROUP"
    return (
        f"snapferry snapshot copy -g {group} -n {parts[-1]} --source {report['source']} "
        f"-l {report.get('region', 'REGION')}"
    )
