"""A region on a real small filesystem, filled through the official SDKs: writes are refused
with a named error before the reserve is touched, nothing acknowledged is lost, reads, lists and
deletes go on, and deleting data makes room for writes again — with no restart, no traceback
per request, and connections that stay usable after an error answer."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobClient

from snapferry.sdk import connect
from snapferry.testing import arm
from snapferry.testing.audit import audit
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.filesystems import can_mount, small_filesystem

pytestmark = pytest.mark.skipif(can_mount() is not None, reason=str(can_mount()))

MiB = 1024 * 1024
BLOCK = 4 * MiB
FS_MIB = 160
RESERVE_MIB = 24
CONFIG = f"""
[[regions]]
name = "eastus"
reserve_percent = 50
reserve_mib = {RESERVE_MIB}

[[regions]]
name = "westus"
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    with small_filesystem(tmp_path_factory.mktemp("full") / "fs", FS_MIB) as root:
        running = RunningCloud.start(root / "cloud", config_text=CONFIG)
        connect(ResourceManagementClient, running.cloud).resource_groups.create_or_update(
            "g", {"location": "eastus"}
        )
        try:
            yield running
        finally:
            running.kill()


def compute(cloud: RunningCloud) -> Any:
    return connect(ComputeManagementClient, cloud.cloud, retry_total=0)


def upload_disk(cloud: RunningCloud, name: str, size: int) -> str:
    return arm.upload_disk(compute(cloud), "g", name, size)


def block(n: int) -> bytes:
    return (n.to_bytes(4, "big") * (BLOCK // 4))[:BLOCK]


class Writer:
    """Put Pages of 4 MiB over one kept-alive connection."""

    def __init__(self, sas: str) -> None:
        url = urlsplit(sas)
        self.path = f"{url.path}?{url.query}&comp=page"
        self.conn = http.client.HTTPConnection(str(url.hostname), url.port, timeout=60)

    def put(self, n: int) -> http.client.HTTPResponse:
        headers = {
            "x-ms-range": f"bytes={n * BLOCK}-{(n + 1) * BLOCK - 1}",
            "x-ms-page-write": "update",
            "x-ms-version": "2025-01-05",
        }
        self.conn.request("PUT", self.path, body=block(n), headers=headers)
        resp = self.conn.getresponse()
        resp.read()
        return resp


def test_a_full_region_refuses_new_data_by_name_and_frees_room_on_delete(
    cloud: RunningCloud,
) -> None:
    sas = upload_disk(cloud, "filler", 64 * BLOCK)
    writer = Writer(sas)
    landed = 0
    while True:
        resp = writer.put(landed)
        if resp.status != 201:
            break
        landed += 1
        assert landed < 64, "the filesystem never filled"
    assert landed >= 10
    assert resp.status == 503
    assert resp.getheader("x-ms-error-code") == "StorageFull"
    assert resp.getheader("retry-after") == "30"
    assert resp.getheader("connection", "").lower() != "close"
    sock = writer.conn.sock
    assert writer.put(landed).status == 503  # the same connection answers again
    assert writer.conn.sock is sock

    # everything acknowledged reads back; nothing of the refused writes landed
    reader = BlobClient.from_blob_url(sas)
    for n in range(landed + 1):
        got = reader.download_blob(offset=n * BLOCK, length=BLOCK).readall()
        assert got == (block(n) if n < landed else bytes(BLOCK)), f"block {n}"

    # new data is refused by name through ARM too; what exists still answers
    client = compute(cloud)
    client.disks.begin_revoke_access("g", "filler").result()  # the upload is done
    disk_id = client.disks.get("g", "filler").id
    snap: Any = {
        "location": "eastus",
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id}},
    }
    with pytest.raises(HttpResponseError) as refused:
        client.snapshots.begin_create_or_update("g", "snap", snap).result()
    assert refused.value.status_code == 503
    assert refused.value.error is not None and refused.value.error.code == "StorageFull"
    assert [d.name for d in client.disks.list_by_resource_group("g")] == ["filler"]
    assert [s.name for s in client.snapshots.list_by_resource_group("g")] == []

    # deleting the disk makes room again, with no restart
    client.disks.begin_delete("g", "filler").result()
    again = Writer(upload_disk(cloud, "after", 16 * BLOCK))
    assert [again.put(n).status for n in range(4)] == [201] * 4

    writer.conn.close()
    again.conn.close()
    audit(cloud.cloud, cloud.data_dir)
    log = (cloud.data_dir / "up.log").read_text(errors="replace")
    assert "Traceback" not in log
    assert log.count("StorageFull") <= 2, "a storage fault logs once a minute, not per request"


def test_a_filesystem_without_a_reserve_fills_to_enospc_and_says_so(tmp_path: Path) -> None:
    """With no reserve the filesystem itself runs out: the write that meets ENOSPC is answered
    503 StorageFull like one the reserve refused, and nothing acknowledged is lost."""
    config = CONFIG.replace(f"reserve_mib = {RESERVE_MIB}", "reserve_mib = 0")
    with small_filesystem(tmp_path / "fs", 96) as root:
        bare = RunningCloud.start(root / "cloud", config_text=config)
        try:
            connect(ResourceManagementClient, bare.cloud).resource_groups.create_or_update(
                "g", {"location": "eastus"}
            )
            sas = upload_disk(bare, "filler", 64 * BLOCK)
            writer = Writer(sas)
            codes = []
            for n in range(40):
                resp = writer.put(n)
                codes.append(resp.getheader("x-ms-error-code") or str(resp.status))
            writer.conn.close()
            landed = codes.index("StorageFull")
            assert landed >= 5 and set(codes[:landed]) == {"201"}, codes
            reader = BlobClient.from_blob_url(sas)
            for n in range(landed):
                assert reader.download_blob(offset=n * BLOCK, length=BLOCK).readall() == block(n)
            log = (bare.data_dir / "up.log").read_text(errors="replace")
            assert "Traceback" not in log
        finally:
            bare.kill()
