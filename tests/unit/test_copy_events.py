"""The copy event log's storage: events in order per target and subscription, kept after their
job is gone until the retention passes, and the region setting that sets it."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapferry.cloud import config
from snapferry.engine import Engine
from snapferry.errors import InvalidInput
from snapferry.meta import events, jobs

JOB = {
    "target_id": "t" * 32,
    "subscription": "sub",
    "state": "Queued",
    "source_resource_id": "/subscriptions/sub/x",
    "source_region": "eastus",
    "source_unique_id": "u" * 36,
    "source_engine_id": "s" * 32,
    "source_created_at": 0.0,
    "full": False,
    "enhanced": False,
    "bytes_total": 0,
    "bytes_staged": 0,
    "bytes_transferred": 0,
    "attempts": 0,
    "next_attempt_at": 0.0,
    "created_at": 0.0,
}


def test_events_are_kept_in_order_and_pruned_only_once_their_target_is_gone(
    tmp_path: Path,
) -> None:
    with Engine.open(tmp_path / "region") as engine, engine.db.begin() as conn:
        for job_id, key in (("a" * 32, "/t/kept"), ("b" * 32, "/t/deleted")):
            jobs.insert_job(conn, id=job_id, target_key=key, **JOB)
            for at, kind in ((100.0, "accepted"), (200.0, "progress"), (900.0, "succeeded")):
                events.add(
                    conn,
                    job_id=job_id,
                    target_key=key,
                    subscription="sub",
                    at=at,
                    kind=kind,
                    message=kind,
                    details={"at": at},
                )
        jobs.delete_job(conn, "b" * 32)
        kept = events.events(conn, "sub", "/t/kept")
        assert [e.kind for e in kept] == ["accepted", "progress", "succeeded"]
        assert [e.kind for e in events.events(conn, "sub", "/t/kept", after=kept[0].id)] == [
            "progress",
            "succeeded",
        ]
        assert events.events(conn, "other", "/t/kept") == []  # another subscription sees none
        assert events.prune(conn, before=500.0) == 2  # the deleted target's older events
        assert [e.kind for e in events.events(conn, "sub", "/t/deleted")] == ["succeeded"]
        assert len(events.events(conn, "sub", "/t/kept")) == 3  # a live target keeps all


def test_the_retention_and_the_stall_time_are_region_settings(tmp_path: Path) -> None:
    def region(extra: str) -> config.RegionConfig:
        path = tmp_path / "cloud.toml"
        path.write_text(f'[[regions]]\nname = "eastus"\n{extra}\n')
        (made,) = config.load(path, data_dir=tmp_path).regions
        return made

    assert region("").copy_event_days == 14
    assert region("copy_event_days = 0.5").copy_event_days == 0.5
    for bad in ("0", "-1", '"soon"', "4000"):
        with pytest.raises(InvalidInput, match="copy_event_days"):
            region(f"copy_event_days = {bad}")
    assert region("").copy_stall_seconds == 600
    assert region("copy_stall_seconds = 2").copy_stall_seconds == 2
    for bad in ("0", '"long"', "100000"):
        with pytest.raises(InvalidInput, match="copy_stall_seconds"):
            region(f"copy_stall_seconds = {bad}")
