"""``snapferry disk import|export``, ``snapferry snapshot export|diff``: moving a disk's bytes
through its access URL, as a customer would with the page-blob API.

Each command grants itself access, does its work with several connections, and ends the access
it granted, also when it fails. It refuses a resource that already has a live access URL rather
than replace that URL under whoever holds it. Progress shows as a bar on stderr when stderr is a
terminal.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import click

from snapferry.cli import output as out
from snapferry.cli.remote import GROUP, NAME, TAGS, Remote, remote_command
from snapferry.cli.resources import LOCATION, named_or_by_id
from snapferry.client import (
    BadRequest,
    Client,
    ClientError,
    ResourceConflict,
    ResourceMissing,
    Resources,
    disk_body,
)
from snapferry.client.blobs import SECTOR, SasBlob, download_file, upload_file

MIN_UPLOAD_BYTES = 20 * 1024**2 + 512
"""The smallest upload disk the ARM API makes (as Azure's); smaller images are zero-padded."""
ACCESS_SECONDS = 24 * 3600
"""How long the access a transfer grants itself lasts (it is ended as soon as it is done)."""
LIVE_STATES = ("ActiveSAS", "ActiveUpload")

FILE = click.option(
    "--file",
    "-f",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The raw disk image.",
)


@contextmanager
def _counting(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """An incremental byte counter feeding a progress bar on stderr (when it is a terminal)."""
    done = 0
    lock = threading.Lock()
    with out.progress_bar(description, sys.stderr.isatty()) as bar:

        def advance(n: int) -> None:
            nonlocal done
            with lock:
                done += n
                if bar is not None:
                    bar(done, total)

        yield advance


@contextmanager
def _access(ops: Resources, group: str, name: str, access: Any) -> Iterator[SasBlob]:
    """A SAS for the resource, ended when the block ends (however it ends)."""
    found = ops.show(group, name)
    if found.get("properties", {}).get("diskState") in LIVE_STATES:
        raise ResourceConflict(
            f"{ops.noun} {group}/{name} already has a live access URL; end it with "
            f"`snapferry {ops.noun} revoke-access -g {group} -n {name}` (or let it expire) first",
            code="OperationNotAllowed",
        )
    blob = SasBlob(ops.grant_access(group, name, access, ACCESS_SECONDS))
    try:
        yield blob
    finally:
        blob.close()
        ops.revoke_access(group, name)


def _report(remote: Remote, doc: dict[str, Any], say: str) -> None:
    out.emit(remote.output, doc, lambda: [out.line(say)])


def _rate(n: int, seconds: float) -> str:
    return f"{n / max(seconds, 1e-9) / 1e6:,.0f} MB/s"


# --- import ------------------------------------------------------------------------------------
@click.command("import")
@remote_command()
@GROUP
@NAME
@FILE
@LOCATION
@click.option("--sku", help="Storage SKU, e.g. Standard_LRS, Premium_LRS, Premium_ZRS.")
@click.option("--zone", help="Availability zone, e.g. 1.")
@TAGS
def disk_import(
    remote: Remote,
    group: str,
    name: str,
    path: Path,
    location: str | None,
    sku: str | None,
    zone: str | None,
    tags: dict[str, str] | None,
) -> None:
    """Make a new disk holding a raw image file: an upload disk, filled through its access
    URL with the file's non-zero sectors only (holes and zero runs are skipped), then ready.
    A file whose size is not a multiple of 512 bytes, or that is smaller than the smallest
    upload (20 MiB + 512 bytes), reads as zeros past its end. On failure the new disk is
    deleted."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror}") from None
    if size == 0:
        raise click.UsageError(f"{path} is empty: there is nothing to import")
    upload_size = max(-(-size // SECTOR) * SECTOR, MIN_UPLOAD_BYTES)
    with remote.client(group, location) as client:
        _refuse_existing(client, group, name)
        body = disk_body(
            location=location or remote.cloud.default_location,
            sku=sku,
            zone=zone,
            upload_size_bytes=upload_size,
            tags=tags,
        )
        client.disks.create(group, name, body)
        started = time.monotonic()
        try:
            with (
                _access(client.disks, group, name, "Write") as blob,
                _counting(f"importing {path.name}", size) as progress,
            ):
                sent = upload_file(blob, path, progress=progress)
        except BaseException:
            with suppress(Exception):
                client.disks.delete(group, name)
            raise
        seconds = time.monotonic() - started
        disk = client.disks.show(group, name)
    doc = {
        "id": disk["id"],
        "file": str(path),
        "fileBytes": size,
        "diskSizeBytes": upload_size,
        "sentBytes": sent,
        "seconds": round(seconds, 3),
    }
    _report(
        remote,
        doc,
        f"imported {path} into disk {group}/{name}: {out.size(size)}, {out.size(sent)} sent "
        f"(the rest is zeros) in {seconds:.1f} s, {_rate(size, seconds)}",
    )


def _refuse_existing(client: Client, group: str, name: str) -> None:
    try:
        client.disks.show(group, name)
    except ResourceMissing as exc:
        if exc.code == "ResourceGroupNotFound":
            raise
        return
    raise ResourceConflict(
        f"disk {group}/{name} already exists: import makes a new disk; pick another name",
        code="Conflict",
    )


# --- export ------------------------------------------------------------------------------------
def _export_command(kind: str) -> click.Command:
    noun = kind[:-1]

    @click.command("export")
    @remote_command()
    @GROUP
    @NAME
    @FILE
    @click.option("--force", is_flag=True, help="Replace the file if it exists.")
    def export(remote: Remote, group: str, name: str, path: Path, force: bool) -> None:
        if path.exists() and not force:
            raise click.UsageError(f"{path} exists: pass --force to replace it")
        partial = path.with_name(path.name + ".partial")
        started = time.monotonic()
        with remote.client(group) as client:
            ops = client.disks if kind == "disks" else client.snapshots
            with _access(ops, group, name, "Read") as blob:
                size = blob.size()
                extents = blob.page_ranges().pages
                try:
                    with _counting(f"exporting {noun} {name}", size) as progress:
                        fetched = download_file(blob, partial, size, extents, progress=progress)
                    os.replace(partial, path)
                finally:
                    with suppress(FileNotFoundError):
                        partial.unlink()
            rid = ops.id(group, name)
        seconds = time.monotonic() - started
        doc = {
            "id": rid,
            "file": str(path),
            "sizeBytes": size,
            "fetchedBytes": fetched,
            "seconds": round(seconds, 3),
        }
        _report(
            remote,
            doc,
            f"exported {noun} {group}/{name} to {path}: {out.size(size)}, {out.size(fetched)} "
            f"fetched (the rest is zeros, left as holes) in {seconds:.1f} s, "
            f"{_rate(size, seconds)}",
        )

    export.help = (
        f"Write the {noun}'s bytes to a raw image file (sparse: unwritten pages become holes)."
    )
    return export


# --- diff --------------------------------------------------------------------------------------
@click.command("diff")
@remote_command()
@GROUP
@click.argument("older")
@click.argument("newer")
def snapshot_diff(remote: Remote, group: str, older: str, newer: str) -> None:
    """The pages that differ between two snapshots of one disk (names in the resource group,
    or full ids), exactly, from metadata alone: changed extents (non-zero in NEWER) and cleared
    extents (zero in NEWER)."""
    with remote.client(group) as client:
        base = named_or_by_id(client, group, older, (client.snapshots,))
        target = named_or_by_id(client, group, newer, (client.snapshots,))
        target_group = target["id"].split("/")[4]
        with _access(client.snapshots, target_group, target["name"], "Read") as blob:
            try:
                diff = blob.page_ranges(previous_id=base["properties"]["uniqueId"])
            except ClientError as exc:
                raise _diff_error(exc, older, newer) from None
    doc = {
        "base": base["id"],
        "target": target["id"],
        "changed": [list(e) for e in diff.pages],
        "cleared": [list(e) for e in diff.clears],
        "changedBytes": diff.page_bytes,
        "clearedBytes": diff.clear_bytes,
    }
    out.emit(remote.output, doc, lambda: _diff_view(base["name"], target["name"], diff))


def _extents(ranges: list[tuple[int, int]]) -> str:
    return f"{len(ranges)} extent" + "s" * (len(ranges) != 1)


def _diff_error(exc: ClientError, older: str, newer: str) -> ClientError:
    """The server's refusal of a diff, said in the command's terms."""
    if exc.code == "PreviousSnapshotCannotBeNewer":
        return BadRequest(
            f"{older} is newer than {newer}: give the older snapshot first", code=exc.code
        )
    if exc.code in ("PreviousSnapshotNotFound", "PreviousSnapshotOperationNotSupported"):
        return BadRequest(
            f"{older} and {newer} are not snapshots of the same disk: no diff joins them",
            code=exc.code,
        )
    return exc


def _diff_view(older: str, newer: str, diff: Any) -> list[Any]:
    rows = [(str(o), str(n), "changed") for o, n in diff.pages]
    rows += [(str(o), str(n), "cleared") for o, n in diff.clears]
    rows.sort(key=lambda r: int(r[0]))
    summary = out.line(
        f"{older} -> {newer}: {out.size(diff.page_bytes)} changed in {_extents(diff.pages)}, "
        f"{out.size(diff.clear_bytes)} cleared in {_extents(diff.clears)}"
    )
    if not rows:
        return [summary]
    return [out.grid_table("pages", ("offset", "length", "kind"), rows), summary]


disk_export = _export_command("disks")
snapshot_export = _export_command("snapshots")
