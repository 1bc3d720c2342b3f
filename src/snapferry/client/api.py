"""``Client``: resource groups, disks, snapshots and principals of one cloud, as ARM JSON."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal
from urllib.parse import quote

import requests

from snapferry.client.config import Cloud
from snapferry.client.errors import BadRequest
from snapferry.client.transport import ProgressFn, Transport

Resource = dict[str, Any]
"""A resource as the ARM API renders it (``id``, ``name``, ``location``, ``properties``...)."""

Kind = Literal["disks", "snapshots"]
COMPUTE = "providers/Microsoft.Compute"


def disk_body(
    *,
    location: str,
    size_gb: int | None = None,
    sku: str | None = None,
    zone: str | None = None,
    source_id: str | None = None,
    upload_size_bytes: int | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The PUT body of a new disk: a Copy of source_id (a snapshot's or disk's id), an Upload
    target of upload_size_bytes, or else an Empty disk of size_gb (then required). BadRequest
    if source_id and upload_size_bytes are both given or an empty disk has no size."""
    if source_id and upload_size_bytes is not None:
        raise BadRequest("a disk is either copied from a source or uploaded, not both")
    creation: dict[str, Any]
    if source_id:
        creation = {"createOption": "Copy", "sourceResourceId": source_id}
    elif upload_size_bytes is not None:
        creation = {"createOption": "Upload", "uploadSizeBytes": upload_size_bytes}
    elif size_gb is None:
        raise BadRequest("an empty disk needs a size in GiB")
    else:
        creation = {"createOption": "Empty"}
    properties: dict[str, Any] = {"creationData": creation}
    if size_gb is not None:
        properties["diskSizeGB"] = size_gb
    body: dict[str, Any] = {"location": location, "properties": properties}
    if sku:
        body["sku"] = {"name": sku}
    if zone:
        body["zones"] = [zone]
    if tags is not None:
        body["tags"] = dict(tags)
    return body


def snapshot_body(
    *,
    location: str,
    source_id: str,
    incremental: bool = True,
    sku: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The PUT body of a snapshot copying source_id (a disk's or a snapshot's id)."""
    body: dict[str, Any] = {
        "location": location,
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": source_id},
            "incremental": incremental,
        },
    }
    if sku:
        body["sku"] = {"name": sku}
    if tags is not None:
        body["tags"] = dict(tags)
    return body


def copy_start_body(
    *,
    location: str,
    source_id: str,
    full: bool = False,
    enhanced: bool = False,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The PUT body of a snapshot copied from source_id (a snapshot in any region) into
    location with ``CopyStart``: incremental unless ``full``; ``enhanced`` asks for more
    parallel transfers."""
    creation: dict[str, Any] = {"createOption": "CopyStart", "sourceResourceId": source_id}
    if enhanced:
        creation["provisionedBandwidthCopySpeed"] = "Enhanced"
    body: dict[str, Any] = {
        "location": location,
        "properties": {"creationData": creation, "incremental": not full},
    }
    if tags is not None:
        body["tags"] = dict(tags)
    return body


class Resources:
    """The disks or the snapshots of one subscription. Every change waits for its operation to
    end (see ``Transport.wait``); names are the ARM names, ``group`` a resource group."""

    def __init__(self, http: Transport, subscription: str, kind: Kind) -> None:
        self._http = http
        self.subscription = subscription
        self.kind = kind
        self.noun = kind[:-1]

    def id(self, group: str, name: str) -> str:
        """The ARM id of the resource."""
        return f"/subscriptions/{self.subscription}/resourceGroups/{group}/{COMPUTE}/{self.kind}/{name}"

    def _path(self, group: str, name: str, action: str = "") -> str:
        return quote(self.id(group, name) + action, safe="/")

    def create(self, group: str, name: str, body: Mapping[str, Any]) -> Resource:
        """Create the resource (PUT body, see ``disk_body``/``snapshot_body``), wait until it
        is made, and return it. A PUT on an existing resource updates it as ARM does."""
        started = self._http.call("PUT", self._path(group, name), dict(body))
        self._http.wait(started, f"creating {self.noun} {group}/{name}")
        return self.show(group, name)

    def show(self, group: str, name: str) -> Resource:
        """The resource; ResourceMissing if it (or its group) does not exist."""
        return self._http.json("GET", self._path(group, name))

    def list(self, group: str | None = None) -> Iterator[Resource]:
        """Every resource of the group, or of the subscription; all pages, lazily."""
        scope = f"/subscriptions/{self.subscription}"
        if group is not None:
            scope += f"/resourceGroups/{group}"
        return self._http.pages(quote(f"{scope}/{COMPUTE}/{self.kind}", safe="/"))

    def update(
        self,
        group: str,
        name: str,
        *,
        size_gb: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Resource:
        """PATCH the size (disks grow only) and/or replace the tags; return the result."""
        body: dict[str, Any] = {}
        if tags is not None:
            body["tags"] = dict(tags)
        if size_gb is not None:
            body["properties"] = {"diskSizeGB": size_gb}
        started = self._http.call("PATCH", self._path(group, name), body)
        self._http.wait(started, f"updating {self.noun} {group}/{name}")
        return self.show(group, name)

    def delete(self, group: str, name: str) -> bool:
        """Delete and wait. False if there was nothing to delete. A disk's snapshots stay."""
        started = self._http.call("DELETE", self._path(group, name))
        if started.status_code == 204:
            return False
        self._http.wait(started, f"deleting {self.noun} {group}/{name}")
        return True

    def grant_access(
        self,
        group: str,
        name: str,
        access: Literal["Read", "Write"] = "Read",
        duration_seconds: int = 3600,
    ) -> str:
        """A shared access signature URL for the resource's data (a secret: hand it over,
        never log it)."""
        body = {"access": access, "durationInSeconds": duration_seconds}
        started = self._http.call("POST", self._path(group, name, "/beginGetAccess"), body)
        self._http.wait(started, f"granting access to {self.noun} {group}/{name}")
        monitor = started.headers.get("Location")
        if not monitor:
            return _sas_of(started)
        return _sas_of(self._http.call("GET", monitor))

    def revoke_access(self, group: str, name: str) -> None:
        """Revoke every shared access signature of the resource at once."""
        started = self._http.call("POST", self._path(group, name, "/endGetAccess"))
        self._http.wait(started, f"revoking access to {self.noun} {group}/{name}")


def _sas_of(resp: requests.Response) -> str:
    try:
        sas = resp.json().get("accessSAS")
    except (ValueError, AttributeError):
        sas = None
    if not isinstance(sas, str) or not sas:
        raise BadRequest("the server granted access but sent no accessSAS", code="BadResponse")
    return sas


class Client:
    """A cloud's resources, as one principal (the cloud's token) sees them.

    ``disks`` and ``snapshots`` are ``Resources``; groups and principals are methods here.
    Errors are ``snapferry.client.errors.ClientError`` subclasses. Use as a context manager or
    call ``close``.
    """

    def __init__(
        self,
        cloud: Cloud,
        *,
        operation_timeout: float = 600.0,
        progress: ProgressFn | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.cloud = cloud
        self._http = Transport(
            cloud, session=session, operation_timeout=operation_timeout, progress=progress
        )
        self.disks = Resources(self._http, cloud.subscription, "disks")
        self.snapshots = Resources(self._http, cloud.subscription, "snapshots")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- resource groups -----------------------------------------------------------------------
    def _group_path(self, name: str) -> str:
        return quote(f"/subscriptions/{self.cloud.subscription}/resourceGroups/{name}", safe="/")

    def create_group(
        self, name: str, location: str, tags: Mapping[str, str] | None = None
    ) -> Resource:
        """Create the group, or keep it if it exists in that location (BadRequest if it exists
        elsewhere). Safe to repeat."""
        body: dict[str, Any] = {"location": location}
        if tags is not None:
            body["tags"] = dict(tags)
        return self._http.json("PUT", self._group_path(name), body)

    def show_group(self, name: str) -> Resource:
        """The group; ResourceMissing (code ResourceGroupNotFound) if there is none."""
        return self._http.json("GET", self._group_path(name))

    def list_groups(self) -> list[Resource]:
        """Every resource group of the subscription."""
        return list(self._http.pages(self._group_path("").rstrip("/")))

    def delete_group(self, name: str) -> bool:
        """Delete an empty group; False if there was none. ResourceConflict if it still holds
        disks or snapshots (snapferry never deletes data with its group)."""
        started = self._http.call("DELETE", self._group_path(name))
        if started.status_code == 204:
            return False
        self._http.wait(started, f"deleting resource group {name}")
        return True

    # --- any resource --------------------------------------------------------------------------
    def show_by_id(self, resource_id: str) -> Resource:
        """The resource with that full ARM id (``/subscriptions/...``)."""
        if not resource_id.startswith("/subscriptions/"):
            raise BadRequest(f"not a resource id: {resource_id[:200]!r}")
        return self._http.json("GET", quote(resource_id, safe="/"))

    # --- copies between regions ----------------------------------------------------------------
    def copies(self, target: str | None = None) -> list[dict[str, Any]]:
        """Where the copies into every reachable region stand (the subscription's, or the one
        whose target has that id): ``target``, ``region``, ``state``, ``completionPercent``,
        ``bytesTotal``, ``bytesCopied``, ``bytesTransferred``, ``attempts``, ``lastError``,
        ``source``, ``baseSnapshot``, times (epoch seconds)."""
        return self.copies_with_gaps(target)[0]

    def copies_with_gaps(self, target: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """``copies``, and the regions that did not answer (whose copies are missing)."""
        where = f"/snapferry/copies?subscription={quote(self.cloud.subscription, safe='')}"
        if target is not None:
            where += f"&target={quote(target, safe='')}"
        doc = self._http.json("GET", where)
        return list(doc["value"]), [str(r) for r in doc.get("unreachable", [])]

    def copy_events(
        self, target: str, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str, list[str]]:
        """What happened to the copy into target, in order: events (``id``, ``at`` epoch
        seconds, ``kind``, ``message``, ``copyId``, ``details``, ``region``), a cursor to pass as
        ``after`` for only the events since, and the regions that did not answer."""
        where = (
            f"/snapferry/copies/events?subscription={quote(self.cloud.subscription, safe='')}"
            f"&target={quote(target, safe='')}"
        )
        if after:
            where += f"&after={quote(after, safe='')}"
        doc = self._http.json("GET", where)
        return (
            list(doc["value"]),
            str(doc.get("next", "")),
            [str(r) for r in doc.get("unreachable", [])],
        )

    # --- principals (admin token only) ---------------------------------------------------------
    def create_principal(
        self,
        subscription: str,
        role: str,
        name: str | None = None,
        lifetime_seconds: int | None = None,
    ) -> dict[str, Any]:
        """A new principal with role on subscription, and a token for it: ``principalId``,
        ``tenantId``, ``name``, ``subscription``, ``role``, ``token`` (a secret) and
        ``expiresOn`` (epoch seconds). Needs the admin's token (else AccessDenied)."""
        body: dict[str, Any] = {"subscription": subscription, "role": role}
        if name:
            body["name"] = name
        if lifetime_seconds is not None:
            body["lifetimeSeconds"] = lifetime_seconds
        return self._http.json("POST", "/snapferry/principals", body)

    def disable_principal(self, principal_id: str) -> dict[str, Any]:
        """Disable a principal: its tokens stop working at once."""
        path = f"/snapferry/principals/{quote(principal_id, safe='')}/disable"
        return self._http.json("POST", path)
