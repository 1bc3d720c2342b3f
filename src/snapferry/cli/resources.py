"""``snapferry disk ...`` and ``snapferry snapshot ...``: a running cloud's disks and snapshots,
in the manner of ``az disk`` and ``az snapshot``.

Each command resolves the cloud (see ``remote``), makes its calls through ``snapferry.client``
(changes wait for their operation to end) and prints the ARM resource: as tables, or with
``--output json`` as the resource itself (a list as ``{"value": [...]}``). A resource group is
never created implicitly: a missing one is an error saying how to create it.
"""

from __future__ import annotations

from typing import Any

import click

from snapferry.cli import output as out
from snapferry.cli import views
from snapferry.cli.remote import GROUP, NAME, TAGS, YES, Remote, confirm, remote_command
from snapferry.client import Client, ResourceMissing, Resources, disk_body, snapshot_body

LOCATION = click.option(
    "--location", "-l", help="Region. [default: the source's, else the cloud's first region]"
)


@click.group("disk")
def disk_command() -> None:
    """Managed disks: create (empty, from a snapshot, or for upload), show, list, update,
    delete, grant and revoke access, import and export raw images."""


@click.group("snapshot")
def snapshot_command() -> None:
    """Snapshots of disks (incremental unless --full): create, show, list, delete, grant and
    revoke access, export, and exact diffs between two snapshots."""


# --- disk create / update ----------------------------------------------------------------------
@disk_command.command("create")
@remote_command()
@GROUP
@NAME
@click.option("--size-gb", type=click.IntRange(min=1), help="Size in GiB (needed if empty).")
@LOCATION
@click.option("--sku", help="Storage SKU, e.g. Standard_LRS, Premium_LRS, Premium_ZRS.")
@click.option("--zone", help="Availability zone, e.g. 1.")
@click.option(
    "--source",
    metavar="SNAPSHOT",
    help="Copy this snapshot: a name in the same resource group or a full resource id.",
)
@click.option(
    "--upload-size-bytes",
    type=click.IntRange(min=1),
    help="Create an empty disk to upload this many bytes to (the VHD size, footer included).",
)
@TAGS
def disk_create(
    remote: Remote,
    group: str,
    name: str,
    size_gb: int | None,
    location: str | None,
    sku: str | None,
    zone: str | None,
    source: str | None,
    upload_size_bytes: int | None,
    tags: dict[str, str] | None,
) -> None:
    """Create a disk (empty, a copy of a snapshot, or awaiting an upload) and wait until it
    is ready."""
    if source and upload_size_bytes is not None:
        raise click.UsageError("--source and --upload-size-bytes exclude each other")
    if not source and upload_size_bytes is None and size_gb is None:
        raise click.UsageError("an empty disk needs --size-gb")
    with remote.client(group, location) as client:
        source_id = None
        if source:
            found = named_or_by_id(client, group, source, (client.snapshots,))
            source_id, location = found["id"], location or found.get("location")
        body = disk_body(
            location=location or remote.cloud.default_location,
            size_gb=size_gb,
            sku=sku,
            zone=zone,
            source_id=source_id,
            upload_size_bytes=upload_size_bytes,
            tags=tags,
        )
        disk = client.disks.create(group, name, body)
    out.emit(remote.output, disk, lambda: views.resource(disk))


@disk_command.command("update")
@remote_command()
@GROUP
@NAME
@click.option("--size-gb", type=click.IntRange(min=1), help="New size in GiB (disks only grow).")
@TAGS
def disk_update(
    remote: Remote, group: str, name: str, size_gb: int | None, tags: dict[str, str] | None
) -> None:
    """Grow a disk and/or replace its tags."""
    if size_gb is None and tags is None:
        raise click.UsageError("nothing to update: pass --size-gb and/or --tags")
    with remote.client(group) as client:
        disk = client.disks.update(group, name, size_gb=size_gb, tags=tags)
    out.emit(remote.output, disk, lambda: views.resource(disk))


# --- snapshot create ---------------------------------------------------------------------------
@snapshot_command.command("create")
@remote_command()
@GROUP
@NAME
@click.option(
    "--source",
    required=True,
    metavar="DISK_OR_SNAPSHOT",
    help="What to snapshot: a disk or snapshot name in the same resource group, or a full id.",
)
@click.option("--full", is_flag=True, help="A full snapshot instead of an incremental one.")
@LOCATION
@TAGS
def snapshot_create(
    remote: Remote,
    group: str,
    name: str,
    source: str,
    full: bool,
    location: str | None,
    tags: dict[str, str] | None,
) -> None:
    """Snapshot a disk (or copy a snapshot) and wait until it is ready."""
    with remote.client(group, location) as client:
        found = named_or_by_id(client, group, source, (client.disks, client.snapshots))
        body = snapshot_body(
            location=location or found.get("location") or remote.cloud.default_location,
            source_id=found["id"],
            incremental=not full,
            tags=tags,
        )
        snapshot = client.snapshots.create(group, name, body)
    out.emit(remote.output, snapshot, lambda: views.resource(snapshot))


def named_or_by_id(
    client: Client, group: str, source: str, kinds: tuple[Resources, ...]
) -> dict[str, Any]:
    """The source resource: by full id, else the first of kinds with that name in group.
    ResourceMissing naming every kind looked in if none has it."""
    if source.startswith("/"):
        return client.show_by_id(source)
    for kind in kinds:
        try:
            return kind.show(group, source)
        except ResourceMissing as exc:
            if exc.code == "ResourceGroupNotFound":
                raise
    nouns = " or ".join(kind.noun for kind in kinds)
    raise ResourceMissing(
        f"no {nouns} named {source!r} in resource group {group}", code="ResourceNotFound"
    )


# --- what disks and snapshots share ------------------------------------------------------------
def _ops(client: Client, kind: str) -> Resources:
    return client.disks if kind == "disks" else client.snapshots


def _add_common(parent: click.Group, kind: str) -> None:
    """show, list, delete, grant-access and revoke-access for kind ("disks"/"snapshots")."""
    noun = kind[:-1]

    @parent.command("show")
    @remote_command()
    @GROUP
    @NAME
    def show(remote: Remote, group: str, name: str) -> None:
        with remote.client(group) as client:
            found = _ops(client, kind).show(group, name)
        out.emit(remote.output, found, lambda: views.resource(found))

    show.help = f"Show one {noun}."

    @parent.command("list")
    @remote_command()
    @click.option("--resource-group", "-g", "group", help="Only this resource group's.")
    def list_(remote: Remote, group: str | None) -> None:
        with remote.client(group) as client:
            found = list(_ops(client, kind).list(group))
        out.emit(remote.output, {"value": found}, lambda: [views.listing(kind, found, group)])

    list_.help = f"List the {kind} of a resource group, or of the whole subscription."

    @parent.command("delete")
    @remote_command()
    @GROUP
    @NAME
    @YES
    def delete(remote: Remote, group: str, name: str, yes: bool) -> None:
        confirm(f"delete {noun} {group}/{name}", yes)
        with remote.client(group) as client:
            ops = _ops(client, kind)
            deleted = ops.delete(group, name)
            rid = ops.id(group, name)
        doc = {"id": rid, "deleted": deleted}
        say = f"deleted {noun} {group}/{name}" if deleted else f"no {noun} {group}/{name} to delete"
        out.emit(remote.output, doc, lambda: [out.line(say)])

    delete.help = f"Delete a {noun} and wait until it is gone. Deleting a missing one is no error."
    _add_access(parent, kind)


def _add_access(parent: click.Group, kind: str) -> None:
    noun = kind[:-1]
    accesses = ["Read", "Write"] if kind == "disks" else ["Read"]

    @parent.command("grant-access")
    @remote_command()
    @GROUP
    @NAME
    @click.option("--access", type=click.Choice(accesses), default="Read", show_default=True)
    @click.option(
        "--duration-in-seconds", type=click.IntRange(min=1), default=3600, show_default=True
    )
    def grant(remote: Remote, group: str, name: str, access: Any, duration_in_seconds: int) -> None:
        with remote.client(group) as client:
            sas = _ops(client, kind).grant_access(group, name, access, duration_in_seconds)
        if remote.output == "json":
            out.write_json({"accessSAS": sas})
        else:
            click.echo(sas)  # unwrapped, so that it copies whole

    grant.help = f"Print a URL (a secret) to read{'/write' * (kind == 'disks')} the {noun}'s data."

    @parent.command("revoke-access")
    @remote_command()
    @GROUP
    @NAME
    def revoke(remote: Remote, group: str, name: str) -> None:
        with remote.client(group) as client:
            ops = _ops(client, kind)
            ops.revoke_access(group, name)
            rid = ops.id(group, name)
        doc = {"id": rid, "accessRevoked": True}
        out.emit(remote.output, doc, lambda: [out.line(f"revoked access to {group}/{name}")])

    revoke.help = f"Revoke every access URL of the {noun} at once."


_add_common(disk_command, "disks")
_add_common(snapshot_command, "snapshots")
