"""CopyStart through the unmodified azure-mgmt-compute: the target exists at once (0 %, Pending),
its completionPercent rises to 100, and it reads back byte-identical through azure-storage-blob;
later copies of the family move only the pages changed since the last one copied."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import numpy as np
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobClient

from snapferry.sdk import connect
from snapferry.testing.arm import cloud_as, new_principal, set_role
from snapferry.testing.copies import (
    PAGE,
    Family,
    MiB,
    copies,
    copy_body,
    sha_of_snapshot,
    wait_copied,
)

pytestmark = pytest.mark.slow
SIZE = 48 * MiB


@pytest.fixture(scope="module")
def family(compute: ComputeManagementClient, groups: ResourceManagementClient) -> Family:
    groups.resource_groups.create_or_update("copies", {"location": "eastus"})
    made = Family(compute, "copies", "data", "eastus", SIZE).create()
    rng = np.random.default_rng(9)
    made.write(
        [(0, rng.bytes(6 * MiB)), (20 * MiB, rng.bytes(3 * MiB)), (SIZE - PAGE, b"e" * PAGE)]
    )
    return made


def test_copy_start_through_the_sdk_is_byte_identical(
    compute: ComputeManagementClient, cloud: dict[str, Any], family: Family
) -> None:
    source = family.snapshot("day1")
    poller = compute.snapshots.begin_create_or_update(
        "copies", "day1-west", copy_body(source, "westus")
    )
    made = poller.result()
    assert made.properties is not None
    assert made.properties.completion_percent == 0
    assert str(made.properties.snapshot_access_state) in ("Pending", "SnapshotAccessState.PENDING")
    assert made.properties.incremental is True
    seen = wait_copied(compute, "copies", "day1-west")
    assert seen == sorted(seen) and seen[-1] == 100
    target = compute.snapshots.get("copies", "day1-west")
    assert target.properties is not None
    assert target.properties.snapshot_access_state == "Available"
    assert (
        target.properties.incremental_snapshot_family_id
        == compute.snapshots.get("copies", "day1").properties.incremental_snapshot_family_id  # type: ignore[union-attr]
    )
    assert sha_of_snapshot(compute, "copies", "day1-west") == sha_of_snapshot(
        compute, "copies", "day1"
    )
    (report,) = copies(cloud, str(target.id))
    assert report["state"] == "Succeeded" and report["baseSnapshot"] is None
    assert report["bytesTotal"] == 9 * MiB + PAGE
    assert report["attempts"] == 1 and report["region"] == "westus"


def test_later_copies_move_only_the_changed_pages(
    compute: ComputeManagementClient, cloud: dict[str, Any], family: Family
) -> None:
    rng = np.random.default_rng(10)
    names = ["day2", "day3"]
    for name in names:
        changed = family.scatter(rng, 0.01)
        family.snapshot(name)
        compute.snapshots.begin_create_or_update(
            "copies", f"{name}-west", copy_body(family.snapshot_id(name), "westus")
        ).result()
        wait_copied(compute, "copies", f"{name}-west")
        target = compute.snapshots.get("copies", f"{name}-west")
        (report,) = copies(cloud, str(target.id))
        assert report["bytesTotal"] <= changed
        assert report["bytesTransferred"] <= 1.1 * changed
        assert report["baseSnapshot"] is not None
        assert sha_of_snapshot(compute, "copies", f"{name}-west") == sha_of_snapshot(
            compute, "copies", name
        )


def test_copies_follow_creation_order_and_one_at_a_time(
    compute: ComputeManagementClient, family: Family
) -> None:
    with pytest.raises(HttpResponseError) as refused:
        compute.snapshots.begin_create_or_update(
            "copies", "day1-west-again", copy_body(family.snapshot_id("day1"), "westus")
        ).result()
    assert refused.value.error is not None
    assert refused.value.error.code == "OperationNotAllowed"
    assert "order" in str(refused.value.error.message)


def test_full_targets_are_self_contained_and_copy_onward(
    compute: ComputeManagementClient, cloud: dict[str, Any], family: Family
) -> None:
    # day1's whole chunks came to westus as stored versions with its first copy: a full copy
    # of day1 there fetches none of them again
    made = compute.snapshots.begin_create_or_update(
        "copies",
        "day1-full-west",
        copy_body(family.snapshot_id("day1"), "westus", incremental=False),
    ).result()
    assert wait_copied(compute, "copies", "day1-full-west")[-1] == 100
    (report,) = copies(cloud, str(made.id))
    assert report["bytesCopied"] == report["bytesTotal"] == 9 * MiB + PAGE
    assert report["bytesTransferred"] == 0
    assert sha_of_snapshot(compute, "copies", "day1-full-west") == sha_of_snapshot(
        compute, "copies", "day1"
    )
    source = family.snapshot_id("day3")
    compute.snapshots.begin_create_or_update(
        "copies", "day3-full-west", copy_body(source, "westus", incremental=False)
    ).result()
    assert wait_copied(compute, "copies", "day3-full-west")[-1] == 100
    full = compute.snapshots.get("copies", "day3-full-west")
    assert full.properties is not None
    assert full.properties.incremental is False
    assert full.properties.incremental_snapshot_family_id is None
    expected = sha_of_snapshot(compute, "copies", "day3")
    assert sha_of_snapshot(compute, "copies", "day3-full-west") == expected
    # a full snapshot there copies again: in-region with Copy, to another region with CopyStart
    compute.snapshots.begin_create_or_update(
        "copies",
        "day3-full-west-2",
        {
            "location": "westus",
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": full.id}},
        },
    ).result()
    assert sha_of_snapshot(compute, "copies", "day3-full-west-2") == expected
    compute.snapshots.begin_create_or_update(
        "copies", "day3-full-central", copy_body(str(full.id), "centralus")
    ).result()
    assert wait_copied(compute, "copies", "day3-full-central")[-1] == 100
    onward = compute.snapshots.get("copies", "day3-full-central")
    assert onward.properties is not None and onward.properties.incremental is False
    assert sha_of_snapshot(compute, "copies", "day3-full-central") == expected
    # and restores to a disk in its region
    disk = compute.disks.begin_create_or_update(
        "copies",
        "restored-central",
        {
            "location": "centralus",
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": onward.id}},
        },
    ).result()
    sas = compute.disks.begin_grant_access(
        "copies", "restored-central", {"access": "Read", "durationInSeconds": 600}
    ).result()
    data = BlobClient.from_blob_url(str(sas.access_sas)).download_blob().readall()
    assert hashlib.sha256(data).hexdigest() == expected and disk.location == "centralus"
    compute.disks.begin_revoke_access("copies", "restored-central").result()


def test_an_in_region_copy_and_a_copy_of_a_copy(
    compute: ComputeManagementClient, family: Family
) -> None:
    compute.snapshots.begin_create_or_update(
        "copies", "day1-east", copy_body(family.snapshot_id("day1"), "eastus")
    ).result()
    assert wait_copied(compute, "copies", "day1-east")[-1] == 100
    assert sha_of_snapshot(compute, "copies", "day1-east") == sha_of_snapshot(
        compute, "copies", "day1"
    )
    west = compute.snapshots.get("copies", "day1-west")
    compute.snapshots.begin_create_or_update(
        "copies", "day1-central", copy_body(str(west.id), "centralus")
    ).result()
    assert wait_copied(compute, "copies", "day1-central")[-1] == 100
    assert sha_of_snapshot(compute, "copies", "day1-central") == sha_of_snapshot(
        compute, "copies", "day1"
    )


def test_cross_subscription_copies_need_read_on_the_source(
    cloud: dict[str, Any], family: Family
) -> None:
    other = str(uuid.uuid4())
    principal, token = new_principal(cloud, other, "Contributor")
    theirs = connect(ComputeManagementClient, cloud_as(cloud, token, other), retry_total=0)
    groups = connect(ResourceManagementClient, cloud_as(cloud, token, other), retry_total=0)
    groups.resource_groups.create_or_update("theirs", {"location": "westus"})
    source = family.snapshot_id("day1")
    with pytest.raises(HttpResponseError) as refused:
        theirs.snapshots.begin_create_or_update(
            "theirs", "copied", copy_body(source, "westus")
        ).result()
    assert refused.value.error is not None
    assert refused.value.error.code == "LinkedAuthorizationFailed"
    assert list(theirs.snapshots.list()) == []
    set_role(cloud, principal, cloud["subscription"], "Reader")
    theirs.snapshots.begin_create_or_update(
        "theirs", "copied", copy_body(source, "westus")
    ).result()
    assert wait_copied(theirs, "theirs", "copied")[-1] == 100
    assert sha_of_snapshot(theirs, "theirs", "copied") == sha_of_snapshot(
        family.compute, "copies", "day1"
    )
