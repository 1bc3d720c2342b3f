"""The unmodified azure-mgmt-compute 39 and azure-mgmt-resource drive resource groups, disks and
snapshots through a real ``snapferry up``: the user's story from create to delete."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobClient

from snapferry.control.access import Signer, load_key
from snapferry.testing.arm import Raw
from snapferry.testing.cloud import RunningCloud

pytestmark = pytest.mark.slow
GiB = 1024**3


def empty_disk(location: str = "eastus", gb: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "location": location,
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": gb},
        **extra,
    }


def copy_of(source_id: str, location: str = "eastus", **props: Any) -> dict[str, Any]:
    return {
        "location": location,
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": source_id},
            **props,
        },
    }


def code_of(exc: pytest.ExceptionInfo[HttpResponseError]) -> str:
    assert exc.value.error is not None
    return str(exc.value.error.code)


@pytest.fixture(scope="module")
def rg(groups: ResourceManagementClient) -> str:
    groups.resource_groups.create_or_update("stories", {"location": "eastus"})
    return "stories"


def test_resource_groups_behave_as_in_azure(
    groups: ResourceManagementClient, compute: ComputeManagementClient
) -> None:
    made = groups.resource_groups.create_or_update(
        "Team-A", {"location": "West US", "tags": {"k": "v"}}
    )
    assert (made.name, made.location, made.tags) == ("Team-A", "westus", {"k": "v"})
    assert groups.resource_groups.check_existence("team-a")
    assert not groups.resource_groups.check_existence("nobody")
    assert groups.resource_groups.get("TEAM-A").name == "Team-A"
    assert "Team-A" in [g.name for g in groups.resource_groups.list()]
    compute.disks.begin_create_or_update("team-a", "d1", empty_disk("westus")).result()
    with pytest.raises(HttpResponseError) as refused:
        groups.resource_groups.begin_delete("Team-A").result()
    assert code_of(refused) == "ResourceGroupNotEmpty"
    assert compute.disks.get("Team-A", "d1").name == "d1"
    compute.disks.begin_delete("Team-A", "d1").result()
    groups.resource_groups.begin_delete("Team-A").result()
    assert not groups.resource_groups.check_existence("Team-A")
    with pytest.raises(ResourceNotFoundError) as missing:
        compute.disks.begin_create_or_update("Team-A", "d2", empty_disk()).result()
    assert code_of(missing) == "ResourceGroupNotFound"


def test_disk_lifecycle(compute: ComputeManagementClient, rg: str) -> None:
    disk = compute.disks.begin_create_or_update(
        rg, "data", empty_disk(gb=4, sku={"name": "Premium_LRS"}, zones=["2"], tags={"app": "db"})
    ).result()
    assert disk.provisioning_state == "Succeeded"
    assert (disk.disk_size_gb, disk.disk_size_bytes) == (4, 4 * GiB)
    assert (disk.sku.name, disk.zones, disk.tags, disk.disk_state) == (
        "Premium_LRS",
        ["2"],
        {"app": "db"},
        "Unattached",
    )
    assert disk.unique_id and disk.time_created is not None
    assert (
        disk.id == f"/subscriptions/{compute._config.subscription_id}/resourceGroups/{rg}"
        "/providers/Microsoft.Compute/disks/data"
    )
    grown = compute.disks.begin_update(
        rg, "data", {"properties": {"diskSizeGB": 6}, "tags": {"app": "db2"}}
    ).result()
    assert (grown.disk_size_bytes, grown.tags) == (6 * GiB, {"app": "db2"})
    with pytest.raises(HttpResponseError) as shrink:
        compute.disks.begin_update(rg, "data", {"properties": {"diskSizeGB": 2}}).result()
    assert code_of(shrink) == "InvalidParameter" and "grow" in shrink.value.message
    again = compute.disks.begin_create_or_update(
        rg, "data", empty_disk(gb=6, tags={"x": "y"}, zones=["2"])
    ).result()
    assert again.unique_id == disk.unique_id and again.tags == {"x": "y"}
    with pytest.raises(HttpResponseError) as rezoned:
        compute.disks.begin_create_or_update(rg, "data", empty_disk(gb=6, zones=["1"])).result()
    assert code_of(rezoned) == "PropertyChangeNotAllowed"
    fetched = compute.disks.get(rg, "data")
    fetched.tags = {"round": "trip"}  # what a GET returns, sent back, changes nothing else
    tripped = compute.disks.begin_create_or_update(rg, "data", fetched).result()
    assert (tripped.disk_size_bytes, tripped.tags, tripped.zones) == (
        6 * GiB,
        {"round": "trip"},
        ["2"],
    )
    compute.disks.begin_delete(rg, "data").result()
    with pytest.raises(ResourceNotFoundError):
        compute.disks.get(rg, "data")
    compute.disks.begin_delete(rg, "data").result()  # deleting what is gone is fine


def test_lists_page_across_regions(compute: ComputeManagementClient, rg: str) -> None:
    names = [f"page-{i}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        pollers = list(
            pool.map(
                lambda n: compute.disks.begin_create_or_update(
                    rg, n, empty_disk("eastus" if int(n[-1]) % 2 else "westus")
                ),
                names,
            )
        )
    assert {p.result().name for p in pollers} == set(names)
    by_group = [d.name for d in compute.disks.list_by_resource_group(rg)]
    assert sorted(n for n in by_group if n.startswith("page-")) == names
    assert len(by_group) == len(set(by_group))
    everywhere = [d.name for d in compute.disks.list()]
    assert set(names) <= set(everywhere) and len(everywhere) == len(set(everywhere))
    pages = list(compute.disks.list_by_resource_group(rg).by_page())
    assert len(pages) > 2  # page size 3 per region: nextLink was followed
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: compute.disks.begin_delete(rg, n).result(), names))


def test_snapshots_of_a_disk(compute: ComputeManagementClient, rg: str) -> None:
    disk = compute.disks.begin_create_or_update(rg, "src", empty_disk(gb=2)).result()
    s1 = compute.snapshots.begin_create_or_update(rg, "s1", copy_of(disk.id)).result()
    s2 = compute.snapshots.begin_create_or_update(rg, "s2", copy_of(disk.id)).result()
    assert s1.incremental and s2.incremental
    assert s1.incremental_snapshot_family_id == s2.incremental_snapshot_family_id
    assert (s1.sku.name, s1.completion_percent, s1.snapshot_access_state) == (
        "Standard_ZRS",
        100,
        "Available",
    )
    assert s1.creation_data.source_resource_id == disk.id
    assert s1.creation_data.source_unique_id == disk.unique_id
    assert s1.disk_size_bytes == 2 * GiB and s1.provisioning_state == "Succeeded"
    full = compute.snapshots.begin_create_or_update(
        rg, "full", copy_of(disk.id, incremental=False)
    ).result()
    assert not full.incremental and full.incremental_snapshot_family_id is None
    copy = compute.snapshots.begin_create_or_update(rg, "full-copy", copy_of(full.id)).result()
    assert not copy.incremental and copy.disk_size_bytes == full.disk_size_bytes
    with pytest.raises(HttpResponseError) as incremental_copy:
        compute.snapshots.begin_create_or_update(rg, "bad", copy_of(s1.id)).result()
    assert (
        code_of(incremental_copy) == "InvalidParameter"
        and "CopyStart" in incremental_copy.value.message
    )
    with pytest.raises(HttpResponseError) as sku_change:
        compute.snapshots.begin_update(rg, "s1", {"sku": {"name": "Standard_LRS"}}).result()
    assert code_of(sku_change) == "OperationNotAllowed"
    tagged = compute.snapshots.begin_update(rg, "s1", {"tags": {"keep": "1"}}).result()
    assert tagged.tags == {"keep": "1"} and tagged.sku.name == "Standard_ZRS"
    restored = compute.disks.begin_create_or_update(
        rg, "restored", copy_of(s2.id, diskSizeGB=3)
    ).result()
    assert restored.disk_size_bytes == 3 * GiB
    assert restored.creation_data.source_unique_id == s2.unique_id
    compute.disks.begin_delete(rg, "src").result()
    assert compute.snapshots.get(rg, "s1").name == "s1"  # a disk's snapshots outlive it
    compute.disks.begin_create_or_update(rg, "from-s1", copy_of(s1.id)).result()
    for name in ("s1", "s2", "full", "full-copy"):
        compute.snapshots.begin_delete(rg, name).result()
    for name in ("restored", "from-s1"):
        compute.disks.begin_delete(rg, name).result()


def test_region_defaults_and_rules(compute: ComputeManagementClient, rg: str) -> None:
    west = compute.disks.begin_create_or_update(rg, "west", empty_disk("westus")).result()
    snap = compute.snapshots.begin_create_or_update(
        rg, "west-snap", copy_of(west.id, "westus")
    ).result()
    assert snap.sku.name == "Standard_LRS"  # no zones: LRS only
    with pytest.raises(HttpResponseError) as zrs:
        compute.snapshots.begin_create_or_update(
            rg, "zrs", {**copy_of(west.id, "westus"), "sku": {"name": "Standard_ZRS"}}
        ).result()
    assert code_of(zrs) == "InvalidParameter"
    with pytest.raises(HttpResponseError) as elsewhere:
        compute.snapshots.begin_create_or_update(
            rg, "east-snap", copy_of(west.id, "eastus")
        ).result()
    assert code_of(elsewhere) == "ResourceNotFound"
    with pytest.raises(HttpResponseError) as moved:
        compute.disks.begin_create_or_update(rg, "west", empty_disk("eastus")).result()
    assert code_of(moved) == "InvalidResourceLocation"
    ultra = compute.disks.begin_create_or_update(
        rg, "ultra", empty_disk("westus", sku={"name": "UltraSSD_LRS"})
    ).result()
    ultra_snap = compute.snapshots.begin_create_or_update(
        rg, "ultra-snap", copy_of(ultra.id, "westus")
    ).result()
    assert ultra_snap.incremental is False
    for option in ("CopyStart", "Import", "FromImage", "Bogus"):
        with pytest.raises(HttpResponseError) as unsupported:
            compute.disks.begin_create_or_update(
                rg,
                "nope",
                {"location": "eastus", "properties": {"creationData": {"createOption": option}}},
            ).result()
        assert code_of(unsupported) == "InvalidParameter"
        assert "supported: Empty, Copy, Upload" in unsupported.value.message
    with pytest.raises(HttpResponseError) as nowhere:
        compute.disks.begin_create_or_update(rg, "nope", empty_disk("mars")).result()
    assert code_of(nowhere) == "LocationNotAvailableForResourceType"
    for name in ("west-snap", "ultra-snap"):
        compute.snapshots.begin_delete(rg, name).result()
    for name in ("west", "ultra"):
        compute.disks.begin_delete(rg, name).result()


def test_access_grants_follow_disk_states(
    compute: ComputeManagementClient, rg: str, running: RunningCloud
) -> None:
    disk = compute.disks.begin_create_or_update(rg, "shared", empty_disk()).result()
    sas = compute.disks.begin_grant_access(
        rg, "shared", {"access": "Read", "durationInSeconds": 300}
    ).result()
    assert "sig=" in sas.access_sas and "sp=r" in sas.access_sas
    blob = BlobClient.from_blob_url(sas.access_sas)  # the blob SDK keeps every part of it
    assert (blob.account_name, blob.blob_name) == ("eastus", "abcd")
    kept = dict(parse_qsl(blob.url.split("?", 1)[1]))
    key = load_key(running.data_dir / "regions" / "eastus")
    Signer(key).check(disk.unique_id, kept, "r", kept["si"])
    assert compute.disks.get(rg, "shared").disk_state == "ActiveSAS"
    with pytest.raises(HttpResponseError) as busy:
        compute.disks.begin_delete(rg, "shared").result()
    assert code_of(busy) == "OperationNotAllowed"
    compute.disks.begin_revoke_access(rg, "shared").result()
    assert compute.disks.get(rg, "shared").disk_state == "Unattached"
    upload = compute.disks.begin_create_or_update(
        rg,
        "upload",
        {
            "location": "eastus",
            "properties": {
                "creationData": {"createOption": "Upload", "uploadSizeBytes": 32 * 1024**2 + 512}
            },
        },
    ).result()
    assert (upload.disk_state, upload.disk_size_bytes) == ("ReadyToUpload", 32 * 1024**2 + 512)
    with pytest.raises(HttpResponseError) as read_first:
        compute.disks.begin_grant_access(
            rg, "upload", {"access": "Read", "durationInSeconds": 60}
        ).result()
    assert code_of(read_first) == "OperationNotAllowed"
    write = compute.disks.begin_grant_access(
        rg, "upload", {"access": "Write", "durationInSeconds": 60}
    ).result()
    assert "sp=rw" in write.access_sas
    assert compute.disks.get(rg, "upload").disk_state == "ActiveUpload"
    compute.disks.begin_revoke_access(rg, "upload").result()
    assert compute.disks.get(rg, "upload").disk_state == "Unattached"
    snaps = [
        compute.snapshots.begin_create_or_update(rg, f"fam-{i}", copy_of(disk.id)).result()
        for i in range(6)
    ]
    for snap in snaps[:5]:
        compute.snapshots.begin_grant_access(
            rg, snap.name, {"access": "Read", "durationInSeconds": 60}
        ).result()
    with pytest.raises(HttpResponseError) as sixth:
        compute.snapshots.begin_grant_access(
            rg, "fam-5", {"access": "Read", "durationInSeconds": 60}
        ).result()
    assert code_of(sixth) == "OperationNotAllowed" and "5 snapshots" in sixth.value.message
    with pytest.raises(HttpResponseError) as write_snap:
        compute.snapshots.begin_grant_access(
            rg, "fam-5", {"access": "Write", "durationInSeconds": 60}
        ).result()
    assert code_of(write_snap) == "InvalidParameter"
    compute.snapshots.begin_revoke_access(rg, "fam-0").result()
    compute.snapshots.begin_grant_access(
        rg, "fam-5", {"access": "Read", "durationInSeconds": 60}
    ).result()


def test_paths_match_case_insensitively(
    raw: Raw, compute: ComputeManagementClient, rg: str
) -> None:
    compute.disks.begin_create_or_update(rg, "Cased", empty_disk()).result()
    path = raw.item(rg, "disks", "Cased").replace("resourceGroups", "resourcegroups")
    path = path.replace("Microsoft.Compute", "microsoft.compute").replace("/disks/", "/DISKS/")
    reply = raw("GET", path + "?api-version=2024-03-02")
    assert reply.status_code == 200, reply.text
    assert reply.json()["name"] == "Cased"
    assert raw("GET", path.replace("Cased", "cased") + "?api-version=2024-03-02").status_code == 200
    compute.disks.begin_delete(rg, "CASED").result()


def test_round_trips_and_points_in_time(compute: ComputeManagementClient, rg: str) -> None:
    upload = compute.disks.begin_create_or_update(
        rg,
        "up-trip",
        {
            "location": "eastus",
            "properties": {
                "creationData": {"createOption": "Upload", "uploadSizeBytes": 20 * 1024**2 + 512}
            },
        },
    ).result()
    assert upload.disk_size_gb == 1
    upload.tags = {"k": "v"}
    again = compute.disks.begin_create_or_update(rg, "up-trip", upload).result()
    assert (again.disk_size_bytes, again.disk_state) == (20 * 1024**2 + 512, "ReadyToUpload")
    with pytest.raises(HttpResponseError) as grow:
        compute.disks.begin_update(rg, "up-trip", {"properties": {"diskSizeGB": 4}}).result()
    assert code_of(grow) == "OperationNotAllowed"
    disk = compute.disks.begin_create_or_update(rg, "pit", empty_disk(gb=1)).result()
    snap_poller = compute.snapshots.begin_create_or_update(rg, "pit-snap", copy_of(disk.id))
    compute.disks.begin_update(rg, "pit", {"properties": {"diskSizeGB": 3}}).result()
    snap = snap_poller.result()
    assert snap.disk_size_bytes == 1 * GiB  # the snapshot is the disk as it was at the request
    snap.tags = {"k": "v"}
    tripped = compute.snapshots.begin_create_or_update(rg, "pit-snap", snap).result()
    assert (tripped.tags, tripped.disk_size_bytes) == ({"k": "v"}, 1 * GiB)
    compute.snapshots.begin_delete(rg, "pit-snap").result()
    for name in ("pit", "up-trip"):
        compute.disks.begin_delete(rg, name).result()
