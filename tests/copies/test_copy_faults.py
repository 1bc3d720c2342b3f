"""Copies through a faulty link: westus's peer calls are dropped before or after the source did
the work, and page frames are corrupted in transit. Every copy still completes byte-identical,
and no corrupted byte is ever stored (the target reads back exactly the source)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from azure.mgmt.compute import ComputeManagementClient

from snapferry.sdk import connect
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import (
    Family,
    MiB,
    cloud_running,
    copies,
    copy_body,
    copy_events,
    sha_of_snapshot,
    wait_copied,
)

pytestmark = pytest.mark.slow
FAULTY = 'peer_faults = "drop=0.15,drop_after=0.1,corrupt=0.3,delay=0.2,seed=11"\ncopy_streams = 3'


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    with cloud_running(tmp_path_factory.mktemp("cloud"), westus_extra=FAULTY) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def patient(cloud: dict[str, Any]) -> ComputeManagementClient:
    """A client that retries a 503 (a PUT whose source lookup lost a peer call) as SDKs do."""
    return connect(ComputeManagementClient, cloud, retry_total=5, retry_backoff_factor=0.2)


def test_copies_complete_through_drops_and_corruption(
    patient: ComputeManagementClient,
    groups: Any,
    cloud: dict[str, Any],
    running: RunningCloud,
) -> None:
    groups.resource_groups.create_or_update("faults", {"location": "eastus"})
    family = Family(patient, "faults", "data", "eastus", 64 * MiB).create()
    rng = np.random.default_rng(3)
    family.write([(0, rng.bytes(40 * MiB)), (50 * MiB, bytes(1 * MiB) + rng.bytes(MiB))])
    for day in range(3):
        if day:
            family.scatter(rng, 0.02)
        name = f"day{day}"
        source = family.snapshot(name)
        patient.snapshots.begin_create_or_update(
            "faults", f"{name}-west", copy_body(source, "westus")
        ).result()
        seen = wait_copied(patient, "faults", f"{name}-west", timeout=180)
        assert seen == sorted(seen) and seen[-1] == 100
        assert sha_of_snapshot(patient, "faults", f"{name}-west") == sha_of_snapshot(
            patient, "faults", name
        )
    log = running.log_tail() + (running.data_dir / "up.log").read_text()
    assert "do not match their id (corrupted)" in log or "do not decompress" in log
    assert "fetching pages failed" in log and "try 1 of" in log
    assert all(r["state"] == "Succeeded" for r in copies(cloud))
    told = [e for r in copies(cloud) for e in copy_events(cloud, r["target"])]
    assert {e["kind"] for e in told} >= {"accepted", "started", "planned", "progress", "succeeded"}
    for event in told:  # what the faulty link did is told as it is, and no grant ever is
        assert "sig=" not in event["message"] and "sig=" not in str(event["details"])
