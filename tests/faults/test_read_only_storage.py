"""A region whose filesystem turns read-only (as ext4 does after an error) keeps serving reads;
writes are refused by name, and resume by themselves once it is writable again."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing.arm import upload_disk
from snapferry.testing.audit import audit
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.filesystems import can_mount, remount, small_filesystem

pytestmark = pytest.mark.skipif(can_mount() is not None, reason=str(can_mount()))

PAGE = 64 * 1024


def put(sas: str, offset: int, data: bytes) -> requests.Response:
    headers = {
        "x-ms-range": f"bytes={offset}-{offset + len(data) - 1}",
        "x-ms-page-write": "update",
    }
    return requests.put(sas + "&comp=page", data=data, headers=headers, timeout=30)


def test_reads_go_on_and_writes_come_back_when_the_filesystem_is_writable(
    tmp_path: Path,
) -> None:
    # the region's data (overlays, packs) on the small filesystem; its database and the log
    # elsewhere: a filesystem with files open for writing cannot be remounted read-only
    with small_filesystem(tmp_path / "fs", 128) as root:
        config = f"""
[[regions]]
name = "eastus"
data_dir = "{root / "eastus"}"
db_url = "sqlite+pysqlite:///{tmp_path / "eastus.db"}"

[[regions]]
name = "westus"
"""
        cloud = RunningCloud.start(tmp_path / "cloud", config_text=config)
        try:
            connect(ResourceManagementClient, cloud.cloud).resource_groups.create_or_update(
                "g", {"location": "eastus"}
            )
            compute = connect(ComputeManagementClient, cloud.cloud, retry_total=0)
            sas = upload_disk(compute, "g", "d", 32 * 1024**2)
            assert put(sas, 0, b"\x01" * PAGE).status_code == 201

            remount(root, read_only=True)
            try:
                refused = put(sas, PAGE, b"\x02" * PAGE)
                assert refused.status_code == 503, refused.text
                assert refused.headers["x-ms-error-code"] == "StorageReadOnly"
                assert "retry-after" in refused.headers
                got = requests.get(sas, headers={"x-ms-range": f"bytes=0-{2 * PAGE - 1}"})
                assert got.status_code == 206
                assert got.content == b"\x01" * PAGE + bytes(PAGE)
                assert compute.disks.get("g", "d").name == "d"
            finally:
                remount(root, read_only=False)
            assert put(sas, PAGE, b"\x02" * PAGE).status_code == 201
            got = requests.get(sas, headers={"x-ms-range": f"bytes=0-{2 * PAGE - 1}"})
            assert got.content == b"\x01" * PAGE + b"\x02" * PAGE
            eastus = f"sqlite+pysqlite:///{tmp_path / 'eastus.db'}"
            audit(cloud.cloud, tmp_path / "cloud", databases={"eastus": eastus})
            assert "Traceback" not in (tmp_path / "cloud" / "up.log").read_text(errors="replace")
        finally:
            cloud.kill()
