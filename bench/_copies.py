"""Helpers shared by the copy benchmarks: a two-region cloud, disks filled through their SAS
with plain aiohttp, snapshots, a CopyStart timed until it ends, and reading a snapshot back.

The cloud (``snapferry up``: front door, eastus, westus on loopback) runs in a child process, so
its CPU is apart from the clients'. Copies are timed from the PUT to the moment
``/snapferry/copies`` reports them Succeeded (polled every 20 ms).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import blake3
import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from yarl import URL

from snapferry.sdk import connect
from snapferry.testing.cloud import RunningCloud

MiB = 1024 * 1024
BLOCK = 4 * MiB
GROUP = "bench"
X_MS_VERSION = "2025-01-05"
CONFIG = """
[[regions]]
name = "eastus"
zones = ["1", "2", "3"]
"""
TARGET = """
[[regions]]
name = "{name}"
"""


def ensure_tool(name: str) -> str:
    """The path of a command the benchmark compares against, installed with apt-get (as root)
    when the machine lacks it (refreshing the package lists if the first try fails)."""
    install = ["apt-get", "install", "-y", "-q", name]
    for steps in ([install], [["apt-get", "update", "-q"], install]):
        if shutil.which(name):
            break
        for step in steps:
            subprocess.run(step, check=False, capture_output=True, timeout=600)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"this benchmark needs {name}; install it (apt-get install {name})")
    return found


class Cloud:
    """A running cloud of eastus and the target regions (default: westus), SDK clients for it."""

    def __init__(self, root: Path, targets: tuple[str, ...] = ("westus",)) -> None:
        text = CONFIG + "".join(TARGET.format(name=name) for name in targets)
        self.running = RunningCloud.start(root / "cloud", config_text=text)
        self.cloud = self.running.cloud
        self.compute = connect(ComputeManagementClient, self.cloud, retry_total=0)
        connect(ResourceManagementClient, self.cloud).resource_groups.create_or_update(
            GROUP, {"location": "eastus"}
        )

    def close(self) -> None:
        self.running.kill()

    @property
    def pid(self) -> int:
        assert self.running.process is not None
        return self.running.process.pid

    def upload_disk(self, name: str, size: int) -> str:
        body: Any = {
            "location": "eastus",
            "properties": {"creationData": {"createOption": "Upload", "uploadSizeBytes": size}},
        }
        return str(self.compute.disks.begin_create_or_update(GROUP, name, body).result().id)

    def grant(self, kind: str, name: str, access: str) -> str:
        ops = self.compute.disks if kind == "disks" else self.compute.snapshots
        grant: Any = {"access": access, "durationInSeconds": 3600}
        return str(ops.begin_grant_access(GROUP, name, grant).result().access_sas)

    def revoke(self, kind: str, name: str) -> None:
        ops = self.compute.disks if kind == "disks" else self.compute.snapshots
        ops.begin_revoke_access(GROUP, name).result()

    def snapshot(self, name: str, disk_id: str) -> str:
        body: Any = {
            "location": "eastus",
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
                "incremental": True,
            },
        }
        return str(self.compute.snapshots.begin_create_or_update(GROUP, name, body).result().id)

    def copy(
        self, source_id: str, name: str, location: str = "westus"
    ) -> tuple[float, dict[str, Any]]:
        """CopyStart source into location; seconds until it Succeeded, and its report."""
        body: Any = {
            "location": location,
            "properties": {
                "creationData": {"createOption": "CopyStart", "sourceResourceId": source_id}
            },
        }
        start = time.perf_counter()
        made = self.compute.snapshots.begin_create_or_update(GROUP, name, body).result()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.cloud['token']}"
        params = {"subscription": self.cloud["subscription"], "target": str(made.id)}
        while True:
            reply = session.get(
                self.cloud["endpoint"] + "/snapferry/copies", params=params, timeout=30
            )
            (report,) = reply.json()["value"]
            if report["state"] == "Succeeded":
                return time.perf_counter() - start, report
            if report["state"] == "Failed":
                raise RuntimeError(f"the copy failed: {report['lastError']}")
            time.sleep(0.02)


def _url(sas: str, extra: str = "") -> URL:
    return URL(sas + extra, encoded=True)


async def put_pages(
    sas: str, writes: Iterable[tuple[int, bytes | memoryview]], workers: int = 8
) -> None:
    """Put Page (update) of each (offset, data) with plain aiohttp, ``workers`` connections."""
    url = _url(sas, "&comp=page")
    pending = iter(writes)
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for offset, data in pending:
                headers = {
                    "x-ms-version": X_MS_VERSION,
                    "x-ms-page-write": "update",
                    "x-ms-range": f"bytes={offset}-{offset + len(data) - 1}",
                }
                async with session.put(url, data=bytes(data), headers=headers) as reply:
                    await reply.read()
                    if reply.status != 201:
                        raise RuntimeError(f"Put Page at {offset} answered {reply.status}")

        await asyncio.gather(*(worker() for _ in range(workers)))


def fill(cloud: Cloud, name: str, size: int, block: Callable[[int], bytes]) -> str:
    """An eastus disk of size bytes whose 4 MiB block i is block(i); its id."""
    disk_id = cloud.upload_disk(name, size)
    sas = cloud.grant("disks", name, "Write")
    writes = ((i * BLOCK, block(i)) for i in range(size // BLOCK))
    asyncio.run(put_pages(sas, writes, workers=4))
    cloud.revoke("disks", name)
    return disk_id


def write_pages(cloud: Cloud, name: str, writes: Iterable[tuple[int, bytes]]) -> None:
    sas = cloud.grant("disks", name, "Write")
    asyncio.run(put_pages(sas, writes, workers=8))
    cloud.revoke("disks", name)


def block_digests(cloud: Cloud, name: str) -> list[bytes]:
    """The blake3 of every 4 MiB block of a snapshot, read through its SAS."""
    sas = cloud.grant("snapshots", name, "Read")

    async def read() -> list[bytes]:
        digests = []
        headers = {"x-ms-version": X_MS_VERSION}
        async with (
            aiohttp.ClientSession(read_bufsize=BLOCK) as session,
            session.get(_url(sas), headers=headers) as reply,
        ):
            buf = bytearray()
            async for piece in reply.content.iter_chunked(BLOCK):
                buf += piece
                while len(buf) >= BLOCK:
                    digests.append(blake3.blake3(bytes(buf[:BLOCK])).digest())
                    del buf[:BLOCK]
        return digests

    try:
        return asyncio.run(read())
    finally:
        cloud.revoke("snapshots", name)
