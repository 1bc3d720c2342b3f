"""Page writes whose bodies arrive slowly, against what happens meanwhile: a grant ended while a
body arrives refuses the write, two writes conditioned on one ETag cannot both land, and
a clear costs what it clears. Also what a restart does to ETags and Last-Modified."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing import arm
from snapferry.testing.cloud import RunningCloud

SIZE = 64 * 1024 * 1024
PAGE = 64 * 1024


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    cloud = RunningCloud.start(tmp_path_factory.mktemp("races"))
    connect(ResourceManagementClient, cloud.cloud).resource_groups.create_or_update(
        "g", {"location": "eastus"}
    )
    try:
        yield cloud
    finally:
        cloud.kill()


def compute_of(running: RunningCloud) -> ComputeManagementClient:
    return connect(ComputeManagementClient, running.cloud)


def upload_disk(compute: ComputeManagementClient, name: str, size: int = SIZE) -> str:
    """A new upload disk and a Write SAS for it."""
    return arm.upload_disk(compute, "g", name, size)


def grant_sas(ops: Any, name: str, grant: Any) -> str:
    sas = ops.begin_grant_access("g", name, grant).result().access_sas
    assert isinstance(sas, str)
    return sas


def read(sas: str, offset: int, length: int) -> bytes:
    resp = requests.get(sas, headers={"x-ms-range": f"bytes={offset}-{offset + length - 1}"})
    assert resp.status_code == 206, resp.text
    return resp.content


class SlowPut:
    """A Put Page whose headers and first body bytes are sent now, the rest on ``finish``."""

    def __init__(self, sas: str, offset: int, data: bytes, extra: dict[str, str] | None = None):
        url = urlsplit(sas)
        self.conn = http.client.HTTPConnection(str(url.hostname), url.port, timeout=30)
        self.conn.putrequest("PUT", f"{url.path}?{url.query}&comp=page")
        headers = {
            "x-ms-range": f"bytes={offset}-{offset + len(data) - 1}",
            "x-ms-page-write": "update",
            "Content-Length": str(len(data)),
            **(extra or {}),
        }
        for name, value in headers.items():
            self.conn.putheader(name, value)
        self.conn.endheaders()
        self.data = data
        self.conn.send(data[:1024])

    def finish(self) -> tuple[int, str]:
        """The answer's status and error code."""
        status, headers = self._answer()
        return status, headers.get("x-ms-error-code") or ""

    def finish_with_etag(self) -> tuple[int, str]:
        """The answer's status and ETag."""
        status, headers = self._answer()
        return status, headers.get("ETag") or ""

    def _answer(self) -> tuple[int, http.client.HTTPMessage]:
        self.conn.send(self.data[1024:])
        resp = self.conn.getresponse()
        resp.read()
        self.conn.close()
        return resp.status, resp.headers


def test_a_write_whose_grant_ends_while_its_body_arrives_is_refused(
    running: RunningCloud,
) -> None:
    compute = compute_of(running)
    sas = upload_disk(compute, "revoked-mid-body")
    slow = SlowPut(sas, 0, b"\x07" * PAGE)
    time.sleep(0.3)  # the request's SAS was checked before its body came
    compute.disks.begin_revoke_access("g", "revoked-mid-body").result()
    assert slow.finish() == (403, "AuthenticationFailed")
    grant: Any = {"access": "Read", "durationInSeconds": 600}
    reader = grant_sas(compute.disks, "revoked-mid-body", grant)
    assert read(reader, 0, PAGE) == bytes(PAGE)


def test_two_writes_conditioned_on_one_etag_cannot_both_land(running: RunningCloud) -> None:
    sas = upload_disk(compute_of(running), "if-match")
    etag = requests.head(sas).headers["ETag"]
    first = SlowPut(sas, 0, b"\x01" * PAGE, {"If-Match": etag})
    second = SlowPut(sas, PAGE, b"\x02" * PAGE, {"If-Match": etag})
    assert first.finish()[0] == 201
    assert second.finish() == (412, "ConditionNotMet")
    assert read(sas, 0, 2 * PAGE) == b"\x01" * PAGE + bytes(PAGE)


def region_bytes(running: RunningCloud) -> int:
    root = running.data_dir / "regions" / "eastus"
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def test_a_clear_costs_what_it_clears_not_the_range(running: RunningCloud) -> None:
    size = 8 * 1024**3
    sas = upload_disk(compute_of(running), "big-clear", size)
    marks = {0: b"\x11", 5 * 1024**3: b"\x22", size - PAGE: b"\x33"}
    for offset, byte in marks.items():
        end = offset + PAGE - 1
        headers = {"x-ms-range": f"bytes={offset}-{end}", "x-ms-page-write": "update"}
        assert requests.put(sas + "&comp=page", data=byte * PAGE, headers=headers).ok
    before = region_bytes(running)
    started = time.monotonic()
    headers = {"x-ms-range": f"bytes=0-{size - 1}", "x-ms-page-write": "clear"}
    resp = requests.put(sas + "&comp=page", headers=headers, timeout=60)
    took = time.monotonic() - started
    assert resp.status_code == 201, resp.text
    for offset in marks:
        assert read(sas, offset, PAGE) == bytes(PAGE)
    assert took < 5, f"clearing 8 GiB holding 192 KiB took {took:.1f} s"
    assert region_bytes(running) - before < 64 * 1024**2


def test_page_list_ranges_must_be_page_aligned_and_head_ignores_ranges(
    running: RunningCloud,
) -> None:
    sas = upload_disk(compute_of(running), "ranges")
    resp = requests.get(sas + "&comp=pagelist", headers={"x-ms-range": "bytes=100-1000"})
    assert resp.status_code == 416
    assert resp.headers["x-ms-error-code"] == "InvalidPageRange"
    resp = requests.head(sas, headers={"x-ms-range": f"bytes={SIZE * 2}-"})
    assert resp.status_code == 200
    assert int(resp.headers["Content-Length"]) == SIZE


def test_a_restart_keeps_snapshot_etags_and_moves_disk_last_modified_forward(
    tmp_path: Path,
) -> None:
    cloud = RunningCloud.start(tmp_path / "cloud")
    try:
        connect(ResourceManagementClient, cloud.cloud).resource_groups.create_or_update(
            "g", {"location": "eastus"}
        )
        compute = connect(ComputeManagementClient, cloud.cloud)
        disk_sas = upload_disk(compute, "d")
        headers = {"x-ms-range": f"bytes=0-{PAGE - 1}", "x-ms-page-write": "update"}
        assert requests.put(disk_sas + "&comp=page", data=b"\x01" * PAGE, headers=headers).ok
        compute.disks.begin_revoke_access("g", "d").result()
        disk_id = compute.disks.get("g", "d").id
        body: Any = {
            "location": "eastus",
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id}},
        }
        compute.snapshots.begin_create_or_update("g", "s", body).result()
        grant: Any = {"access": "Read", "durationInSeconds": 3600}
        snap_sas = grant_sas(compute.snapshots, "s", grant)
        disk_sas = grant_sas(compute.disks, "d", grant)
        snap_etag = requests.head(snap_sas).headers["ETag"]
        written = parsedate_to_datetime(requests.head(disk_sas).headers["Last-Modified"])
        time.sleep(1.1)
        cloud.restart()
        assert requests.head(snap_sas).headers["ETag"] == snap_etag
        after = requests.head(disk_sas)
        assert parsedate_to_datetime(after.headers["Last-Modified"]) > written
        since = {"If-Modified-Since": requests.head(disk_sas).headers["Last-Modified"]}
        assert requests.get(disk_sas, headers=since).status_code == 304
    finally:
        cloud.kill()


def test_a_clear_over_fragmented_data_is_one_durable_write_not_one_per_fragment(
    running: RunningCloud,
) -> None:
    compute = compute_of(running)
    sas = upload_disk(compute, "fragmented", 32 * 1024 * 1024)
    block = (b"\x5a" * 4096 + bytes(4096)) * 512  # every other 4 KiB page holds data
    for offset in range(0, 32 * 1024 * 1024, len(block)):
        end = offset + len(block) - 1
        headers = {"x-ms-range": f"bytes={offset}-{end}", "x-ms-page-write": "update"}
        assert requests.put(sas + "&comp=page", data=block, headers=headers).ok
    compute.disks.begin_revoke_access("g", "fragmented").result()
    disk_id = compute.disks.get("g", "fragmented").id
    body: Any = {
        "location": "eastus",
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id}},
    }
    compute.snapshots.begin_create_or_update("g", "fragmented-snap", body).result()
    # the disk's pages now come from the snapshot: 4,096 separate 4 KiB extents
    grant: Any = {"access": "Write", "durationInSeconds": 600}
    sas = grant_sas(compute.disks, "fragmented", grant)
    listed = requests.get(sas + "&comp=pagelist").text
    assert listed.count("<PageRange>") == 4096
    started = time.monotonic()
    headers = {"x-ms-range": f"bytes=0-{32 * 1024 * 1024 - 1}", "x-ms-page-write": "clear"}
    assert requests.put(sas + "&comp=page", headers=headers, timeout=60).status_code == 201
    took = time.monotonic() - started
    assert read(sas, 0, 1024 * 1024) == bytes(1024 * 1024)
    assert took < 3, f"clearing 4,096 fragments took {took:.1f} s"


def group_metric(running: RunningCloud, name: str) -> float:
    text = requests.get(running.cloud["metrics"]["eastus"], timeout=10).text
    (line,) = [
        x for x in text.splitlines() if x.startswith(f"snapferry_page_write_group_size_{name} ")
    ]
    return float(line.split()[1])


def test_concurrent_writes_into_one_disk_each_land_with_an_etag_of_their_own(
    running: RunningCloud,
) -> None:
    """Put Pages that arrive together share durability barriers (group commit) yet each is
    answered on its own: its own ETag, its own bytes, a stale If-Match refused alone."""
    sas = upload_disk(compute_of(running), "grouped")
    stale = requests.head(sas).headers["ETag"]
    requests.put(  # the ETag moves on: If-Match on the old one is stale from now on
        sas + "&comp=page",
        data=b"\xff" * PAGE,
        headers={"x-ms-range": f"bytes={63 * PAGE}-{64 * PAGE - 1}", "x-ms-page-write": "update"},
    ).raise_for_status()
    writes_before = group_metric(running, "sum")
    puts = [SlowPut(sas, n * PAGE, bytes([n + 1]) * PAGE) for n in range(12)]
    puts.append(SlowPut(sas, 40 * PAGE, b"\x99" * PAGE, {"If-Match": stale}))
    with ThreadPoolExecutor(len(puts)) as pool:
        answers = list(pool.map(SlowPut.finish_with_etag, puts))
    assert [status for status, _ in answers] == [201] * 12 + [412]
    etags = [etag for _, etag in answers[:12]]
    assert len(set(etags)) == 12 and stale not in etags
    assert read(sas, 0, 12 * PAGE) == b"".join(bytes([n + 1]) * PAGE for n in range(12))
    assert read(sas, 40 * PAGE, PAGE) == bytes(PAGE)  # the refused write changed nothing
    # every write that got past the early checks went in a group (the stale one did not)
    assert group_metric(running, "sum") - writes_before == 12
