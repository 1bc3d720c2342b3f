"""A snapshot whose seal runs out of space never wedges its region: the creation fails named and
the snapshot shows Failed, the disk keeps every acknowledged byte, the region starts again after
a kill -9 and the admin commands run at rest, and once space returns the region's upkeep
finishes the seal without a restart and a PUT again makes the snapshot."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.engine import Engine
from snapferry.sdk import connect
from snapferry.testing.arm import snapshot_body, upload_disk
from snapferry.testing.audit import audit
from snapferry.testing.cli import cli_env, run
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.filesystems import can_mount, free_bytes, small_filesystem

pytestmark = pytest.mark.skipif(can_mount() is not None, reason=str(can_mount()))

MiB = 1024 * 1024
DATA = 16 * MiB
CONFIG = """
[[regions]]
name = "eastus"
reserve_mib = 0
operation_delay = 1.5
upkeep_seconds = 0.3

[[regions]]
name = "westus"
"""


def region_state(root: Path) -> tuple[list[str], list[str]]:
    """The region's engine snapshots: (ids of all, ids still sealing), read at rest."""
    with Engine.open(root / "regions" / "eastus") as engine:
        snaps = engine.list_snapshots()
    return [s.id for s in snaps], [s.id for s in snaps if s.state == "sealing"]


def snapshot_states(root: Path) -> list[str]:
    """The states of the region's engine snapshots, read from its database while it runs."""
    db = sqlite3.connect(f"file:{root / 'regions' / 'eastus' / 'meta.db'}?mode=ro", uri=True)
    try:
        return [state for (state,) in db.execute("SELECT state FROM snapshots ORDER BY seq")]
    finally:
        db.close()


def fill(ballast: Path, leave: int) -> None:
    """Write ballast until the filesystem has about ``leave`` bytes free (the region writes
    meanwhile: running out first is fine too)."""
    block = bytes(MiB)
    with ballast.open("wb") as f:
        try:
            while free_bytes(ballast.parent) > leave + MiB:
                f.write(block)
                f.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise


def test_a_seal_that_runs_out_of_space_wedges_nothing(tmp_path: Path) -> None:
    data = os.urandom(DATA)
    with small_filesystem(tmp_path / "fs", 96) as root:
        cloud = RunningCloud.start(root, config_text=CONFIG)
        try:
            connect(ResourceManagementClient, cloud.cloud).resource_groups.create_or_update(
                "g", {"location": "eastus"}
            )
            compute = connect(ComputeManagementClient, cloud.cloud, retry_total=0)
            sas = upload_disk(compute, "g", "d", 2 * DATA)
            for at in range(0, DATA, 4 * MiB):
                headers = {
                    "x-ms-range": f"bytes={at}-{at + 4 * MiB - 1}",
                    "x-ms-page-write": "update",
                }
                put = requests.put(
                    sas + "&comp=page", data=data[at : at + 4 * MiB], headers=headers
                )
                assert put.status_code == 201, put.text
            compute.disks.begin_revoke_access("g", "d").result()
            snap = snapshot_body(compute.disks.get("g", "d").id)
            poller = compute.snapshots.begin_create_or_update("g", "s", snap)
            # the point in time is taken; while its seal waits, the filesystem fills
            ballast = root / "ballast"
            fill(ballast, leave=2 * MiB)
            with pytest.raises(HttpResponseError) as failed:
                poller.result()
            assert failed.value.error is not None
            assert failed.value.error.code == "StorageFull", failed.value.message
            (shown,) = compute.snapshots.list_by_resource_group("g")  # visible as Failed
            assert shown.name == "s" and shown.provisioning_state == "Failed"

            cloud.kill()  # the seal is still pending: the region must start anyway
            cloud.launch()
            compute = connect(ComputeManagementClient, cloud.cloud, retry_total=0)
            read: Any = {"access": "Read", "durationInSeconds": 3600}
            reader = str(compute.disks.begin_grant_access("g", "d", read).result().access_sas)
            assert requests.get(reader, timeout=60).content == data + bytes(DATA)  # nothing lost
            compute.disks.begin_revoke_access("g", "d").result()
            cloud.stop()

            env = cli_env(cloud, tmp_path)
            for command in (["scrub"], ["gc"], ["compact"]):
                done = run(env, [*command, "--region", "eastus"])
                assert done.returncode == 0, done.stdout + done.stderr
            assert len(region_state(root)[1]) == 1  # still sealing: no room yet

            cloud.launch()
            ballast.unlink()  # space returns: the upkeep finishes the seal, with no restart
            deadline = time.monotonic() + 30
            while (states := snapshot_states(root)) != ["ready"]:
                assert time.monotonic() < deadline, states
                time.sleep(0.2)
            compute = connect(ComputeManagementClient, cloud.cloud, retry_total=0)
            compute.snapshots.begin_create_or_update("g", "s", snap).result()
            sas = str(compute.snapshots.begin_grant_access("g", "s", read).result().access_sas)
            assert requests.get(sas, timeout=60).content == data + bytes(DATA)
            audit(cloud.cloud, root)
            log = (root / "up.log").read_text(errors="replace")
            assert "Traceback" not in log
        finally:
            cloud.kill()
