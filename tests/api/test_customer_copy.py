"""A customer copies a disk's snapshots from eastus to westus themselves, with nothing but the
unmodified azure-mgmt-compute and azure-storage-blob: a full copy of the allocated ranges of the
first incremental snapshot, then only the pages the managed-disk diff names for the second.

The bytes moved are counted by the copy loop below, never taken from the server. The engine
tracks 4 KiB pages, so a diff names whole 4 KiB pages: the changed bytes the delta is held to
are counted at that granularity (a 512-byte write changes one 4 KiB page).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobClient

pytestmark = pytest.mark.slow

KiB, MiB = 1024, 1024**2
SIZE = 64 * MiB
PAGE = 4096
"""The engine's page: a diff names whole pages of this many bytes."""
MAX_CALL = 4 * MiB
"""The most one Put Page may carry."""
HOUR = 3600


def upload_body(size: int, location: str) -> Any:
    return {
        "location": location,
        "properties": {"creationData": {"createOption": "Upload", "uploadSizeBytes": size}},
    }


def snapshot_body(disk_id: str, location: str) -> Any:
    return {
        "location": location,
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
            "incremental": True,
        },
    }


def access(kind: str) -> Any:
    return {"access": kind, "durationInSeconds": HOUR}


@dataclass
class Customer:
    """What the customer does through azure-mgmt-compute in one resource group."""

    compute: ComputeManagementClient
    rg: str

    def upload_disk(self, name: str, location: str) -> str:
        made = self.compute.disks.begin_create_or_update(
            self.rg, name, upload_body(SIZE, location)
        ).result()
        return str(made.id)

    def disk_state(self, name: str) -> str:
        props = self.compute.disks.get(self.rg, name).properties
        assert props is not None
        return str(getattr(props.disk_state, "value", props.disk_state))

    def write_access(self, disk: str) -> BlobClient:
        poller = self.compute.disks.begin_grant_access(self.rg, disk, access("Write"))
        sas = poller.result().access_sas
        assert sas is not None
        return BlobClient.from_blob_url(sas, retry_total=0)

    def end_disk_access(self, disk: str) -> None:
        self.compute.disks.begin_revoke_access(self.rg, disk).result()

    def snapshot(self, name: str, disk_id: str, location: str) -> None:
        self.compute.snapshots.begin_create_or_update(
            self.rg, name, snapshot_body(disk_id, location)
        ).result()

    def read_access(self, snapshot: str) -> str:
        poller = self.compute.snapshots.begin_grant_access(self.rg, snapshot, access("Read"))
        return str(poller.result().access_sas)

    def end_snapshot_access(self, snapshot: str) -> None:
        self.compute.snapshots.begin_revoke_access(self.rg, snapshot).result()


@dataclass
class Mover:
    """The customer's copy loop: reads ranges from a snapshot SAS and writes them to a disk SAS,
    at most 4 MiB per call, counting what it moves."""

    source: BlobClient
    target: BlobClient
    moved: int = 0
    cleared: int = 0
    calls: list[int] = field(default_factory=list)

    def copy(self, start: int, end: int) -> None:
        """The inclusive byte range [start, end], read and written."""
        for offset in range(start, end + 1, MAX_CALL):
            length = min(MAX_CALL, end + 1 - offset)
            data = self.source.download_blob(offset=offset, length=length).readall()
            assert len(data) == length
            self.target.upload_page(data, offset=offset, length=length)
            self.moved += length
            self.calls.append(length)

    def clear(self, start: int, end: int) -> None:
        for offset in range(start, end + 1, MAX_CALL):
            length = min(MAX_CALL, end + 1 - offset)
            self.target.clear_page(offset=offset, length=length)
            self.cleared += length


@dataclass
class Source:
    """The eastus disk as the customer wrote it: content, and the 4 KiB pages touched since the
    last snapshot."""

    client: BlobClient
    data: bytearray = field(default_factory=lambda: bytearray(SIZE))
    touched: set[int] = field(default_factory=set)

    def write(self, offset: int, data: bytes) -> None:
        for at in range(0, len(data), MAX_CALL):
            piece = data[at : at + MAX_CALL]
            self.client.upload_page(piece, offset=offset + at, length=len(piece))
        self.data[offset : offset + len(data)] = data
        self.touched.update(range(offset // PAGE, -(-(offset + len(data)) // PAGE)))

    def clear(self, offset: int, length: int) -> None:
        self.client.clear_page(offset=offset, length=length)
        self.data[offset : offset + length] = bytes(length)
        self.touched.update(range(offset // PAGE, -(-(offset + length) // PAGE)))

    def nonzero_pages(self) -> set[int]:
        pages = np.frombuffer(self.data, dtype=np.uint8).reshape(-1, PAGE).any(axis=1)
        return {int(p) for p in np.flatnonzero(pages)}


def sha256_of(sas: str) -> str:
    """The SHA-256 of a snapshot's whole content, downloaded through its SAS."""
    digest = hashlib.sha256()
    for chunk in (
        BlobClient.from_blob_url(sas, retry_total=0).download_blob(max_concurrency=4).chunks()
    ):
        digest.update(chunk)
    return digest.hexdigest()


def fill(source: Source, rng: random.Random) -> None:
    """About half the disk: random data, a repeating pattern, scattered small writes, written
    zeros; the rest never written."""
    source.write(0, rng.randbytes(6 * MiB))
    source.write(6 * MiB, bytes(2 * PAGE))  # written, but zeros: sparse in a snapshot
    source.write(10 * MiB, rng.randbytes(512 * KiB))
    source.write(16 * MiB, (b"snapferry-" * (12 * MiB // 10 + 1))[: 12 * MiB])
    for _ in range(64):
        source.write(
            rng.randrange(29 * MiB, 38 * MiB, 512), rng.randbytes(512 * rng.randint(1, 24))
        )
    source.write(40 * MiB, rng.randbytes(8 * MiB + 512))
    source.write(SIZE - MiB, rng.randbytes(MiB))


def change_one_percent(source: Source, rng: random.Random) -> None:
    """About 1% of the disk: new writes over data and over nothing, clears of data, and a clear
    of 512 bytes that leaves the rest of its 4 KiB page as it was."""
    for _ in range(40):
        offset = rng.randrange(0, SIZE - 64 * KiB, 512)  # often not 4 KiB aligned
        source.write(offset, rng.randbytes(512 * rng.randint(1, 64)))
    source.clear(2 * MiB, 64 * KiB)
    source.clear(40 * MiB + 4 * PAGE, 8 * PAGE)
    source.clear(SIZE - MiB + 512, 512)
    source.clear(17 * MiB, 32 * KiB)


@pytest.fixture(scope="module")
def customer(compute: ComputeManagementClient, groups: ResourceManagementClient) -> Customer:
    groups.resource_groups.create_or_update("copy", {"location": "eastus"})
    return Customer(compute, "copy")


def test_a_customer_copies_snapshots_across_regions_with_the_sdks_only(
    customer: Customer,
) -> None:
    rng = random.Random(64)
    east_id = customer.upload_disk("east", "eastus")
    source = Source(customer.write_access("east"))
    fill(source, rng)
    customer.end_disk_access("east")
    customer.snapshot("s1", east_id, "eastus")
    s1_pages = source.nonzero_pages()
    s1_sha = hashlib.sha256(source.data).hexdigest()

    # full copy: only the ranges the snapshot's page list names
    west_id = customer.upload_disk("west", "westus")
    assert customer.disk_state("west") == "ReadyToUpload"
    s1 = BlobClient.from_blob_url(customer.read_access("s1"), retry_total=0)
    full = Mover(s1, customer.write_access("west"))
    assert customer.disk_state("west") == "ActiveUpload"
    for page in s1.list_page_ranges():
        assert page.start is not None and page.end is not None and not page.cleared
        full.copy(page.start, page.end)
    customer.end_snapshot_access("s1")
    customer.end_disk_access("west")
    assert customer.disk_state("west") == "Unattached"
    assert full.moved == len(s1_pages) * PAGE  # the sparse half was never read nor written
    assert full.moved < SIZE * 0.6 and max(full.calls) == MAX_CALL

    # ~1% changes on the source, a second snapshot, and the diff between the two
    source.client = customer.write_access("east")
    source.touched = set()
    change_one_percent(source, rng)
    customer.end_disk_access("east")
    customer.snapshot("s2", east_id, "eastus")
    s2_sha = hashlib.sha256(source.data).hexdigest()
    assert s2_sha != s1_sha
    s2_pages = source.nonzero_pages()
    changed_pages = source.touched & s2_pages  # to send: pages written now holding data
    cleared_pages = (source.touched & s1_pages) - s2_pages  # to clear: data that became zeros
    assert 0.005 * SIZE < len(changed_pages) * PAGE < 0.02 * SIZE
    assert cleared_pages

    s1_sas = customer.read_access("s1")
    s2_sas = customer.read_access("s2")
    s2 = BlobClient.from_blob_url(s2_sas, retry_total=0)
    changed, cleared = s2.get_page_range_diff_for_managed_disk(s1_sas)
    delta = Mover(s2, customer.write_access("west"))  # a Write grant on an Unattached disk
    assert customer.disk_state("west") == "ActiveSAS"
    for r in changed:
        delta.copy(r["start"], r["end"])
    for r in cleared:
        delta.clear(r["start"], r["end"])
    customer.end_disk_access("west")
    customer.end_snapshot_access("s1")
    customer.snapshot("w2", west_id, "westus")

    changed_bytes = len(changed_pages) * PAGE
    assert changed_bytes <= delta.moved <= 1.1 * changed_bytes
    assert delta.cleared >= len(cleared_pages) * PAGE
    assert delta.moved + delta.cleared < 0.03 * SIZE

    west_sha = sha256_of(customer.read_access("w2"))
    east_sha = sha256_of(s2_sas)
    assert east_sha == s2_sha  # S2 holds what the customer wrote
    assert west_sha == east_sha  # and westus now holds S2
    customer.end_snapshot_access("s2")
    customer.end_snapshot_access("w2")
