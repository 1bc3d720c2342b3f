"""Request bodies of the disk and snapshot API, as pydantic models with the ARM field names.

Models are strict (a string is not a number) and ignore fields they do not know, as ARM does;
read-only fields a client echoes back after a GET (``diskSizeBytes``, ``completionPercent``, ...)
are ignored too. Validation errors become ``InvalidRequestContent`` at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from snapferry.control.errors import BadRequest

# ARM names only (never the Python ones): the front door reads a copy's source with these same
# models, so what it authorizes is exactly what the region will read.
_CONFIG = ConfigDict(extra="ignore", populate_by_name=False, strict=True)

Tags = Annotated[
    dict[Annotated[str, Field(max_length=512)], Annotated[str, Field(max_length=256)]],
    Field(max_length=50),
]
DISK_SKUS = (
    "Standard_LRS",
    "Premium_LRS",
    "StandardSSD_LRS",
    "UltraSSD_LRS",
    "Premium_ZRS",
    "StandardSSD_ZRS",
    "PremiumV2_LRS",
)
SNAPSHOT_SKUS = ("Standard_LRS", "Premium_LRS", "Standard_ZRS")


class DiskSku(BaseModel):
    model_config = _CONFIG
    name: Literal[DISK_SKUS]  # type: ignore[valid-type]


class SnapshotSku(BaseModel):
    model_config = _CONFIG
    name: Literal[SNAPSHOT_SKUS]  # type: ignore[valid-type]


class Encryption(BaseModel):
    model_config = _CONFIG
    type: Literal[
        "EncryptionAtRestWithPlatformKey",
        "EncryptionAtRestWithCustomerKey",
        "EncryptionAtRestWithPlatformAndCustomerKeys",
    ] = "EncryptionAtRestWithPlatformKey"
    disk_encryption_set_id: StrictStr | None = Field(None, alias="diskEncryptionSetId")


class CreationData(BaseModel):
    model_config = _CONFIG
    create_option: StrictStr = Field(alias="createOption", max_length=64)
    source_resource_id: StrictStr | None = Field(None, alias="sourceResourceId", max_length=1024)
    upload_size_bytes: StrictInt | None = Field(None, alias="uploadSizeBytes")
    logical_sector_size: Literal[512, 4096] | None = Field(None, alias="logicalSectorSize")
    provisioned_bandwidth_copy_speed: Literal["None", "Enhanced"] | None = Field(
        None, alias="provisionedBandwidthCopySpeed"
    )


class _CommonProperties(BaseModel):
    """Writable properties disks and snapshots share."""

    model_config = _CONFIG
    os_type: Literal["Windows", "Linux"] | None = Field(None, alias="osType")
    hyper_v_generation: Literal["V1", "V2"] | None = Field(None, alias="hyperVGeneration")
    encryption: Encryption | None = None
    network_access_policy: Literal["AllowAll", "AllowPrivate", "DenyAll"] | None = Field(
        None, alias="networkAccessPolicy"
    )
    public_network_access: Literal["Enabled", "Disabled"] | None = Field(
        None, alias="publicNetworkAccess"
    )
    data_access_auth_mode: Literal["AzureActiveDirectory", "None"] | None = Field(
        None, alias="dataAccessAuthMode"
    )
    supports_hibernation: StrictBool | None = Field(None, alias="supportsHibernation")
    disk_size_gb: StrictInt | None = Field(None, alias="diskSizeGB")


class DiskProperties(_CommonProperties):
    creation_data: CreationData = Field(alias="creationData")


class SnapshotProperties(_CommonProperties):
    creation_data: CreationData = Field(alias="creationData")
    incremental: StrictBool | None = None


class DiskBody(BaseModel):
    """PUT body of a disk."""

    model_config = _CONFIG
    location: StrictStr = Field(max_length=64)
    tags: Tags | None = None
    sku: DiskSku | None = None
    zones: Annotated[list[StrictStr], Field(max_length=1)] | None = None
    properties: DiskProperties


class SnapshotBody(BaseModel):
    """PUT body of a snapshot."""

    model_config = _CONFIG
    location: StrictStr = Field(max_length=64)
    tags: Tags | None = None
    sku: SnapshotSku | None = None
    properties: SnapshotProperties


class UpdateProperties(_CommonProperties):
    pass


class DiskUpdate(BaseModel):
    """PATCH body of a disk."""

    model_config = _CONFIG
    tags: Tags | None = None
    sku: DiskSku | None = None
    properties: UpdateProperties | None = None


class SnapshotUpdate(BaseModel):
    """PATCH body of a snapshot."""

    model_config = _CONFIG
    tags: Tags | None = None
    sku: SnapshotSku | None = None
    properties: UpdateProperties | None = None


class GrantAccess(BaseModel):
    """beginGetAccess body."""

    model_config = _CONFIG
    access: Literal["None", "Read", "Write"]
    duration_in_seconds: StrictInt = Field(alias="durationInSeconds", ge=1, le=14 * 24 * 3600)
    get_secure_vm_guest_state_sas: StrictBool | None = Field(None, alias="getSecureVMGuestStateSAS")
    file_format: Literal["VHD", "VHDX"] | None = Field(None, alias="fileFormat")


M = TypeVar("M", bound=BaseModel)

BODY_MODELS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "disks": (DiskBody, DiskUpdate),
    "snapshots": (SnapshotBody, SnapshotUpdate),
}
"""Resource type → (PUT model, PATCH model)."""


def parse(model: type[M], raw: object) -> M:
    """raw validated as model, or BadRequest naming every problem by its JSON path."""
    if isinstance(raw, model):
        return raw
    if not isinstance(raw, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        return model.model_validate(raw, by_alias=True)
    except ValidationError as exc:
        raise invalid_request(exc.errors(include_url=False, include_input=False)) from None


def invalid_request(problems: Sequence[Mapping[str, Any]]) -> BadRequest:
    """BadRequest naming up to ten validation problems by their JSON path (``body`` dropped)."""
    paths = [".".join(str(p) for p in err.get("loc", ()) if p != "body") for err in problems]
    parts = [
        f"{path or 'body'}: {err.get('msg', 'invalid')}"
        for path, err in zip(paths, problems, strict=True)
    ]
    return BadRequest(
        "the request is invalid: " + "; ".join(parts[:10]),
        target=(paths[0] if paths else None) or None,
    )
