"""``snapferry copy diagnose``'s reasoning, case by case: each of the guide's situations gets its
stable code and advice a person can act on; and the report's Stalled, worked out from durable
times, clears by itself when bytes move again."""

from __future__ import annotations

from typing import Any

import pytest

from snapferry.client.diagnose import diagnose
from snapferry.replication.jobs import CopyJob

TARGET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/day1-west"
NOW = 10_000.0


def report(**changes: Any) -> dict[str, Any]:
    base = {
        "target": TARGET,
        "state": "Copying",
        "stalledSince": None,
        "queuedBehind": 0,
        "completionPercent": 40,
        "bytesTotal": 1000_000_000,
        "bytesCopied": 400_000_000,
        "bytesTransferred": 400_000_000,
        "createdAt": NOW - 100,
        "startedAt": NOW - 90,
        "lastProgressAt": NOW - 1,
        "endedAt": None,
        "lastError": None,
        "attempts": 1,
        "source": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/day1",
        "sourceRegion": "eastus",
        "region": "westus",
    }
    return {**base, **changes}


def progress(at: float, copied: int) -> dict[str, Any]:
    return {"kind": "progress", "at": at, "details": {"bytesCopied": copied}}


def test_a_moving_copy_gives_its_rate_over_the_last_minute_and_time_left() -> None:
    events = [progress(NOW - 200, 0), progress(NOW - 50, 100_000_000), progress(NOW, 400_000_000)]
    found = diagnose(report(), events, NOW)
    assert found.code == "moving" and found.healthy
    assert found.rate == pytest.approx(6_000_000)  # the last minute only
    assert found.eta == pytest.approx(100)
    assert "6.0 MB/s" in found.summary and "about 100 s left" in found.summary


@pytest.mark.parametrize(
    ("changes", "code", "healthy", "words"),
    [
        ({"state": "Queued", "attempts": 0, "queuedBehind": 3}, "queued", True, "3 copies"),
        (
            {"state": "Succeeded", "endedAt": NOW, "completionPercent": 100},
            "succeeded",
            True,
            "Available",
        ),
        (
            {
                "state": "Stalled",
                "stalledSince": NOW - 700,
                "lastError": {"code": "PeerUnavailable", "message": "region eastus ..."},
            },
            "stalled-source-unreachable",
            False,
            "check that region eastus runs",
        ),
        (
            {"state": "Stalled", "stalledSince": NOW - 700},
            "stalled-no-progress",
            False,
            "copy events",
        ),
        (
            {"state": "Failed", "lastError": {"code": "CopySourceNotFound", "message": "gone"}},
            "failed-source-deleted",
            False,
            "delete this target",
        ),
        (
            {"state": "Failed", "lastError": {"code": "InternalError", "message": "boom"}},
            "failed-other",
            False,
            "snapferry snapshot copy -g rg -n day1-west --source",
        ),
        (
            {"state": "Queued", "attempts": 2, "lastError": {"code": "PeerUnavailable"}},
            "moving",
            True,
            "retrying after an error",
        ),
    ],
)
def test_each_situation_has_its_code_and_advice(
    changes: dict[str, Any], code: str, healthy: bool, words: str
) -> None:
    found = diagnose(report(**changes), [], NOW)
    assert (found.code, found.healthy) == (code, healthy)
    assert words in found.summary + " " + found.advice
    assert set(found.fields()) == {
        "diagnosis",
        "summary",
        "advice",
        "rateBytesPerSecond",
        "etaSeconds",
    }


def job(**changes: Any) -> CopyJob:
    values: dict[str, Any] = dict.fromkeys(CopyJob.__dataclass_fields__)
    values.update(
        state="Copying",
        attempts=1,
        created_at=0.0,
        started_at=100.0,
        last_progress_at=None,
        full=False,
        enhanced=False,
    )
    values.update(changes)
    return CopyJob(**values)


def test_stalled_is_worked_out_from_durable_times_and_clears_when_bytes_move() -> None:
    assert job().stalled_since(now=650.0, stall_seconds=600) is None  # started 550 s ago
    assert job().stalled_since(now=701.0, stall_seconds=600) == 100.0  # nothing since it began
    moved = job(last_progress_at=690.0)
    assert moved.stalled_since(now=701.0, stall_seconds=600) is None  # bytes moved again
    assert job(state="Queued", attempts=0, started_at=None).stalled_since(9e9, 600) is None
    assert job(state="Succeeded").stalled_since(now=9e9, stall_seconds=600) is None
