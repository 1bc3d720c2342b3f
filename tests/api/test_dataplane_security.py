"""The SAS security matrix of the page-blob data plane, against a real ``snapferry up``.

Every SAS that is expired, revoked (``endGetAccess``, or replaced by a newer grant), tampered
with (``sig``, ``sp``, ``se`` or ``si`` changed, ``sig`` or the whole SAS removed), of another
resource (another disk, a snapshot's own disk, another region, a resource deleted and made
again under the same name) or short of the permission a request needs is refused with a 403:
``x-ms-error-code`` ``AuthenticationFailed`` (bad, expired, revoked or misplaced signatures) or
``AuthorizationPermissionMismatch`` (a valid SAS that does not grant the request), an XML
``<Error>`` whose ``<Code>`` is the header's, and nothing read or written: no data and no blob
properties in the answer, and the blob's content, read afterwards through a valid SAS, unchanged.

Each case is tried through the unmodified azure-storage-blob SDK (``HttpResponseError``'s
``status_code`` and ``error_code``) and through plain ``requests`` (headers and body). Last, a
cloud of its own takes good and bad requests and is stopped: no SAS signature reaches its output
or its logs.
"""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobClient

from snapferry.sdk import connect
from snapferry.testing.cloud import RunningCloud

pytestmark = pytest.mark.slow

MiB = 1024**2
SIZE = 20 * MiB + 512
"""The smallest Upload disk."""
HOUR = 3600
GROUP = "sas-matrix"
DENIED = "AuthenticationFailed"
NO_PERMISSION = "AuthorizationPermissionMismatch"
LEAKY_HEADERS = (
    "etag",
    "last-modified",
    "content-range",
    "content-md5",
    "accept-ranges",
    "x-ms-blob-type",
    "x-ms-blob-content-length",
    "x-ms-creation-time",
    "x-ms-blob-sequence-number",
)
"""What a refused request must not learn of the blob (its size, times, version)."""
OVERWRITE = b"\xee" * 512
"""What refused writes try to put at offset 0 (no disk here holds it)."""


# --- the control plane ---------------------------------------------------------------------------
def upload_body(location: str = "eastus") -> Any:
    return {
        "location": location,
        "properties": {"creationData": {"createOption": "Upload", "uploadSizeBytes": SIZE}},
    }


def snapshot_body(disk_id: str) -> Any:
    return {
        "location": "eastus",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
            "incremental": True,
        },
    }


def pattern(name: str, length: int) -> bytes:
    """Bytes of their own for each resource: a leak of them is recognisable."""
    seed = hashlib.sha256(f"snapferry-sas-matrix/{name}".encode()).digest()
    return (seed * (length // len(seed) + 1))[:length]


def marker(name: str) -> bytes:
    return pattern(name, 16)


@dataclass
class Arm:
    """The group's disks and snapshots, through azure-mgmt-compute."""

    compute: ComputeManagementClient

    def grant(self, rtype: str, name: str, access: str = "Read", duration: int = HOUR) -> str:
        ops = self.compute.disks if rtype == "disks" else self.compute.snapshots
        body = {"access": access, "durationInSeconds": duration}
        return str(ops.begin_grant_access(GROUP, name, body).result().access_sas)

    def revoke(self, rtype: str, name: str) -> None:
        ops = self.compute.disks if rtype == "disks" else self.compute.snapshots
        ops.begin_revoke_access(GROUP, name).result()

    def delete(self, rtype: str, name: str) -> None:
        ops = self.compute.disks if rtype == "disks" else self.compute.snapshots
        ops.begin_delete(GROUP, name).result()

    def disk(self, name: str, location: str = "eastus") -> tuple[str, str]:
        """A new Upload disk holding its pattern at [0, 8 KiB), [1 MiB, 1 MiB + 4 KiB) and in
        its last page; (its id, a live write SAS)."""
        made = self.compute.disks.begin_create_or_update(GROUP, name, upload_body(location))
        disk_id = str(made.result().id)
        sas = self.grant("disks", name, "Write")
        client = blob(sas)
        data = pattern(name, 8192)
        client.upload_page(data, offset=0, length=8192)
        client.upload_page(data[:4096], offset=MiB, length=4096)
        client.upload_page(data[:512], offset=SIZE - 512, length=512)
        return disk_id, sas

    def snapshot(self, name: str, disk_name: str, disk_id: str) -> str:
        """A snapshot of the disk (whose SAS is revoked first); a live read SAS of it."""
        self.revoke("disks", disk_name)
        self.compute.snapshots.begin_create_or_update(GROUP, name, snapshot_body(disk_id)).result()
        return self.grant("snapshots", name)


def blob(url: str) -> BlobClient:
    """An unmodified BlobClient on a SAS URL, without retries."""
    return BlobClient.from_blob_url(url, retry_total=0)


def content(url: str) -> tuple[int, str, list[tuple[int, int, bool]]]:
    """What a valid SAS reads of a blob: size, a digest of the regions the disks' patterns and
    the refused writes touch, and the page list."""
    client = blob(url)
    size = client.get_blob_properties().size
    parts = b"".join(
        client.download_blob(offset=offset, length=length).readall()
        for offset, length in ((0, 64 * 1024), (MiB, 8192), (SIZE - 4096, 4096))
    )
    pages = [(r.start, r.end, r.cleared) for r in client.list_page_ranges()]  # type: ignore[misc]
    return size, hashlib.sha256(parts).hexdigest(), pages


def expected_content(name: str) -> tuple[int, str]:
    """``content``'s size and digest for a disk (or a snapshot of it) holding only its
    pattern."""
    data = bytearray(64 * 1024 + 8192 + 4096)
    piece = pattern(name, 8192)
    data[0:8192] = piece
    data[64 * 1024 : 64 * 1024 + 4096] = piece[:4096]
    data[-512:] = piece[:512]
    return SIZE, hashlib.sha256(bytes(data)).hexdigest()


def assert_holds_pattern(url: str, name: str) -> None:
    size, digest, pages = content(url)
    assert (size, digest) == expected_content(name)
    assert pages, "the pattern's pages are listed"
    assert pages[0][0] == 0
    assert pages[-1][1] == SIZE - 1


# --- SAS surgery -------------------------------------------------------------------------------
def split(url: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), parse_qsl(
        parts.query, keep_blank_values=True
    )


def with_query(base: str, query: list[tuple[str, str]]) -> str:
    return f"{base}?{urlencode(query)}" if query else base


def param(url: str, name: str) -> str:
    return dict(split(url)[1])[name]


def replaced(url: str, name: str, value: str | None) -> str:
    """The SAS URL with one parameter's value replaced (None: removed)."""
    base, query = split(url)
    if value is None:
        return with_query(base, [(k, v) for k, v in query if k != name])
    assert name in dict(query)
    return with_query(base, [(k, value if k == name else v) for k, v in query])


def flip(text: str) -> str:
    """The text with its first character changed to another of the same alphabet."""
    first = "B" if text[0] != "B" else "C"
    return first + text[1:]


def later(se: str) -> str:
    moved = datetime.strptime(se, "%Y-%m-%dT%H:%M:%SZ") + timedelta(days=365)
    return moved.strftime("%Y-%m-%dT%H:%M:%SZ")


def path_of(url: str) -> str:
    return urlsplit(url).path


def moved(url: str, *, path: str | None = None, netloc: str | None = None) -> str:
    """The SAS URL with its path (another resource's) or host (another region's) swapped in."""
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, netloc or parts.netloc, path or parts.path, parts.query, parts.fragment)
    )


TAMPERS: dict[str, Callable[[str], str]] = {
    "sig changed": lambda url: replaced(url, "sig", flip(param(url, "sig"))),
    "sig empty": lambda url: replaced(url, "sig", ""),
    "sig removed": lambda url: replaced(url, "sig", None),
    "sp changed": lambda url: replaced(url, "sp", "r" if param(url, "sp") == "rw" else "rw"),
    "se extended": lambda url: replaced(url, "se", later(param(url, "se"))),
    "si changed": lambda url: replaced(url, "si", uuid.uuid4().hex),
    "all SAS params removed": lambda url: split(url)[0],
}


# --- requests and what a refusal looks like ------------------------------------------------------
@dataclass(frozen=True)
class Op:
    """One data-plane request: method, query (beyond the SAS), headers, body, and whether it
    writes."""

    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    @property
    def writes(self) -> bool:
        return self.method == "PUT"


OPS: dict[str, Op] = {
    "properties": Op("HEAD", {}, {}),
    "read whole": Op("GET", {}, {}),
    "read range": Op("GET", {}, {"x-ms-range": "bytes=0-1023"}),
    "read Range header": Op("GET", {}, {"Range": "bytes=512-4095"}),
    "read past the end": Op("GET", {}, {"x-ms-range": f"bytes={SIZE + 512}-{SIZE + 1023}"}),
    "page list": Op("GET", {"comp": "pagelist"}, {}),
    "page list of a range": Op("GET", {"comp": "pagelist"}, {"x-ms-range": "bytes=0-8191"}),
    "write": Op(
        "PUT",
        {"comp": "page"},
        {"x-ms-page-write": "update", "x-ms-range": "bytes=0-511"},
        OVERWRITE,
    ),
    "write past the end": Op(
        "PUT",
        {"comp": "page"},
        {"x-ms-page-write": "update", "x-ms-range": f"bytes={SIZE}-{SIZE + 511}"},
        OVERWRITE,
    ),
    "clear": Op("PUT", {"comp": "page"}, {"x-ms-page-write": "clear", "x-ms-range": "bytes=0-511"}),
}
WRITES = [name for name, op in OPS.items() if op.writes]

SDK_OPS: dict[str, Callable[[BlobClient], object]] = {
    "get_blob_properties": lambda c: c.get_blob_properties(),
    "download_blob": lambda c: c.download_blob(offset=0, length=1024).readall(),
    "list_page_ranges": lambda c: list(c.list_page_ranges()),
    "list_page_ranges of a range": lambda c: list(c.list_page_ranges(offset=0, length=8192)),
    "get_page_range_diff_for_managed_disk": lambda c: c.get_page_range_diff_for_managed_disk(c.url),
    "upload_page": lambda c: c.upload_page(OVERWRITE, offset=0, length=512),
    "clear_page": lambda c: c.clear_page(offset=0, length=512),
}
SDK_WRITES = ("upload_page", "clear_page")


def send(url: str, op: Op) -> requests.Response:
    base, query = split(url)
    # the SAS first, then the request's own parameters, as the SDK sends them
    target = with_query(base, query + list(op.query.items()))
    headers = {"x-ms-version": "2026-10-06", **op.headers}
    return requests.request(op.method, target, headers=headers, data=op.body, timeout=30)


def assert_refused(
    reply: requests.Response, code: str, *, secrets: tuple[str, ...] = (), leaks: tuple[bytes, ...]
) -> None:
    """A 403 with the code in header and body, and nothing of the blob in it."""
    method = reply.request.method
    assert reply.status_code == 403, (reply.status_code, reply.headers, reply.content[:200])
    assert reply.headers.get("x-ms-error-code") == code, reply.headers
    body = reply.content
    if method == "HEAD":
        assert body == b""
    else:
        assert reply.headers.get("content-type") == "application/xml"
        assert int(reply.headers["content-length"]) == len(body)
        root = ET.fromstring(body)
        assert root.tag == "Error"
        assert root.findtext("Code") == code
        assert (root.findtext("Message") or "").strip()
    for name in LEAKY_HEADERS:
        assert name not in reply.headers, f"a refused {method} answers {name}: {reply.headers}"
    for leak in leaks:
        assert leak not in body, "a refused request's answer carries the blob's data"
    everything = body + repr(dict(reply.headers)).encode()
    for secret in secrets:
        if secret:
            assert secret.encode() not in everything, "a refusal echoes a signature"


def assert_sdk_refused(url: str, code: str, ops: tuple[str, ...] = tuple(SDK_OPS)) -> None:
    client = blob(url)
    for name in ops:
        with pytest.raises(HttpResponseError) as caught:
            SDK_OPS[name](client)
        assert caught.value.status_code == 403, (name, caught.value)
        assert caught.value.error_code == code, (name, caught.value)


def assert_all_refused(url: str, code: str, *, leaks: tuple[bytes, ...]) -> None:
    """Every request of the matrix refused (raw and through the SDK) with the code."""
    secrets = (param(url, "sig"),) if "sig=" in url else ()
    for op in OPS.values():
        assert_refused(send(url, op), code, secrets=secrets, leaks=leaks)
    assert_sdk_refused(url, code)


def assert_usable(url: str, *, write: bool) -> None:
    """The SAS is live: its reads work, and its writes too when it grants them (the writes
    rewrite what is already there)."""
    client = blob(url)
    assert client.get_blob_properties().size == SIZE
    head = client.download_blob(offset=0, length=512).readall()
    assert len(head) == 512
    if write:
        client.upload_page(head, offset=0, length=512)


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def arm(compute: ComputeManagementClient, groups: ResourceManagementClient) -> Arm:
    groups.resource_groups.create_or_update(GROUP, {"location": "eastus"})
    return Arm(compute)


@dataclass(frozen=True)
class Victims:
    """A disk with a live write SAS, a snapshot of another disk with a live read SAS, a disk
    with a live read SAS, and a disk in westus (for its data plane's address)."""

    disk: str
    disk_sas: str
    snap: str
    snap_sas: str
    snap_disk: str
    reader: str
    reader_sas: str
    westus_sas: str

    def of(self, target: str) -> tuple[str, str]:
        """(name whose pattern it holds, live SAS)."""
        return {
            "disk": (self.disk, self.disk_sas),
            "snapshot": (self.snap_disk, self.snap_sas),
            "read-only disk": (self.reader, self.reader_sas),
        }[target]

    @property
    def leaks(self) -> tuple[bytes, ...]:
        return (marker(self.disk), marker(self.snap_disk), marker(self.reader))


@pytest.fixture(scope="module")
def victims(arm: Arm) -> Victims:
    _, disk_sas = arm.disk("victim")
    source_id, _ = arm.disk("victim-source")
    snap_sas = arm.snapshot("victim-snap", "victim-source", source_id)
    arm.disk("reader")
    arm.revoke("disks", "reader")
    reader_sas = arm.grant("disks", "reader", "Read")
    _, westus_sas = arm.disk("far", location="westus")
    for sas in (disk_sas, snap_sas, reader_sas):
        assert_usable(sas, write=False)
    return Victims(
        "victim",
        disk_sas,
        "victim-snap",
        snap_sas,
        "victim-source",
        "reader",
        reader_sas,
        westus_sas,
    )


def assert_untouched(victims: Victims) -> None:
    """The victims still hold exactly their patterns, read through their valid SAS."""
    for target in ("disk", "snapshot", "read-only disk"):
        name, sas = victims.of(target)
        assert_holds_pattern(sas, name)


# --- tampered ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("tamper", list(TAMPERS))
@pytest.mark.parametrize("target", ["disk", "snapshot"])
def test_a_tampered_sas_is_refused_raw(victims: Victims, target: str, tamper: str, op: str) -> None:
    name, sas = victims.of(target)
    bad = TAMPERS[tamper](sas)
    assert bad != sas
    reply = send(bad, OPS[op])
    assert_refused(reply, DENIED, secrets=(param(sas, "sig"),), leaks=victims.leaks)
    if OPS[op].writes:
        assert_holds_pattern(sas, name)


@pytest.mark.parametrize("tamper", list(TAMPERS))
@pytest.mark.parametrize("target", ["disk", "snapshot"])
def test_a_tampered_sas_is_refused_through_the_sdk(
    victims: Victims, target: str, tamper: str
) -> None:
    name, sas = victims.of(target)
    assert_sdk_refused(TAMPERS[tamper](sas), DENIED)
    assert_holds_pattern(sas, name)


def test_the_untampered_sas_works(victims: Victims) -> None:
    """The control case of the matrix: the same requests on the valid SAS succeed."""
    for target in ("disk", "snapshot"):
        _, sas = victims.of(target)
        statuses = {name: send(sas, op).status_code for name, op in OPS.items() if not op.writes}
        assert statuses == {
            "properties": 200,
            "read whole": 200,
            "read range": 206,
            "read Range header": 206,
            "read past the end": 416,
            "page list": 200,
            "page list of a range": 200,
        }
    reply = send(victims.disk_sas, OPS["write"])
    assert reply.status_code == 201, reply.text
    assert send(victims.disk_sas, OPS["write past the end"]).status_code == 416
    # put the pattern back
    first = pattern(victims.disk, 512)
    blob(victims.disk_sas).upload_page(first, offset=0, length=512)
    assert_untouched(victims)


# --- wrong permission ------------------------------------------------------------------------------
@pytest.mark.parametrize("op", WRITES)
@pytest.mark.parametrize("target", ["read-only disk", "snapshot"])
def test_a_read_sas_cannot_write_raw(victims: Victims, target: str, op: str) -> None:
    name, sas = victims.of(target)
    assert param(sas, "sp") == "r"
    reply = send(sas, OPS[op])
    assert_refused(reply, NO_PERMISSION, secrets=(param(sas, "sig"),), leaks=victims.leaks)
    assert_holds_pattern(sas, name)


@pytest.mark.parametrize("target", ["read-only disk", "snapshot"])
def test_a_read_sas_cannot_write_through_the_sdk(victims: Victims, target: str) -> None:
    name, sas = victims.of(target)
    assert_sdk_refused(sas, NO_PERMISSION, SDK_WRITES)
    assert_holds_pattern(sas, name)
    assert_usable(sas, write=False)  # the same SAS still reads


# --- wrong resource ----------------------------------------------------------------------------------
def test_a_sas_on_another_disks_path_is_refused(victims: Victims) -> None:
    # the read-only disk's query on the write-SAS disk's path, and the other way round
    onto_disk = moved(victims.reader_sas, path=path_of(victims.disk_sas))
    onto_reader = moved(victims.disk_sas, path=path_of(victims.reader_sas))
    assert_all_refused(onto_disk, DENIED, leaks=victims.leaks)
    assert_all_refused(onto_reader, DENIED, leaks=victims.leaks)
    assert_untouched(victims)


def test_a_snapshot_sas_on_its_disks_path_and_back_is_refused(arm: Arm, victims: Victims) -> None:
    disk_sas = arm.grant("disks", victims.snap_disk, "Write")
    try:
        onto_disk = moved(victims.snap_sas, path=path_of(disk_sas))
        onto_snapshot = moved(disk_sas, path=path_of(victims.snap_sas))
        assert_all_refused(onto_disk, DENIED, leaks=victims.leaks)
        assert_all_refused(onto_snapshot, DENIED, leaks=victims.leaks)
        assert_holds_pattern(disk_sas, victims.snap_disk)
    finally:
        arm.revoke("disks", victims.snap_disk)
    assert_untouched(victims)


def test_a_sas_of_an_unknown_resource_is_refused(victims: Victims) -> None:
    region, _, blob_name = path_of(victims.disk_sas).strip("/").split("/")
    stranger = f"/{region}/{uuid.uuid4().hex}/{blob_name}"
    assert_all_refused(moved(victims.disk_sas, path=stranger), DENIED, leaks=victims.leaks)


def test_a_sas_on_another_regions_path_is_refused(victims: Victims) -> None:
    """An eastus SAS naming its resource under westus (on westus's port), and a westus SAS
    naming its resource under eastus (on eastus's port): neither region holds the other's."""
    east, west = urlsplit(victims.disk_sas), urlsplit(victims.westus_sas)
    assert east.netloc != west.netloc
    _, east_id, _ = east.path.strip("/").split("/")
    _, west_id, _ = west.path.strip("/").split("/")
    to_west = moved(victims.disk_sas, netloc=west.netloc, path=f"/westus/{east_id}/abcd")
    to_east = moved(victims.westus_sas, netloc=east.netloc, path=f"/eastus/{west_id}/abcd")
    leaks = (*victims.leaks, marker("far"))
    assert_all_refused(to_west, DENIED, leaks=leaks)
    assert_all_refused(to_east, DENIED, leaks=leaks)
    assert_untouched(victims)
    assert_holds_pattern(victims.westus_sas, "far")


def test_a_sas_sent_to_another_regions_port_is_refused_as_storage(victims: Victims) -> None:
    # BUG (kept failing on purpose): an eastus SAS URL sent as it is to westus's port (its
    # path /eastus/... is not under westus's data-plane prefix) is answered by westus's ARM
    # app: 401, an ARM JSON envelope and no x-ms-error-code, where a storage client expects
    # 403 AuthenticationFailed in the page-blob error shape (the SDK sees error_code None).
    # RegionRouter.__call__ (src/snapferry/api/region.py) sends only /<its own region>/ paths
    # to the data plane. Nothing is read or written either way.
    westus = urlsplit(victims.westus_sas).netloc
    assert westus != urlsplit(victims.disk_sas).netloc
    assert_all_refused(moved(victims.disk_sas, netloc=westus), DENIED, leaks=victims.leaks)
    assert_untouched(victims)


def test_a_deleted_and_recreated_disks_old_sas_is_refused(arm: Arm) -> None:
    _, old = arm.disk("phoenix")
    arm.revoke("disks", "phoenix")
    arm.delete("disks", "phoenix")
    arm.compute.disks.begin_create_or_update(GROUP, "phoenix", upload_body()).result()
    new = arm.grant("disks", "phoenix", "Write")
    client = blob(new)
    reborn = pattern("phoenix-reborn", 8192)
    client.upload_page(reborn, offset=0, length=8192)
    assert path_of(new) != path_of(old)
    leaks = (marker("phoenix"), marker("phoenix-reborn"))
    # the old URL as it was, and the old SAS on the new resource's path
    assert_all_refused(old, DENIED, leaks=leaks)
    assert_all_refused(moved(old, path=path_of(new)), DENIED, leaks=leaks)
    assert client.download_blob(offset=0, length=8192).readall() == reborn
    assert client.download_blob(offset=MiB, length=4096).readall() == bytes(4096)


def test_a_deleted_and_recreated_snapshots_old_sas_is_refused(arm: Arm) -> None:
    disk_id, _ = arm.disk("phoenix-source")
    old = arm.snapshot("phoenix-snap", "phoenix-source", disk_id)
    assert_holds_pattern(old, "phoenix-source")
    arm.revoke("snapshots", "phoenix-snap")
    arm.delete("snapshots", "phoenix-snap")
    # the disk changes, and the new snapshot of the same name holds something else
    sas = arm.grant("disks", "phoenix-source", "Write")
    blob(sas).clear_page(offset=0, length=8192)
    arm.revoke("disks", "phoenix-source")
    arm.compute.snapshots.begin_create_or_update(
        GROUP, "phoenix-snap", snapshot_body(disk_id)
    ).result()
    new = arm.grant("snapshots", "phoenix-snap")
    leaks = (marker("phoenix-source"),)
    assert_all_refused(old, DENIED, leaks=leaks)
    assert_all_refused(moved(old, path=path_of(new)), DENIED, leaks=leaks)
    assert blob(new).download_blob(offset=0, length=8192).readall() == bytes(8192)


def test_a_diff_needs_a_valid_sas_of_the_previous_snapshot(arm: Arm) -> None:
    """A diff's ``x-ms-previous-snapshot-url`` is a SAS like any other: tampered, revoked or
    replaced, it gets 409 PreviousSnapshotNotFound and no page list."""
    disk_id, _ = arm.disk("differ")
    older = arm.snapshot("differ-one", "differ", disk_id)
    blob(arm.grant("disks", "differ", "Write")).clear_page(offset=0, length=4096)
    newer = arm.snapshot("differ-two", "differ", disk_id)
    changed, cleared = blob(newer).get_page_range_diff_for_managed_disk(older)
    assert cleared == [{"start": 0, "end": 4095}]
    assert changed == []
    diff = Op("GET", {"comp": "pagelist"}, {"x-ms-previous-snapshot-url": older})
    assert send(newer, diff).status_code == 200
    bad = [TAMPERS[name](older) for name in ("sig changed", "sp changed", "se extended")]
    replacement = arm.grant("snapshots", "differ-one")
    bad += [older, moved(replacement, path=path_of(newer))]  # replaced; on another's path
    for previous in bad:
        with pytest.raises(HttpResponseError) as caught:
            blob(newer).get_page_range_diff_for_managed_disk(previous)
        assert (caught.value.status_code, caught.value.error_code) == (
            409,
            "PreviousSnapshotNotFound",
        )
        reply = send(
            newer, Op("GET", {"comp": "pagelist"}, {"x-ms-previous-snapshot-url": previous})
        )
        assert reply.status_code == 409
        assert reply.headers["x-ms-error-code"] == "PreviousSnapshotNotFound"
        assert ET.fromstring(reply.content).findtext("Code") == "PreviousSnapshotNotFound"
        assert b"PageList" not in reply.content and b"Range" not in reply.content
        assert param(previous, "sig").encode() not in reply.content
    arm.revoke("snapshots", "differ-one")
    with pytest.raises(HttpResponseError) as caught:
        blob(newer).get_page_range_diff_for_managed_disk(replacement)
    assert caught.value.error_code == "PreviousSnapshotNotFound"


# --- revoked and replaced ------------------------------------------------------------------------
def test_a_revoked_disk_sas_is_refused(arm: Arm) -> None:
    _, sas = arm.disk("revoked-disk")
    assert_usable(sas, write=True)
    arm.revoke("disks", "revoked-disk")
    assert_all_refused(sas, DENIED, leaks=(marker("revoked-disk"),))
    assert_holds_pattern(arm.grant("disks", "revoked-disk", "Read"), "revoked-disk")


def test_a_revoked_snapshot_sas_is_refused(arm: Arm) -> None:
    disk_id, _ = arm.disk("revoked-source")
    sas = arm.snapshot("revoked-snap", "revoked-source", disk_id)
    assert_usable(sas, write=False)
    arm.revoke("snapshots", "revoked-snap")
    assert_all_refused(sas, DENIED, leaks=(marker("revoked-source"),))
    assert_holds_pattern(arm.grant("snapshots", "revoked-snap"), "revoked-source")


def test_a_write_sas_replaced_by_a_read_grant_is_refused(arm: Arm) -> None:
    _, old = arm.disk("replaced-disk")
    arm.revoke("disks", "replaced-disk")  # out of the upload state: a Read grant is allowed
    older = arm.grant("disks", "replaced-disk", "Write")
    assert_usable(older, write=True)
    newer = arm.grant("disks", "replaced-disk", "Read")
    assert param(newer, "si") != param(older, "si")
    assert path_of(newer) == path_of(older)
    for stale in (old, older):
        assert_all_refused(stale, DENIED, leaks=(marker("replaced-disk"),))
    assert_usable(newer, write=False)
    assert_holds_pattern(newer, "replaced-disk")


def test_a_snapshot_sas_replaced_by_a_newer_grant_is_refused(arm: Arm) -> None:
    disk_id, _ = arm.disk("replaced-source")
    older = arm.snapshot("replaced-snap", "replaced-source", disk_id)
    newer = arm.grant("snapshots", "replaced-snap")
    assert param(newer, "si") != param(older, "si")
    assert_all_refused(older, DENIED, leaks=(marker("replaced-source"),))
    assert_usable(newer, write=False)
    assert_holds_pattern(newer, "replaced-source")


# --- expired ---------------------------------------------------------------------------------------
MIN_DURATION = 1
"""The shortest grant the service accepts (durationInSeconds >= 1); 0 is refused."""


def test_the_shortest_grant_is_one_second(arm: Arm) -> None:
    arm.disk("brief")
    arm.revoke("disks", "brief")
    with pytest.raises(HttpResponseError) as caught:
        arm.grant("disks", "brief", "Read", duration=MIN_DURATION - 1)
    assert caught.value.status_code == 400
    sas = arm.grant("disks", "brief", "Read", duration=MIN_DURATION)
    expiry = datetime.strptime(param(sas, "se"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert expiry.timestamp() <= time.time() + MIN_DURATION


def expiry_of(sas: str) -> float:
    se = param(sas, "se")
    return datetime.strptime(se, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def test_an_expired_sas_is_refused(arm: Arm) -> None:
    """Grants of 2 s (``se`` is in whole seconds: it is 1 to 2 s away when minted), each used
    while live, then again once its ``se`` has passed."""
    disk_id, _ = arm.disk("expiring-source")
    arm.snapshot("expiring-snap", "expiring-source", disk_id)
    arm.disk("expiring-disk")
    disk_sas = arm.grant("disks", "expiring-disk", "Write", duration=2)
    snap_sas = arm.grant("snapshots", "expiring-snap", duration=2)
    assert_usable(disk_sas, write=True)
    assert_usable(snap_sas, write=False)
    deadline = max(expiry_of(disk_sas), expiry_of(snap_sas))
    assert deadline > time.time(), "the grants were already expired when first used"
    while time.time() <= deadline + 0.05:
        time.sleep(0.05)
    leaks = (marker("expiring-source"), marker("expiring-disk"))
    assert_all_refused(disk_sas, DENIED, leaks=leaks)
    assert_all_refused(snap_sas, DENIED, leaks=leaks)
    assert_holds_pattern(arm.grant("disks", "expiring-disk", "Write"), "expiring-disk")
    assert_holds_pattern(arm.grant("snapshots", "expiring-snap"), "expiring-source")


# --- signatures never reach a log ------------------------------------------------------------------
def raw_request(url: str, lines: list[bytes]) -> bytes:
    """Send bytes as they are (a malformed request too) and return what comes back."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def log_files(data_dir: Path) -> Iterator[Path]:
    """Every log the cloud wrote: its captured output (up.log) and any file named like a log
    or kept in a log directory."""
    for path in data_dir.rglob("*"):
        name = path.name.lower()
        if path.is_file() and (
            name.endswith(".log")
            or ".log." in name
            or any(part.lower() in ("log", "logs") for part in path.relative_to(data_dir).parts)
        ):
            yield path


def test_sas_signatures_never_reach_the_logs(tmp_path: Path) -> None:
    cloud = RunningCloud.start(tmp_path / "cloud")
    try:
        compute = connect(ComputeManagementClient, cloud.cloud, retry_total=0)
        groups = connect(ResourceManagementClient, cloud.cloud, retry_total=0)
        groups.resource_groups.create_or_update(GROUP, {"location": "eastus"})
        arm = Arm(compute)
        disk_id, first = arm.disk("logged")
        snap_one = arm.snapshot("logged-one", "logged", disk_id)
        write = arm.grant("disks", "logged", "Write")
        blob(write).upload_page(OVERWRITE, offset=4096, length=512)
        arm.revoke("disks", "logged")
        snap_two = arm.snapshot("logged-two", "logged", disk_id)
        write = arm.grant("disks", "logged", "Write")
        replaced_sas = arm.grant("disks", "logged", "Write")  # write is now a stale grant
        live = [snap_one, snap_two, replaced_sas]
        urls = [first, write, *live]
        urls += [tamper(url) for url in live for tamper in TAMPERS.values()]
        signatures = {param(url, "sig") for url in urls if "sig=" in url} - {""}
        assert len(signatures) >= 8

        statuses: set[int] = set()
        for url in urls:
            for op in OPS.values():
                statuses.add(send(url, op).status_code)
            for name, call in SDK_OPS.items():
                try:
                    call(blob(url))
                except HttpResponseError as exc:
                    statuses.add(exc.status_code or 0)
                else:
                    statuses.add(201 if name in SDK_WRITES else 200)
        client = blob(snap_two)
        assert client.get_page_range_diff_for_managed_disk(snap_one)[0]
        for previous in (snap_one, TAMPERS["sig changed"](snap_one), "http://[" + snap_one):
            extra = Op("GET", {"comp": "pagelist"}, {"x-ms-previous-snapshot-url": previous})
            statuses.add(send(snap_two, extra).status_code)
        for extra in (
            Op("DELETE", {}, {}),
            Op("GET", {"comp": "snapshot"}, {}),
            Op("GET", {"comp": "pagelist", "maxresults": "0"}, {}),
            Op("GET", {"comp": "pagelist", "maxresults": "\u00b2"}, {}),
            Op("GET", {"comp": "pagelist", "marker": "not-ours"}, {}),
            Op("GET", {}, {"x-ms-range": "bytes=9-1"}),
            Op("GET", {}, {"x-ms-if-sequence-number-eq": "\u00b2"}),
            Op("PUT", {"comp": "page"}, {"x-ms-page-write": "update", "x-ms-range": "bytes=1-2"}),
        ):
            for url in (replaced_sas, snap_two):
                statuses.add(send(url, extra).status_code)
        # A request the HTTP server itself rejects, with a SAS in its request line: it is
        # reported (the canary that proves the output is captured) without its URL.
        target = path_of(snap_two) + "?" + urlsplit(snap_two).query
        answer = raw_request(
            snap_two, [f"GET {target} HTTP/1.1".encode(), b"Host: x", b"Bad Header Line"]
        )
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        assert {200, 201, 206, 403, 400, 416, 501} <= statuses, statuses
    finally:
        try:
            cloud.stop()
        finally:
            cloud.kill()

    logs = {path: path.read_bytes() for path in log_files(cloud.data_dir)}
    assert cloud.data_dir / "up.log" in logs
    everything = b"\n".join(logs.values())
    assert b"Invalid HTTP request received" in everything, "the cloud's output was not captured"
    forms = {"sig=", "sig%3d"}
    for signature in signatures:
        forms |= {signature, quote(signature, safe=""), signature[:24]}
    leaked = sorted(form for form in forms if form.lower().encode() in everything.lower())
    assert not leaked, f"SAS signatures in {sorted(map(str, logs))}: {leaked}"


def test_the_log_scan_reads_every_log_and_only_logs(tmp_path: Path) -> None:
    """What the log test reads: the captured output and anything shaped like a log, not the
    databases (where a grant operation's result keeps its accessSAS, as ARM returns it)."""
    data_dir = tmp_path / "fake"
    (data_dir / "regions" / "logs").mkdir(parents=True)
    for name in ("up.log", "regions/logs/eastus", "regions/engine.log.1", "regions/catalog.db"):
        (data_dir / name).write_text("sig=x\n")
    found = {path.relative_to(data_dir).as_posix() for path in log_files(data_dir)}
    assert found == {"up.log", "regions/logs/eastus", "regions/engine.log.1"}
