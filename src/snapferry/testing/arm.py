"""Plain HTTP helpers for ARM tests: what the SDK cannot send (bad input, odd paths) and
principals made through the admin API."""

from __future__ import annotations

from typing import Any

import requests


class Raw:
    """Plain HTTP to the front door, for what the SDK cannot send (bad input, odd paths)."""

    def __init__(self, cloud: dict[str, Any], token: str | None = None) -> None:
        self.base = cloud["endpoint"]
        self.sub = cloud["subscription"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or cloud['token']}"

    def __call__(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=30, **kw)

    def rg_path(self, group: str, sub: str | None = None) -> str:
        return f"/subscriptions/{sub or self.sub}/resourceGroups/{group}"

    def item(self, group: str, rtype: str, name: str, sub: str | None = None) -> str:
        return f"{self.rg_path(group, sub)}/providers/Microsoft.Compute/{rtype}/{name}"


def make_principal(cloud: dict[str, Any], subscription: str, role: str) -> str:
    """A new principal's token (through the admin API)."""
    return new_principal(cloud, subscription, role)[1]


def new_principal(cloud: dict[str, Any], subscription: str, role: str) -> tuple[str, str]:
    """A new principal's id and token (through the admin API)."""
    reply = requests.post(
        cloud["endpoint"] + "/snapferry/principals",
        json={"subscription": subscription, "role": role},
        headers={"Authorization": f"Bearer {cloud['token']}"},
        timeout=30,
    )
    reply.raise_for_status()
    doc = reply.json()
    return str(doc["principalId"]), str(doc["token"])


def cloud_as(cloud: dict[str, Any], token: str, subscription: str) -> dict[str, Any]:
    return {**cloud, "token": token, "subscription": subscription}


def set_role(cloud: dict[str, Any], principal_id: str, subscription: str, role: str) -> None:
    """Give a principal a role on another subscription (through the admin API)."""
    reply = requests.put(
        f"{cloud['endpoint']}/snapferry/principals/{principal_id}/roles/{subscription}",
        json={"role": role},
        headers={"Authorization": f"Bearer {cloud['token']}"},
        timeout=30,
    )
    reply.raise_for_status()


def upload_disk(compute: Any, group: str, name: str, size: int, location: str = "eastus") -> str:
    """A new ``Upload`` disk of size bytes made through ``compute`` (an azure-mgmt-compute
    client), granted Write: its SAS URL."""
    body = {
        "location": location,
        "properties": {"creationData": {"createOption": "Upload", "uploadSizeBytes": size}},
    }
    compute.disks.begin_create_or_update(group, name, body).result()
    grant = {"access": "Write", "durationInSeconds": 3600}
    return str(compute.disks.begin_grant_access(group, name, grant).result().access_sas)


def snapshot_body(source_id: str, location: str = "eastus") -> dict[str, Any]:
    """The PUT body of a snapshot copying ``source_id`` (a disk or a full snapshot)."""
    return {
        "location": location,
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": source_id}},
    }


def write_pages(compute: Any, group: str, disk: str, offset: int, data: bytes) -> None:
    """Write data at offset into a disk through a Write SAS granted and revoked around it, as
    a customer does."""
    grant = {"access": "Write", "durationInSeconds": 600}
    sas = compute.disks.begin_grant_access(group, disk, grant).result().access_sas
    headers = {
        "x-ms-range": f"bytes={offset}-{offset + len(data) - 1}",
        "x-ms-page-write": "update",
    }
    requests.put(sas + "&comp=page", data=data, headers=headers, timeout=60).raise_for_status()
    compute.disks.begin_revoke_access(group, disk).result()


def disk_and_snapshot(compute: Any, group: str, data: bytes, location: str = "eastus") -> None:
    """Disk ``d`` (1 GiB, Empty) holding data at offset 0, written through a Write SAS, and
    snapshot ``s`` of it."""
    body = {
        "location": location,
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
    }
    disk = compute.disks.begin_create_or_update(group, "d", body).result()
    write_pages(compute, group, "d", 0, data)
    snapshot = snapshot_body(disk.id, location)
    compute.snapshots.begin_create_or_update(group, "s", snapshot).result()
