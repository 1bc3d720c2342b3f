"""``snapferry scrub|gc|compact`` against a region a running cloud holds: the running region runs
the pass and the command reports it as it would at rest (tables, ``-o json``, exit codes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

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


def test_damage_found_by_the_running_region_exits_1(cloud: RunningCloud, tmp_path: Path) -> None:
    store = cloud.data_dir / "regions" / "eastus" / "store"
    (pack,) = [p for p in store.rglob("*") if p.is_file()]
    damaged = bytearray(pack.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    pack.write_bytes(bytes(damaged))
    scrubbed = run(cli_env(cloud, tmp_path), ["scrub", "--region", "eastus"])
    assert scrubbed.returncode == 1, scrubbed.stderr
    assert "corrupt" in scrubbed.stdout
