"""What a PUT that creates a disk or snapshot means: validated completely up front, then one
cheap engine call made before the PUT is answered, then (for a snapshot of a disk) its seal in
the background.

``plan_disk`` and ``plan_snapshot`` check everything that can be checked before anything is
created (sizes, skus against the region's zones, the source) and return a ``Plan``: the new
record's body and the engine call that makes its data. Every such call is metadata-only (a new
disk, a copy-on-write restore, a copy of a full snapshot's map, or the freeze that fixes a
snapshot's point in time at the request); only sealing a frozen snapshot's pages takes time,
and it is ``Made.finish``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snapferry.control.errors import InvalidParameter, OperationNotAllowed, ResourceNotFound
from snapferry.control.ids import ResourceId
from snapferry.control.models import CreationData, DiskBody, SnapshotBody, _CommonProperties
from snapferry.engine import Engine
from snapferry.meta.records import Record
from snapferry.settings import MAX_DISK_BYTES, SECTOR

GiB = 1024**3
MIN_UPLOAD_BYTES = 20 * 1024**2 + 512
DISK_OPTIONS = ("Empty", "Copy", "Upload")
SNAPSHOT_OPTIONS = ("Copy",)


@dataclass(frozen=True)
class Region:
    """What a region is: its name, its zones (none: LRS only) and list page size."""

    name: str
    zones: tuple[str, ...] = ()
    page_size: int = 100

    @property
    def snapshot_sku(self) -> str:
        """The default snapshot sku: zone-redundant where the region has zones."""
        return "Standard_ZRS" if self.zones else "Standard_LRS"

    def zone_for(self, sku: str, zones: list[str] | None = None) -> str | None:
        """Where the engine keeps data of this sku: None (every zone: zone-redundant, or the
        only store of a region without zones), or the one zone a locally redundant resource
        lives in — its own (``zones``) if it has one, else the region's first."""
        if not self.zones or sku.endswith("_ZRS"):
            return None
        return zones[0] if zones and zones[0] in self.zones else self.zones[0]


@dataclass(frozen=True)
class Made:
    """What an engine call made: the engine id, the properties it fixes, and the work left to
    finish in the background (None: done)."""

    engine_id: str
    props: dict[str, Any]
    finish: Callable[[Engine], None] | None = None


@dataclass(frozen=True)
class Plan:
    """A validated creation: the body to record and the engine call that makes the data."""

    body: dict[str, Any]
    make: Callable[[Engine], Made]


def family_uuid(family_id: str) -> str:
    """An engine family id as the GUID ARM shows."""
    return str(uuid.UUID(hex=family_id))


def _option(data: CreationData, supported: tuple[str, ...], kind: str) -> str:
    for option in supported:
        if data.create_option.lower() == option.lower():
            return option
    raise InvalidParameter(
        f"createOption {data.create_option[:64]!r} is not supported for {kind}s; "
        f"supported: {', '.join(supported)}",
        target="properties.creationData.createOption",
    )


def settable(props: _CommonProperties) -> dict[str, Any]:
    """The writable properties a request set, with their ARM names; InvalidParameter for a
    customer-managed key (not supported yet)."""
    out = props.model_dump(by_alias=True, exclude_none=True, exclude={"disk_size_gb"})
    encryption = out.get("encryption")
    if encryption and encryption["type"] != "EncryptionAtRestWithPlatformKey":
        raise InvalidParameter(
            "customer-managed keys are not supported yet; use EncryptionAtRestWithPlatformKey",
            target="properties.encryption.type",
        )
    return out


def _with_defaults(out: dict[str, Any]) -> dict[str, Any]:
    out.setdefault("encryption", {"type": "EncryptionAtRestWithPlatformKey"})
    out.setdefault("networkAccessPolicy", "AllowAll")
    out.setdefault("publicNetworkAccess", "Enabled")
    return out


def gib_to_bytes(gb: int, target: str = "properties.diskSizeGB") -> int:
    """diskSizeGB as bytes, or InvalidParameter."""
    if not 1 <= gb <= MAX_DISK_BYTES // GiB:
        raise InvalidParameter(
            f"diskSizeGB must be between 1 and {MAX_DISK_BYTES // GiB}, not {gb}", target=target
        )
    return gb * GiB


def size_props(size: int) -> dict[str, Any]:
    return {"diskSizeBytes": size, "diskSizeGB": -(-size // GiB)}


def _source(lookup: Callable[[str], Record | None], data: CreationData) -> Record:
    if not data.source_resource_id:
        raise InvalidParameter(
            "createOption Copy needs creationData.sourceResourceId",
            target="properties.creationData.sourceResourceId",
        )
    rid = ResourceId.parse(data.source_resource_id)
    rec = lookup(rid.key)
    if rec is None or rec.state == "creating":
        raise ResourceNotFound(
            f"the source {rid.id} was not found in this region",
            target="properties.creationData.sourceResourceId",
        )
    if rec.state != "succeeded" or rec.engine_id is None:
        raise OperationNotAllowed(f"the source {rec.id} is busy; retry when it is Succeeded")
    return rec


def check_sku(region: Region, sku: str, zones: list[str] | None) -> None:
    """InvalidParameter unless the sku and zones fit the region: zones only where it has
    them, zone-redundant skus only there and never with a zone."""
    if zones:
        if not region.zones:
            raise InvalidParameter(
                f"region {region.name} has no availability zones", target="zones"
            )
        if zones[0] not in region.zones:
            raise InvalidParameter(
                f"zone {zones[0][:16]!r} is not one of {region.name}'s zones "
                f"({', '.join(region.zones)})",
                target="zones",
            )
    if sku.endswith("_ZRS"):
        if not region.zones:
            raise InvalidParameter(
                f"{sku} needs a region with zones; {region.name} offers LRS only",
                target="sku.name",
            )
        if zones:
            raise InvalidParameter(
                "a zone-redundant disk spans every zone: leave zones out", target="zones"
            )


def kept_options(data: CreationData) -> dict[str, Any]:
    """The creation options a resource keeps as asked (and a re-PUT may not change)."""
    return (
        {} if data.logical_sector_size is None else {"logicalSectorSize": data.logical_sector_size}
    )


def plan_disk(region: Region, body: DiskBody, lookup: Callable[[str], Record | None]) -> Plan:
    """A new disk: Empty (diskSizeGB), Upload (uploadSizeBytes) or Copy of a snapshot."""
    data = body.properties.creation_data
    option = _option(data, DISK_OPTIONS, "disk")
    sku = body.sku.name if body.sku else "Standard_LRS"
    check_sku(region, sku, body.zones)
    props = _with_defaults(settable(body.properties))
    creation: dict[str, Any] = {"createOption": option, **kept_options(data)}
    resting = "Unattached"
    gb = body.properties.disk_size_gb
    if option == "Empty":
        if gb is None:
            raise InvalidParameter(
                "createOption Empty needs properties.diskSizeGB", target="properties.diskSizeGB"
            )
        size = gib_to_bytes(gb)

        def make(engine: Engine) -> Made:
            return Made(engine.create_disk(size).id, size_props(size))

    elif option == "Upload":
        size = data.upload_size_bytes or 0
        if size % SECTOR or not MIN_UPLOAD_BYTES <= size <= MAX_DISK_BYTES:
            raise InvalidParameter(
                f"uploadSizeBytes must be a multiple of {SECTOR} between {MIN_UPLOAD_BYTES} "
                f"and {MAX_DISK_BYTES}",
                target="properties.creationData.uploadSizeBytes",
            )
        creation["uploadSizeBytes"] = size
        resting = "ReadyToUpload"

        def make(engine: Engine) -> Made:
            return Made(engine.create_disk(size).id, size_props(size))

    else:
        source = _source(lookup, data)
        if source.rtype != "snapshots":
            raise InvalidParameter(
                "a disk is copied from a snapshot; snapshot the source disk first",
                target="properties.creationData.sourceResourceId",
            )
        wanted = None if gb is None else gib_to_bytes(gb)
        if wanted is not None and wanted < source.props["diskSizeBytes"]:
            raise InvalidParameter(
                f"diskSizeGB {gb} is smaller than the source snapshot "
                f"({source.props['diskSizeBytes']} bytes)",
                target="properties.diskSizeGB",
            )
        creation.update(sourceResourceId=source.id, sourceUniqueId=source.unique_id)
        engine_source = source.engine_id
        assert engine_source is not None

        def make(engine: Engine) -> Made:
            disk = engine.restore_disk(engine_source, wanted)
            return Made(disk.id, size_props(disk.size_bytes))

    props["creationData"] = creation
    body_out = {
        "tags": body.tags or {},
        "sku": sku,
        "zones": body.zones or None,
        "properties": props,
    }
    body_out["restingState"] = resting
    return Plan(body_out, make)


def plan_snapshot(
    region: Region, rid: ResourceId, body: SnapshotBody, lookup: Callable[[str], Record | None]
) -> Plan:
    """A new snapshot: Copy of a disk (incremental unless asked otherwise or UltraSSD) or of a
    full snapshot (a new full snapshot)."""
    data = body.properties.creation_data
    _option(data, SNAPSHOT_OPTIONS, "snapshot")
    sku = body.sku.name if body.sku else region.snapshot_sku
    check_sku(region, sku, None)
    props = _with_defaults(settable(body.properties))
    source = _source(lookup, data)
    creation = {
        "createOption": "Copy",
        "sourceResourceId": source.id,
        "sourceUniqueId": source.unique_id,
        **kept_options(data),
    }
    engine_source = source.engine_id
    assert engine_source is not None
    if source.rtype == "disks":
        if source.body.get("restingState") == "ReadyToUpload":
            raise OperationNotAllowed(
                f"disk {source.id} is waiting for its upload; finish it first"
            )
        default = source.body.get("sku") != "UltraSSD_LRS"
        incremental = (
            default if body.properties.incremental is None else body.properties.incremental
        )
        if incremental and source.subscription != rid.subscription.lower():
            raise InvalidParameter(
                "an incremental snapshot must be in the subscription of its disk",
                target="properties.incremental",
            )

        zone = region.zone_for(sku, source.body.get("zones"))

        def make(engine: Engine) -> Made:
            snap = engine.freeze_snapshot(engine_source, incremental=incremental, zone=zone)
            props = _snapshot_props(snap.size_bytes, snap.family_id, incremental)
            return Made(snap.id, props, lambda e: e.seal_pending(engine_source))

    else:
        if source.props.get("incremental"):
            raise InvalidParameter(
                "an incremental snapshot is copied only to another region (CopyStart); "
                "within a region, copy a full snapshot or snapshot the disk",
                target="properties.creationData.sourceResourceId",
            )
        if body.properties.incremental:
            raise InvalidParameter(
                "a copy of a full snapshot is a full snapshot: leave incremental out or false",
                target="properties.incremental",
            )

        zone = region.zone_for(sku)

        def make(engine: Engine) -> Made:
            snap = engine.copy_snapshot(engine_source, zone)
            return Made(snap.id, _snapshot_props(snap.size_bytes, snap.family_id, False))

    props["creationData"] = creation
    return Plan({"tags": body.tags or {}, "sku": sku, "properties": props}, make)


def _snapshot_props(size: int, family: str, incremental: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        **size_props(size),
        "incremental": incremental,
        "snapshotAccessState": "Available",
        "completionPercent": 100,
    }
    if incremental:
        props["incrementalSnapshotFamilyId"] = family_uuid(family)
    return props
