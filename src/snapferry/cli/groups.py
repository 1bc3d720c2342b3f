"""``snapferry group ...``: resource groups of a running cloud (create, show, list, delete).

A group belongs to no region; its location is where its resources go by default. Deleting a
group that still holds disks or snapshots is refused: snapferry never deletes data with its group.
"""

from __future__ import annotations

import click

from snapferry.cli import output as out
from snapferry.cli import views
from snapferry.cli.remote import GROUP, TAGS, YES, Remote, confirm, remote_command


@click.group("group")
def group_command() -> None:
    """Resource groups: create, show, list, delete."""


@group_command.command("create")
@remote_command()
@GROUP
@click.option("--location", "-l", required=True, help="Region, e.g. eastus.")
@TAGS
def group_create(remote: Remote, group: str, location: str, tags: dict[str, str] | None) -> None:
    """Create a resource group (keeping it if it exists in that location)."""
    with remote.client() as client:
        made = client.create_group(group, location, tags)
    out.emit(remote.output, made, lambda: [views.group(made)])


@group_command.command("show")
@remote_command()
@GROUP
def group_show(remote: Remote, group: str) -> None:
    """Show one resource group."""
    with remote.client(group) as client:
        found = client.show_group(group)
    out.emit(remote.output, found, lambda: [views.group(found)])


@group_command.command("list")
@remote_command()
def group_list(remote: Remote) -> None:
    """List the subscription's resource groups."""
    with remote.client() as client:
        found = client.list_groups()
    out.emit(remote.output, {"value": found}, lambda: [views.groups(found)])


@group_command.command("delete")
@remote_command()
@GROUP
@YES
def group_delete(remote: Remote, group: str, yes: bool) -> None:
    """Delete an empty resource group. Deleting a missing one is no error."""
    confirm(f"delete resource group {group}", yes)
    with remote.client() as client:
        deleted = client.delete_group(group)
    doc = {"name": group, "deleted": deleted}
    say = f"deleted resource group {group}" if deleted else f"no resource group {group} to delete"
    out.emit(remote.output, doc, lambda: [out.line(say)])
