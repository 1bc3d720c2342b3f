"""``snapferry scrub|gc|compact|repair`` against a region a running cloud holds: the running
region runs the pass and the command reports it as it would at rest (tables, ``-o json``, exit
codes)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobClient

from snapferry.sdk import connect
from snapferry.testing.arm import disk_and_snapshot
from snapferry.testing.cli import cli_env, run
from snapferry.testing.cloud import RunningCloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    running = RunningCloud.start(tmp_path_factory.mktemp("live") / "cloud")
    connect(ResourceManagementClient, running.cloud).resource_groups.create_or_update(
        "g", {"location": "eastus"}
    )
    disk_and_snapshot(connect(ComputeManagementClient, running.cloud), "g", b"\x5a" * 2**20)
    try:
        yield running
    finally:
        running.kill()


def test_scrub_gc_and_compact_run_in_the_running_region(
    cloud: RunningCloud, tmp_path: Path
) -> None:
    env = cli_env(cloud, tmp_path)
    scrubbed = run(env, ["scrub", "--region", "eastus", "-o", "json"])
    assert scrubbed.returncode == 0, scrubbed.stderr
    report = json.loads(scrubbed.stdout)
    assert report["clean"] and report["packs"] >= 1 and report["bytes_read"] > 0
    collected = run(env, ["gc", "--region", "eastus", "--grace", "60", "-o", "json"])
    assert collected.returncode == 0, collected.stderr
    assert json.loads(collected.stdout)["packs"] >= 1
    hasty = run(env, ["gc", "--region", "eastus", "--grace", "0"])
    assert hasty.returncode == 2  # reads in flight may need a dead pack a little longer
    assert "--grace 60 or more" in hasty.stderr
    compacted = run(env, ["compact", "--region", "eastus"])
    assert compacted.returncode == 0, compacted.stderr
    assert "snapshots examined" in compacted.stdout


def _zone_packs(cloud: RunningCloud, zone: str) -> list[Path]:
    root = cloud.data_dir / "regions" / "eastus" / "zones" / zone
    return sorted(p for p in root.rglob("*") if p.is_file())


def _snapshot_bytes(cloud: RunningCloud) -> bytes:
    compute = connect(ComputeManagementClient, cloud.cloud)
    grant = {"access": "Read", "durationInSeconds": 600}
    sas = compute.snapshots.begin_grant_access("g", "s", grant).result().access_sas
    try:
        with BlobClient.from_blob_url(sas) as blob:
            return blob.download_blob(offset=0, length=2**20).readall()
    finally:
        compute.snapshots.begin_revoke_access("g", "s").result()


def test_a_lost_zone_is_invisible_to_readers_and_repair_refills_it(
    cloud: RunningCloud, tmp_path: Path
) -> None:
    env = cli_env(cloud, tmp_path)
    whole = [p.read_bytes() for p in _zone_packs(cloud, "2")]
    shutil.rmtree(cloud.data_dir / "regions" / "eastus" / "zones" / "1")

    assert _snapshot_bytes(cloud) == b"\x5a" * 2**20
    repaired = run(env, ["repair", "--region", "eastus", "-o", "json"])
    assert repaired.returncode == 0, repaired.stderr
    report = json.loads(repaired.stdout)
    assert report["zones"] == ["1", "2", "3"] and report["copied"] == {"1": report["packs"]}
    assert [p.read_bytes() for p in _zone_packs(cloud, "1")] == whole
    table = run(env, ["repair", "--region", "eastus"])
    assert table.returncode == 0 and "packs copied" in table.stdout, table.stderr
    westus = run(env, ["repair", "--region", "westus"])
    assert westus.returncode == 0 and "nothing to repair" in westus.stdout, westus.stderr


def test_damage_found_by_the_running_region_exits_1(cloud: RunningCloud, tmp_path: Path) -> None:
    env = cli_env(cloud, tmp_path)
    (first, *_) = _zone_packs(cloud, "3")
    damaged = bytearray(first.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    first.write_bytes(bytes(damaged))
    one_zone = run(env, ["scrub", "--region", "eastus", "-o", "json"])
    assert one_zone.returncode == 0, one_zone.stderr  # read around, and mended
    assert json.loads(one_zone.stdout)["zone_damage"] == {"3": 1}
    assert first.read_bytes() != bytes(damaged)

    for zone in ("1", "2", "3"):
        for pack in _zone_packs(cloud, zone):
            damaged = bytearray(pack.read_bytes())
            damaged[len(damaged) // 2] ^= 0xFF
            pack.write_bytes(bytes(damaged))
    scrubbed = run(env, ["scrub", "--region", "eastus"])
    assert scrubbed.returncode == 1, scrubbed.stderr
    assert "corrupt" in scrubbed.stdout
