"""kill -9 of a cloud while page writes stream in through an access URL: every acknowledged
write is there after the restart, every write in flight left its old or its new content, never a
mix, and the access URL handed out before the crash still works."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobClient

from snapferry.sdk import connect
from snapferry.testing.cloud import RunningCloud

pytestmark = pytest.mark.slow

SIZE = 32 * 1024 * 1024
WRITE = 64 * 1024
"""Bytes per Put Page: 16 engine pages, so a torn write would show."""


def content(index: int) -> bytes:
    """What write number index puts at offset index * WRITE: distinct per write, non-zero."""
    stamp = index.to_bytes(4, "big")
    return (stamp + bytes([index % 251 + 1]) * 12) * (WRITE // 16)


def grant(compute: ComputeManagementClient, access: str) -> str:
    body: Any = {"access": access, "durationInSeconds": 3600}
    sas: str = compute.disks.begin_grant_access("g", "d", body).result().access_sas
    return sas


def writer(sas: str, acked: list[int], stop: threading.Event) -> None:
    """Write slots 0, 1, 2, ... in order; record each one the server acknowledged."""
    session = requests.Session()
    for index in range(SIZE // WRITE):
        if stop.is_set():
            return
        start = index * WRITE
        headers = {"x-ms-range": f"bytes={start}-{start + WRITE - 1}", "x-ms-page-write": "update"}
        try:
            resp = session.put(sas + "&comp=page", data=content(index), headers=headers, timeout=10)
        except requests.RequestException:
            return  # the server died: this write is in flight, not acknowledged
        if resp.status_code != 201:
            return
        acked.append(index)


def test_acknowledged_page_writes_survive_kill_9(tmp_path: Path) -> None:
    running = RunningCloud.start(tmp_path / "cloud")
    try:
        cloud = running.cloud
        connect(ResourceManagementClient, cloud).resource_groups.create_or_update(
            "g", {"location": "eastus"}
        )
        compute = connect(ComputeManagementClient, cloud)
        body: Any = {
            "location": "eastus",
            "properties": {"creationData": {"createOption": "Upload", "uploadSizeBytes": SIZE}},
        }
        compute.disks.begin_create_or_update("g", "d", body).result()
        acked: list[int] = []
        stop = threading.Event()
        first_sas = grant(compute, "Write")
        thread = threading.Thread(target=writer, args=(first_sas, acked, stop))
        thread.start()
        deadline = time.monotonic() + 30
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        running.kill()  # writes are still streaming in
        stop.set()
        thread.join(30)
        assert len(acked) >= 40, "the writer never got going"
        assert len(acked) < SIZE // WRITE, "every write finished before the kill: nothing in flight"

        running.restart()
        compute = connect(ComputeManagementClient, running.cloud)
        disk = compute.disks.get("g", "d")
        assert disk.properties.disk_size_bytes == SIZE
        # the region took its port again: the access URL handed out before the crash still works
        assert requests.head(first_sas, timeout=10).status_code == 200
        data = BlobClient.from_blob_url(grant(compute, "Write")).download_blob().readall()
        assert len(data) == SIZE
        for index in acked:
            assert data[index * WRITE : (index + 1) * WRITE] == content(index), index
        # the write in flight at the kill (the one after the last acknowledged) and any after it:
        # old content (zeros) or new, never a mix
        for index in range(acked[-1] + 1, SIZE // WRITE):
            got = data[index * WRITE : (index + 1) * WRITE]
            assert got in (bytes(WRITE), content(index)), index
        assert acked == list(range(len(acked)))
    finally:
        running.kill()
