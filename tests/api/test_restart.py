"""kill -9 of a cloud between and during operations: every acknowledged resource survives, and
every operation in flight ends Succeeded or Failed after the restart, never stuck."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.compute import ComputeManagementClient

from snapferry.engine import Engine
from snapferry.meta import records
from snapferry.sdk import connect
from snapferry.testing.arm import Raw
from snapferry.testing.cloud import RunningCloud

pytestmark = pytest.mark.slow
V = "?api-version=2024-03-02"


def disk_body(location: str = "eastus", gb: int = 1) -> dict[str, Any]:
    return {
        "location": location,
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": gb},
    }


def snap_body(source: str, location: str = "eastus") -> dict[str, Any]:
    return {
        "location": location,
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": source}},
    }


def wait_terminal(raw: Raw, status_url: str, timeout: float = 60) -> dict[str, Any]:
    path = status_url.split(raw.base, 1)[1]
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = raw("GET", path).json()
        if body["status"] != "InProgress" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_acknowledged_resources_survive_kill_9(tmp_path: Path) -> None:
    running = RunningCloud.start(tmp_path / "cloud")
    try:
        old_token = running.cloud["token"]
        compute = connect(ComputeManagementClient, running.cloud, retry_total=0)
        raw = Raw(running.cloud)
        assert raw("PUT", raw.rg_path("keep") + V, json={"location": "eastus"}).ok
        made = {}
        for i, region in enumerate(("eastus", "westus", "eastus")):
            disk = compute.disks.begin_create_or_update("keep", f"d{i}", disk_body(region, i + 1))
            made[f"d{i}"] = disk.result()
        snap = compute.snapshots.begin_create_or_update("keep", "s0", snap_body(made["d0"].id))
        made["s0"] = snap.result()
        compute.disks.begin_update("keep", "d1", {"tags": {"t": "1"}}).result()
        made["d1"].tags = {"t": "1"}
        running.kill()
        running.launch()
        after = connect(
            ComputeManagementClient, {**running.cloud, "token": old_token}, retry_total=0
        )
        for name, before in made.items():
            ops = after.snapshots if name.startswith("s") else after.disks
            now = ops.get("keep", name)
            for field in ("id", "location", "tags", "unique_id", "disk_size_bytes", "time_created"):
                assert getattr(now, field) == getattr(before, field), (name, field)
            assert now.sku.name == before.sku.name
            assert now.provisioning_state == "Succeeded"
        assert sorted(d.name for d in after.disks.list_by_resource_group("keep")) == [
            "d0",
            "d1",
            "d2",
        ]
        assert running.stop() == 0  # a graceful stop exits cleanly
    finally:
        running.kill()


def test_operations_in_flight_end_succeeded_or_failed(tmp_path: Path) -> None:
    """Snapshot seals and deletions are in flight (held by the fault-injection delay) when the
    cloud is killed: after the restart each has completed, none is stuck, and nothing the
    crash left behind is orphaned."""
    running = RunningCloud.start(tmp_path / "cloud", operation_delay=0.3)
    try:
        raw = Raw(running.cloud)
        assert raw("PUT", raw.rg_path("busy") + V, json={"location": "eastus"}).ok
        sources = []
        for i in range(4):
            reply = raw("PUT", raw.item("busy", "disks", f"src{i}") + V, json=disk_body(gb=64))
            assert (
                wait_terminal(raw, reply.headers["Azure-AsyncOperation"])["status"] == "Succeeded"
            )
            sources.append(reply.json()["id"])
        for i in range(8):
            reply = raw("PUT", raw.item("busy", "disks", f"old{i}") + V, json=disk_body(gb=2))
            assert (
                wait_terminal(raw, reply.headers["Azure-AsyncOperation"])["status"] == "Succeeded"
            )
        accepted = {}
        for i in range(16):
            name = f"snap{i}"
            reply = raw(
                "PUT", raw.item("busy", "snapshots", name) + V, json=snap_body(sources[i % 4])
            )
            assert reply.status_code == 202, reply.text
            accepted[name] = reply.headers["Azure-AsyncOperation"]
        for i in range(8):
            reply = raw("DELETE", raw.item("busy", "disks", f"old{i}") + V)
            assert reply.status_code == 202, reply.text
            accepted[f"old{i}"] = reply.headers["Azure-AsyncOperation"]
        last = wait_terminal(raw, accepted["old7"], timeout=0)
        assert last["status"] == "InProgress"  # the kill below lands mid-flight
        running.kill()
        running.launch()
        raw = Raw(running.cloud)
        for name, status_url in accepted.items():
            path = "/" + status_url.split("://", 1)[1].split("/", 1)[1]
            status = raw("GET", path).json()
            assert status["status"] == "Succeeded", (name, status)
            if name.startswith("snap"):
                snap = raw("GET", raw.item("busy", "snapshots", name) + V).json()
                assert snap["properties"]["provisioningState"] == "Succeeded"
            else:
                assert raw("GET", raw.item("busy", "disks", name) + V).status_code == 404
        assert running.stop() == 0
        for region in ("eastus", "westus"):
            assert_no_orphans(running.data_dir / "regions" / region)
    finally:
        running.kill()


def assert_no_orphans(region_dir: Path) -> None:
    """Every engine disk and snapshot of the region is named by an ARM resource: what
    interrupted creations made was deleted at recovery."""
    with Engine.open(region_dir) as engine, engine.db.connect() as conn:
        named = {r.engine_id for r in records.all_records(conn)}
        made = {d.id for d in engine.list_disks()} | {s.id for s in engine.list_snapshots()}
    assert made <= named
