"""A zone's store lost or corrupted entirely under a serving region is invisible to its users:
through the official SDKs a ZRS snapshot still downloads, restores to a disk and copies to another
region byte for byte, with no error; a scrub counts the damage and mends it, and ``snapferry
repair`` refills a deleted zone, after which the region holds every pack in every zone again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobClient

from snapferry.sdk import connect
from snapferry.testing.cli import cli_env, run
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import Family, cloud_running, copy_body, sha_of_snapshot, wait_copied

MiB = 1024**2
SIZE = 32 * MiB


def zone_files(cloud: RunningCloud, zone: str) -> dict[str, bytes]:
    root = cloud.data_dir / "regions" / "eastus" / "zones" / zone
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def ruin(cloud: RunningCloud, zone: str) -> None:
    """Flip a byte in every 4 KiB of every file of the zone."""
    root = cloud.data_dir / "regions" / "eastus" / "zones" / zone
    for path in root.rglob("*"):
        if path.is_file():
            data = np.frombuffer(bytearray(path.read_bytes()), dtype=np.uint8)
            data[::4096] ^= 0xFF
            path.write_bytes(data.tobytes())


@pytest.fixture
def family(tmp_path: Path) -> Any:
    with cloud_running(tmp_path / "cloud") as cloud:
        connect(ResourceManagementClient, cloud.cloud).resource_groups.create_or_update(
            "g", {"location": "eastus"}
        )
        compute = connect(ComputeManagementClient, cloud.cloud)
        fam = Family(compute, "g", "d", "eastus", SIZE).create()
        rng = np.random.default_rng(5)
        fam.write([(0, rng.bytes(SIZE // 2))])
        fam.snapshot("s1")
        fam.scatter(rng, 0.05)
        fam.snapshot("s2")
        yield cloud, compute, fam


def expect(image: bytearray) -> str:
    return hashlib.sha256(bytes(image)).hexdigest()


@pytest.mark.parametrize("fault", ["deleted", "corrupted"])
def test_a_lost_zone_changes_nothing_a_user_sees(family: Any, fault: str, tmp_path: Path) -> None:
    cloud, compute, fam = family
    whole = zone_files(cloud, "2")
    if fault == "deleted":
        shutil.rmtree(cloud.data_dir / "regions" / "eastus" / "zones" / "1")
    else:
        ruin(cloud, "1")

    assert sha_of_snapshot(compute, "g", "s2") == expect(fam.image)
    restore: Any = {
        "location": "eastus",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": fam.snapshot_id("s2")}
        },
    }
    compute.disks.begin_create_or_update("g", "restored", restore).result()
    grant = {"access": "Read", "durationInSeconds": 600}
    sas = compute.disks.begin_grant_access("g", "restored", grant).result().access_sas
    with BlobClient.from_blob_url(sas) as blob:
        assert hashlib.sha256(blob.download_blob().readall()).hexdigest() == expect(fam.image)
    compute.disks.begin_revoke_access("g", "restored").result()

    for name in ("s1", "s2"):
        body = copy_body(fam.snapshot_id(name), "westus")
        compute.snapshots.begin_create_or_update("g", f"{name}-west", body).result()
        assert wait_copied(compute, "g", f"{name}-west")[-1] == 100
    assert sha_of_snapshot(compute, "g", "s2-west") == expect(fam.image)

    env = cli_env(cloud, tmp_path)
    if fault == "deleted":
        repaired = run(env, ["repair", "--region", "eastus", "-o", "json"])
        assert repaired.returncode == 0, repaired.stderr
        assert json.loads(repaired.stdout)["copied"] == {"1": len(whole)}
    else:
        scrubbed = run(env, ["scrub", "--region", "eastus", "-o", "json"])
        assert scrubbed.returncode == 0, scrubbed.stderr
        # the reads above mended what they read (in the background); scrub mends the rest
        assert json.loads(scrubbed.stdout)["zone_damage"].keys() <= {"1"}
    assert zone_files(cloud, "1") == zone_files(cloud, "2") == zone_files(cloud, "3")
    assert zone_files(cloud, "2").keys() >= whole.keys()
    log = (cloud.data_dir / "up.log").read_text(errors="replace")
    assert "Traceback" not in log


def download(compute: Any, name: str) -> bytes:
    grant = {"access": "Read", "durationInSeconds": 600}
    sas = compute.snapshots.begin_grant_access("g", name, grant).result().access_sas
    try:
        with BlobClient.from_blob_url(sas, retry_total=0) as blob:
            return bytes(blob.download_blob().readall())
    finally:
        compute.snapshots.begin_revoke_access("g", name).result()


def test_an_lrs_snapshot_needs_its_zone_until_an_in_region_copy_hardens_it(
    tmp_path: Path,
) -> None:
    with cloud_running(tmp_path / "cloud") as cloud:
        connect(ResourceManagementClient, cloud.cloud).resource_groups.create_or_update(
            "g", {"location": "eastus"}
        )
        compute = connect(ComputeManagementClient, cloud.cloud)
        creation = {"createOption": "Upload", "uploadSizeBytes": SIZE}
        body: Any = {"location": "eastus", "zones": ["2"], "properties": {"creationData": creation}}
        disk = compute.disks.begin_create_or_update("g", "zonal", body).result()
        data = np.random.default_rng(9).bytes(4 * MiB)
        grant = {"access": "Write", "durationInSeconds": 600}
        sas = compute.disks.begin_grant_access("g", "zonal", grant).result().access_sas
        with BlobClient.from_blob_url(sas) as blob:
            blob.upload_page(data, offset=0, length=len(data))
        compute.disks.begin_revoke_access("g", "zonal").result()
        snap: Any = {
            "location": "eastus",
            "sku": {"name": "Standard_LRS"},
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": disk.id},
                "incremental": True,
            },
        }
        lrs = compute.snapshots.begin_create_or_update("g", "lrs", snap).result()
        assert zone_files(cloud, "2") and not zone_files(cloud, "1") and not zone_files(cloud, "3")
        expected = data + bytes(SIZE - len(data))

        zone2 = cloud.data_dir / "regions" / "eastus" / "zones" / "2"
        zone2.rename(tmp_path / "zone-2-away")
        with pytest.raises(HttpResponseError) as refused:
            download(compute, "lrs")
        assert refused.value.status_code == 503
        assert refused.value.error_code == "ZoneUnavailable" and "zone 2" in str(refused.value)
        (tmp_path / "zone-2-away").rename(zone2)  # the zone returns
        assert download(compute, "lrs") == expected

        compute.snapshots.begin_create_or_update(
            "g", "zrs", copy_body(str(lrs.id), "eastus")
        ).result()
        assert wait_copied(compute, "g", "zrs")[-1] == 100
        assert compute.snapshots.get("g", "zrs").sku.name == "Standard_ZRS"
        spread = zone_files(cloud, "1")  # the copy's own packs, in every zone
        assert spread and spread == zone_files(cloud, "3")
        assert zone_files(cloud, "2").items() >= spread.items()
        shutil.rmtree(zone2)
        assert download(compute, "zrs") == expected  # the hardened copy needs no one zone
        log = (cloud.data_dir / "up.log").read_text(errors="replace")
        assert "Traceback" not in log
