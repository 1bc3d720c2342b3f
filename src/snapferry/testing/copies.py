"""Helpers for tests of copies between regions, through the unmodified Azure SDKs: a cloud
with three regions and short copy leases, a ``Family`` that writes a disk through its SAS and
snapshots it, and what ``/snapferry/copies`` reports."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.storage.blob import BlobClient

from snapferry.testing.cloud import RunningCloud

MiB = 1024**2
PAGE = 4096
HOUR = 3600

CONFIG = """
[[regions]]
name = "eastus"
zones = ["1", "2", "3"]
copy_lease_seconds = 3

[[regions]]
name = "westus"
copy_lease_seconds = 3
{westus_extra}

[[regions]]
name = "centralus"
copy_lease_seconds = 3
{centralus_extra}
"""


@contextmanager
def cloud_running(
    path: Path, westus_extra: str = "", centralus_extra: str = "", args: tuple[str, ...] = ()
) -> Iterator[RunningCloud]:
    """``snapferry up`` with eastus, westus and centralus (and ``args``), killed afterwards; the
    extras are TOML lines added to those regions' entries (fault injection, limits)."""
    text = CONFIG.format(westus_extra=westus_extra, centralus_extra=centralus_extra)
    cloud = RunningCloud.start(path, config_text=text, args=args)
    try:
        yield cloud
    finally:
        cloud.kill()


def copy_body(source_id: str, location: str, **props: Any) -> dict[str, Any]:
    creation: dict[str, Any] = {"createOption": "CopyStart", "sourceResourceId": source_id}
    speed = props.pop("speed", None)
    if speed:
        creation["provisionedBandwidthCopySpeed"] = speed
    return {"location": location, "properties": {"creationData": creation, **props}}


def copies(cloud: dict[str, Any], target: str | None = None) -> list[dict[str, Any]]:
    params = {"subscription": cloud["subscription"]}
    if target:
        params["target"] = target
    reply = requests.get(
        cloud["endpoint"] + "/snapferry/copies",
        params=params,
        headers={"Authorization": f"Bearer {cloud['token']}"},
        timeout=30,
    )
    reply.raise_for_status()
    return list(reply.json()["value"])


def copy_events(cloud: dict[str, Any], target: str) -> list[dict[str, Any]]:
    """The events of the copy into target, oldest first (through the front door)."""
    reply = requests.get(
        cloud["endpoint"] + "/snapferry/copies/events",
        params={"subscription": cloud["subscription"], "target": target},
        headers={"Authorization": f"Bearer {cloud['token']}"},
        timeout=30,
    )
    reply.raise_for_status()
    return list(reply.json()["value"])


@dataclass
class Family:
    """A disk in one region, written through its SAS, and its snapshots; ``image`` mirrors it."""

    compute: ComputeManagementClient
    rg: str
    disk: str
    location: str
    size: int
    image: bytearray = field(default_factory=bytearray)
    disk_id: str = ""

    def create(self) -> Family:
        body: Any = {
            "location": self.location,
            "properties": {
                "creationData": {"createOption": "Upload", "uploadSizeBytes": self.size}
            },
        }
        made = self.compute.disks.begin_create_or_update(self.rg, self.disk, body).result()
        self.disk_id = str(made.id)
        self.image = bytearray(self.size)
        return self

    def write(self, writes: list[tuple[int, bytes]]) -> int:
        """Write through a Write SAS; the distinct 4 KiB pages touched."""
        sas = self.compute.disks.begin_grant_access(
            self.rg,
            self.disk,
            {"access": "Write", "durationInSeconds": HOUR},
        ).result()
        client = BlobClient.from_blob_url(str(sas.access_sas), retry_total=0)
        pages: set[int] = set()
        for offset, data in writes:
            for start in range(0, len(data), 4 * MiB):
                part = data[start : start + 4 * MiB]
                client.upload_page(part, offset=offset + start, length=len(part))
            self.image[offset : offset + len(data)] = data
            pages.update(range(offset // PAGE, -(-(offset + len(data)) // PAGE)))
        self.compute.disks.begin_revoke_access(self.rg, self.disk).result()
        return len(pages)

    def scatter(self, rng: np.random.Generator, fraction: float) -> int:
        """Random 4 KiB pages of random data over ``fraction`` of the disk; bytes changed."""
        count = int(self.size // PAGE * fraction)
        chosen = rng.choice(self.size // PAGE, count, replace=False)
        return self.write([(int(p) * PAGE, rng.bytes(PAGE)) for p in chosen]) * PAGE

    def snapshot_id(self, name: str) -> str:
        return str(self.compute.snapshots.get(self.rg, name).id)

    def snapshot(self, name: str) -> str:
        body: Any = {
            "location": self.location,
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": self.disk_id},
                "incremental": True,
            },
        }
        made = self.compute.snapshots.begin_create_or_update(self.rg, name, body).result()
        return str(made.id)


def sha_of_snapshot(compute: ComputeManagementClient, rg: str, name: str) -> str:
    sas = compute.snapshots.begin_grant_access(
        rg,
        name,
        {"access": "Read", "durationInSeconds": HOUR},
    ).result()
    client = BlobClient.from_blob_url(str(sas.access_sas), retry_total=0)
    digest = hashlib.sha256(client.download_blob(max_concurrency=4).readall()).hexdigest()
    compute.snapshots.begin_revoke_access(rg, name).result()
    return digest


def wait_copied(
    compute: ComputeManagementClient, rg: str, name: str, timeout: float = 120.0
) -> list[int]:
    """Poll a target until its copy ends; the completionPercent values seen, in order."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        props = compute.snapshots.get(rg, name).properties
        assert props is not None
        percent = int(props.completion_percent if props.completion_percent is not None else 100)
        if not seen or seen[-1] != percent:
            seen.append(percent)
        state = str(getattr(props.provisioning_state, "value", props.provisioning_state))
        if percent == 100 or state == "Failed":
            return seen
        time.sleep(0.1)
    raise AssertionError(f"copy {name} did not end in {timeout} s: {seen}")
