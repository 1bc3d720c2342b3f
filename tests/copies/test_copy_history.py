"""A family copied again and again while its source region deletes and compacts snapshots:
each copy still moves only the pages changed since the last snapshot copied (at most 1.1x the
bytes changed), and every copy reads back byte-identical."""

from __future__ import annotations

import subprocess
from typing import Any

import numpy as np
import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.testing.cloud import RunningCloud, command
from snapferry.testing.copies import Family, MiB, copies, copy_body, sha_of_snapshot, wait_copied

pytestmark = pytest.mark.slow


def copy_and_check(
    compute: ComputeManagementClient, cloud: dict[str, Any], name: str, changed: int
) -> dict[str, Any]:
    source = str(compute.snapshots.get("hist", name).id)
    made = compute.snapshots.begin_create_or_update(
        "hist", f"{name}-west", copy_body(source, "westus")
    ).result()
    assert wait_copied(compute, "hist", f"{name}-west")[-1] == 100
    (report,) = copies(cloud, str(made.id))
    assert report["bytesTransferred"] <= 1.1 * changed, (report, changed)
    assert sha_of_snapshot(compute, "hist", f"{name}-west") == sha_of_snapshot(
        compute, "hist", name
    )
    return report


def test_deltas_stay_exact_across_deleted_and_compacted_source_snapshots(
    running: RunningCloud, compute: ComputeManagementClient, groups: ResourceManagementClient
) -> None:
    cloud = running.cloud
    groups.resource_groups.create_or_update("hist", {"location": "eastus"})
    family = Family(compute, "hist", "data", "eastus", 64 * MiB).create()
    rng = np.random.default_rng(21)
    family.write([(0, rng.bytes(16 * MiB))])
    family.snapshot("s1")
    first = copy_and_check(compute, cloud, "s1", 16 * MiB)
    assert first["baseSnapshot"] is None
    changed = family.scatter(rng, 0.01)
    family.snapshot("s2")
    copy_and_check(compute, cloud, "s2", changed)
    # two snapshots more; the middle one is deleted (folded) before the newest is copied
    changed = family.scatter(rng, 0.01)
    family.snapshot("s3")
    changed += family.scatter(rng, 0.01)
    family.snapshot("s4")
    compute.snapshots.begin_delete("hist", "s3").result()
    report = copy_and_check(compute, cloud, "s4", changed)
    assert str(report["baseSnapshot"]).endswith("/s2-west")
    # the source region is compacted at rest (long chains become full versions)
    assert running.stop() == 0
    east = running.data_dir / "regions" / "eastus"
    done = subprocess.run(
        command("compact", "--data-dir", str(east), "--max-depth", "1", "--output", "json"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    running.launch()
    changed = family.scatter(rng, 0.01)
    family.snapshot("s5")
    report = copy_and_check(compute, cloud, "s5", changed)
    assert str(report["baseSnapshot"]).endswith("/s4-west")
