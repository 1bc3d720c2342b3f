"""Moving disk bytes with the CLI as a user does: real ``snapferry disk import|export`` and
``snapferry snapshot export|diff`` processes against one real cloud (``snapferry up`` in a child
process), with images in files of the test's temporary directory.

Setup that is not under test (groups, disks with known content, snapshots) goes through
``snapferry.client`` in-process, which is faster than a process per step; known changes are
written with raw Put Page requests through a SAS URL the CLI granted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import requests

from snapferry.client import (
    Client,
    ResourceMissing,
    disk_body,
    snapshot_body,
)
from snapferry.client.blobs import SasBlob
from snapferry.testing.cli import json_of, snapferry
from snapferry.testing.cloud import RunningCloud

pytestmark = pytest.mark.slow

MiB = 1024**2
PAGE = 4096  # the engine tracks pages of this size: diffs and page lists are in whole pages
SECTOR = 512
MIN_UPLOAD = 20 * MiB + 512  # the smallest upload disk: smaller images are padded to it
BLOB_VERSION = {"x-ms-version": "2021-08-06"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    running = RunningCloud.start(tmp_path_factory.mktemp("cloud"))
    try:
        yield running
    finally:
        running.kill()


# --- images and disks with known content ---------------------------------------------------------
def write_image(path: Path, size: int, pieces: Mapping[int, bytes]) -> bytes:
    """A sparse file of size bytes holding pieces (offset -> bytes, which may be zeros: those are
    written, so allocated); returns its whole content."""
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in pieces.items():
            os.pwrite(f.fileno(), data, offset)
    content = bytearray(size)
    for offset, data in pieces.items():
        content[offset : offset + len(data)] = data
    return bytes(content)


def nonzero_sector_bytes(content: bytes) -> int:
    """Bytes in the 512-byte sectors of content (zero-padded to whole sectors) that are not all
    zero: what an import must send."""
    padded = content + bytes(-len(content) % SECTOR)
    return sum(SECTOR for at in range(0, len(padded), SECTOR) if any(padded[at : at + SECTOR]))


def allocated_bytes(path: Path) -> int:
    return path.stat().st_blocks * 512


def filled(seed: int, length: int) -> bytes:
    """length bytes with no zero byte, different for each seed."""
    return bytes((seed * 7 + i) % 251 + 1 for i in range(length))


def upload_disk(client: Client, group: str, name: str, writes: Mapping[int, bytes]) -> bytes:
    """A new disk of MIN_UPLOAD bytes holding writes (offset -> bytes, 512-aligned), filled
    in-process through a Write SAS that is then ended; returns its whole content."""
    client.disks.create(group, name, disk_body(location="eastus", upload_size_bytes=MIN_UPLOAD))
    blob = SasBlob(client.disks.grant_access(group, name, "Write", 600))
    content = bytearray(MIN_UPLOAD)
    for offset, data in writes.items():
        blob.write(offset, data)
        content[offset : offset + len(data)] = data
    blob.close()
    client.disks.revoke_access(group, name)
    return bytes(content)


def disk_state(client: Client, group: str, name: str, kind: str = "disks") -> str:
    ops = client.disks if kind == "disks" else client.snapshots
    return str(ops.show(group, name)["properties"]["diskState"])


def names_in(client: Client, group: str) -> list[str]:
    return sorted(d["name"] for d in client.disks.list(group))


def put_page(sas: str, offset: int, data: bytes = b"", *, clear_length: int = 0) -> None:
    """A raw Put Page through a SAS URL: update with data, or clear clear_length bytes."""
    if clear_length:
        length, kind = clear_length, "clear"
    else:
        length, kind = len(data), "update"
    resp = requests.put(
        sas + "&comp=page",
        headers={
            **BLOB_VERSION,
            "x-ms-range": f"bytes={offset}-{offset + length - 1}",
            "x-ms-page-write": kind,
        },
        data=data,
        timeout=30,
    )
    assert resp.status_code == 201, resp.text


# --- import and export of a disk -----------------------------------------------------------------
SPARSE_SIZE = 64 * MiB + 300  # not a multiple of 512
ZEROED_AT = 40 * MiB  # 4 MiB of zeros written to the file: allocated, yet nothing to send


def test_a_sparse_image_is_imported_by_its_data_and_exported_back_sparse(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str, tmp_path: Path
) -> None:
    image, exported = tmp_path / "sparse.img", tmp_path / "exported.img"
    every_other_sector = b"".join(
        (b"\xab" * SECTOR if i % 2 == 0 else bytes(SECTOR)) for i in range(128)
    )
    content = write_image(
        image,
        SPARSE_SIZE,
        {
            0: os.urandom(MiB),
            10 * MiB + 1536: b"hello" * 100_000,  # ends mid-sector
            32 * MiB - 3000: filled(1, 6000),  # across a 4 MiB transfer piece's edge
            ZEROED_AT: bytes(4 * MiB),
            48 * MiB: every_other_sector,
            64 * MiB: b"tail" * 75,  # the last 300 bytes: a partial sector
        },
    )
    with image.open("rb") as f:  # the zeroed region really is data to the file system
        assert os.lseek(f.fileno(), ZEROED_AT, os.SEEK_DATA) == ZEROED_AT
    padded = -(-SPARSE_SIZE // SECTOR) * SECTOR

    imported = json_of(
        snapferry(cloud, env, f"disk import -g {group} -n sparse --file {image} -o json")
    )
    disk = client.disks.show(group, "sparse")
    exported_doc = json_of(
        snapferry(cloud, env, f"disk export -g {group} -n sparse -f {exported} -o json")
    )

    assert imported["id"] == disk["id"] == client.disks.id(group, "sparse")
    assert imported["file"] == str(image)
    assert imported["fileBytes"] == SPARSE_SIZE
    assert imported["diskSizeBytes"] == padded
    # the non-zero sectors travel, and zero runs shorter than 64 KiB between them (one request
    # costs more than sending them); never the holes or the 4 MiB zeroed region
    data_bytes = nonzero_sector_bytes(content)
    assert data_bytes <= imported["sentBytes"] <= data_bytes + 64 * 1024 * 8
    assert disk["properties"]["diskState"] == "Unattached"
    assert disk["properties"]["diskSizeBytes"] == padded
    assert disk["properties"]["creationData"]["createOption"] == "Upload"
    assert exported_doc["id"] == disk["id"]
    assert exported_doc["sizeBytes"] == padded
    assert exported_doc["fetchedBytes"] < 4 * MiB  # the page list's extents only
    assert exported.stat().st_size == padded
    got = exported.read_bytes()
    assert got[:SPARSE_SIZE] == content
    assert not any(got[SPARSE_SIZE:])
    assert allocated_bytes(exported) <= exported_doc["fetchedBytes"] + MiB  # holes stay holes
    assert allocated_bytes(exported) < SPARSE_SIZE // 10
    assert not (tmp_path / "exported.img.partial").exists()
    assert disk_state(client, group, "sparse") == "Unattached"  # no access left behind


def test_a_small_image_is_padded_to_the_smallest_upload_and_round_trips(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str, tmp_path: Path
) -> None:
    image, exported = tmp_path / "small.img", tmp_path / "small.out"
    size = 3 * MiB + 100
    content = write_image(image, size, {0: os.urandom(100 * 1024), size - 100: b"end!" * 25})

    imported = snapferry(
        cloud,
        env,
        f"disk import -g {group} -n small -f {image} --sku Premium_LRS --zone 1 "
        "--tags team=a -l eastus",
    )
    disk = client.disks.show(group, "small")
    exported_proc = snapferry(cloud, env, f"disk export -g {group} -n small -f {exported}")

    assert imported.returncode == 0, imported.stderr
    assert f"imported {image} into disk {group}/small" in imported.stdout
    assert imported.stderr == ""  # no progress bar without a terminal
    assert disk["properties"]["diskSizeBytes"] == MIN_UPLOAD
    assert disk["properties"]["diskState"] == "Unattached"
    assert disk["sku"]["name"] == "Premium_LRS"
    assert disk["zones"] == ["1"]
    assert disk["tags"] == {"team": "a"}
    assert exported_proc.returncode == 0, exported_proc.stderr
    assert f"exported disk {group}/small to {exported}" in exported_proc.stdout
    got = exported.read_bytes()
    assert len(got) == MIN_UPLOAD
    assert got[:size] == content
    assert not any(got[size:])


# --- import refusals and failures ----------------------------------------------------------------
def short_reading_file() -> Path | None:
    """A file whose reads end before the size stat gives (sysfs files claim 4096 bytes and hold
    a line): to an import it is a file that shrank while it was read."""
    for candidate in (
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/kernel/mm/transparent_hugepage/defrag",
        "/sys/devices/system/cpu/online",
        "/sys/kernel/profiling",
    ):
        path = Path(candidate)
        try:
            if path.stat().st_size > len(path.read_bytes()) > 0:
                return path
        except OSError:
            continue
    return None


def test_import_refuses_what_it_cannot_do_and_leaves_no_disk_behind(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str, tmp_path: Path
) -> None:
    client.disks.create(group, "taken", disk_body(location="eastus", size_gb=1, tags={"k": "v"}))
    before = client.disks.show(group, "taken")
    image = tmp_path / "img"
    write_image(image, MiB, {0: b"data" * 1024})
    empty = tmp_path / "empty"
    empty.touch()

    existing = snapferry(cloud, env, f"disk import -g {group} -n taken -f {image}")
    missing = snapferry(cloud, env, f"disk import -g {group} -n m -f {tmp_path / 'nope'} -o json")
    nothing = snapferry(cloud, env, f"disk import -g {group} -n e -f {empty}")
    nowhere = snapferry(cloud, env, f"disk import -g {group} -n l -f {image} -l nowhere")
    no_group = snapferry(cloud, env, f"disk import -g nogroup{group} -n g -f {image}")

    assert existing.returncode == 2
    assert existing.stderr == (
        f"error: disk {group}/taken already exists: import makes a new disk; pick another name "
        "(Conflict)\n"
    )
    assert client.disks.show(group, "taken") == before  # untouched
    assert missing.returncode == 2
    assert json.loads(missing.stdout)["error"]["code"] == "UsageError"
    assert f"cannot read {tmp_path / 'nope'}" in missing.stderr
    assert nothing.returncode == 2
    assert "is empty: there is nothing to import" in nothing.stderr
    assert nowhere.returncode == 2, nowhere.stderr
    assert "location 'nowhere' is not available" in nowhere.stderr
    assert "(LocationNotAvailableForResourceType)" in nowhere.stderr
    assert no_group.returncode == 2
    assert f"resource group nogroup{group} does not exist" in no_group.stderr
    with pytest.raises(ResourceMissing):
        client.show_group(f"nogroup{group}")
    assert names_in(client, group) == ["taken"]


def test_an_import_whose_upload_fails_deletes_the_disk_it_made(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str
) -> None:
    source = short_reading_file()
    if source is None:
        pytest.skip("no file here reads shorter than its size")

    failed = snapferry(cloud, env, f"disk import -g {group} -n broken -f {source} -o json")

    # the file is read only once the upload disk exists and has granted Write: this error
    # comes from a disk that was made, and must have been deleted again
    assert failed.returncode == 2, failed.stderr
    assert json.loads(failed.stdout)["error"]["message"] == (
        f"{source} changed while it was being read"
    )
    assert names_in(client, group) == []


# --- export refusals -----------------------------------------------------------------------------
def test_export_refuses_an_existing_file_and_a_live_access_url(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str, tmp_path: Path
) -> None:
    content = upload_disk(client, group, "d", {0: filled(2, 8192), 5 * MiB + 512: filled(3, 1024)})
    target = tmp_path / "out.img"
    target.write_bytes(b"keep me")
    fresh = tmp_path / "fresh.img"

    sas = json_of(snapferry(cloud, env, f"disk grant-access -g {group} -n d -o json"))["accessSAS"]
    live = snapferry(cloud, env, f"disk export -g {group} -n d -f {fresh}")
    head = requests.head(sas, headers=BLOB_VERSION, timeout=30)
    state_while_live = disk_state(client, group, "d")
    client.disks.revoke_access(group, "d")
    kept = snapferry(cloud, env, f"disk export -g {group} -n d -f {target}")
    kept_bytes = target.read_bytes()
    forced = json_of(
        snapferry(cloud, env, f"disk export -g {group} -n d -f {target} --force -o json")
    )
    nowhere = snapferry(cloud, env, f"disk export -g {group} -n d -f {tmp_path / 'no' / 'dir'}")

    assert live.returncode == 2
    assert f"disk {group}/d already has a live access URL" in live.stderr
    assert "(OperationNotAllowed)" in live.stderr
    assert not fresh.exists()
    assert head.status_code == 200  # the holder's SAS was not replaced
    assert int(head.headers["Content-Length"]) == MIN_UPLOAD
    assert state_while_live == "ActiveSAS"
    assert kept.returncode == 2
    assert "pass --force to replace it" in kept.stderr
    assert kept_bytes == b"keep me"
    assert forced["sizeBytes"] == MIN_UPLOAD
    assert target.read_bytes() == content
    assert nowhere.returncode == 4  # an I/O failure, after access was granted
    assert disk_state(client, group, "d") == "Unattached"  # ...and ended


# --- snapshots -----------------------------------------------------------------------------------
def test_snapshot_export_gives_the_disk_as_it_was_when_snapshotted(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str, tmp_path: Path
) -> None:
    then = upload_disk(client, group, "d", {0: filled(4, 3 * PAGE), 8 * MiB: filled(5, 2 * PAGE)})
    disk_id = client.disks.id(group, "d")
    client.snapshots.create(group, "s1", snapshot_body(location="eastus", source_id=disk_id))
    blob = SasBlob(client.disks.grant_access(group, "d", "Write", 600))
    blob.write(PAGE, filled(6, PAGE))
    blob.clear(8 * MiB, PAGE)
    blob.write(12 * MiB, filled(7, PAGE))
    disk_now = blob.read(0, MIN_UPLOAD)
    blob.close()
    client.disks.revoke_access(group, "d")
    out = tmp_path / "s1.img"

    doc = json_of(snapferry(cloud, env, f"snapshot export -g {group} -n s1 -f {out} -o json"))

    assert client.snapshots.show(group, "s1")["properties"]["incremental"] is True
    assert disk_now != then  # the disk did change since
    assert doc["id"] == client.snapshots.id(group, "s1")
    assert doc["sizeBytes"] == MIN_UPLOAD
    assert out.read_bytes() == then
    assert disk_state(client, group, "s1", "snapshots") != "ActiveSAS"


def test_snapshot_diff_lists_the_exact_changed_and_cleared_pages(
    cloud: RunningCloud, env: dict[str, str], client: Client, group: str
) -> None:
    upload_disk(
        client,
        group,
        "d",
        {
            10 * PAGE: filled(8, 4 * PAGE),
            20 * PAGE: filled(9, PAGE),
            30 * PAGE: filled(10, 3 * PAGE),
        }
        | {40 * PAGE: filled(11, PAGE)},
    )
    disk_id = client.disks.id(group, "d")
    s1 = client.snapshots.create(group, "s1", snapshot_body(location="eastus", source_id=disk_id))
    upload_disk(client, group, "other", {0: filled(12, PAGE)})
    client.snapshots.create(
        group, "t1", snapshot_body(location="eastus", source_id=client.disks.id(group, "other"))
    )

    sas = json_of(
        snapferry(cloud, env, f"disk grant-access -g {group} -n d --access Write -o json")
    )["accessSAS"]
    put_page(sas, 100 * PAGE + 1024, filled(13, SECTOR))  # 512 bytes: its whole page changed
    put_page(sas, 201 * PAGE - SECTOR, filled(14, 2 * SECTOR))  # across pages 200 and 201
    put_page(sas, 11 * PAGE, filled(15, PAGE))  # one page of four rewritten
    put_page(sas, 33 * PAGE, filled(16, PAGE))  # next to pages cleared below
    put_page(sas, 20 * PAGE, clear_length=PAGE)  # a page with data, zero afterwards
    put_page(sas, 30 * PAGE, clear_length=3 * PAGE)  # three pages with data, zero afterwards
    put_page(sas, 40 * PAGE + SECTOR, clear_length=SECTOR)  # part of a page: data remains
    client.disks.revoke_access(group, "d")
    s2 = client.snapshots.create(group, "s2", snapshot_body(location="eastus", source_id=disk_id))

    diff = json_of(snapferry(cloud, env, f"snapshot diff -g {group} {s1['id']} s2 -o json"))
    table = snapferry(cloud, env, f"snapshot diff -g {group} s1 s2")
    reversed_ = snapferry(cloud, env, f"snapshot diff -g {group} s2 s1 -o json")
    unrelated = snapferry(cloud, env, f"snapshot diff -g {group} s1 t1")

    changed = [[11 * PAGE, PAGE], [33 * PAGE, PAGE], [40 * PAGE, PAGE], [100 * PAGE, PAGE]]
    changed.append([200 * PAGE, 2 * PAGE])
    cleared = [[20 * PAGE, PAGE], [30 * PAGE, 3 * PAGE]]
    assert diff == {
        "base": s1["id"],
        "target": s2["id"],
        "changed": changed,
        "cleared": cleared,
        "changedBytes": 6 * PAGE,
        "clearedBytes": 4 * PAGE,
    }
    assert table.returncode == 0, table.stderr
    assert (
        "s1 -> s2: 24.0 KiB (24,576 B) changed in 5 extents, "
        "16.0 KiB (16,384 B) cleared in 2 extents"
    ) in table.stdout
    assert f"{200 * PAGE}" in table.stdout
    assert table.stdout.count("cleared") == 3  # two rows and the summary
    assert reversed_.returncode == 2
    assert json.loads(reversed_.stdout) == {
        "error": {
            "code": "PreviousSnapshotCannotBeNewer",
            "message": "s2 is newer than s1: give the older snapshot first",
        }
    }
    assert "give the older snapshot first" in reversed_.stderr
    assert unrelated.returncode == 2
    assert "s1 and t1 are not snapshots of the same disk" in unrelated.stderr
    for name in ("s1", "s2", "t1"):  # every access the diffs granted was ended
        assert disk_state(client, group, name, "snapshots") != "ActiveSAS"
