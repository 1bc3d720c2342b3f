"""Tables of ARM resources (disks, snapshots, resource groups) for ``--output table``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import RenderableType

from snapferry.cli import output as out


def resource(res: Mapping[str, Any]) -> Iterable[RenderableType]:
    """One disk or snapshot as a two-column table."""
    props: Mapping[str, Any] = res.get("properties") or {}
    creation: Mapping[str, Any] = props.get("creationData") or {}
    is_snapshot = str(res.get("type", "")).lower().endswith("/snapshots")
    rows: list[tuple[str, object]] = [
        ("id", res.get("id", "")),
        ("location", res.get("location", "")),
        ("zones", ", ".join(res.get("zones") or []) or "-"),
        ("sku", (res.get("sku") or {}).get("name", "-")),
        ("size", size(props)),
        ("state", props.get("diskState", "-")),
        ("provisioning", props.get("provisioningState", "-")),
        ("created", props.get("timeCreated", "-")),
        ("created from", origin(creation)),
    ]
    if is_snapshot:
        rows += [
            ("incremental", "yes" if props.get("incremental") else "no"),
            ("family", props.get("incrementalSnapshotFamilyId") or "-"),
            ("completion", f"{props.get('completionPercent', '-')} %"),
            ("access state", props.get("snapshotAccessState", "-")),
        ]
    rows += [("unique id", props.get("uniqueId", "-")), ("tags", tag_text(res.get("tags")))]
    noun = "snapshot" if is_snapshot else "disk"
    yield out.kv_table(f"{noun} {group_of(res)}/{res.get('name', '')}", rows)


def listing(kind: str, items: Sequence[Mapping[str, Any]], group: str | None) -> RenderableType:
    """Disks or snapshots (kind), one row each."""
    scope = f"resource group {group}" if group else "the subscription"
    title = f"{len(items)} {kind} in {scope}"
    if kind == "disks":
        columns = ("name", "resource group", "location", "zones", "size", "sku", "state")
        rows = [
            (
                d.get("name", ""),
                group_of(d),
                d.get("location", ""),
                ",".join(d.get("zones") or []) or "-",
                size(d.get("properties") or {}),
                (d.get("sku") or {}).get("name", "-"),
                _state(d),
            )
            for d in items
        ]
        return out.grid_table(title, columns, rows)
    columns = ("name", "resource group", "location", "size", "kind", "source", "state")
    rows = [
        (
            s.get("name", ""),
            group_of(s),
            s.get("location", ""),
            size(s.get("properties") or {}),
            "incremental" if (s.get("properties") or {}).get("incremental") else "full",
            _short_source((s.get("properties") or {}).get("creationData") or {}),
            _state(s),
        )
        for s in items
    ]
    return out.grid_table(title, columns, rows)


def groups(items: Sequence[Mapping[str, Any]]) -> RenderableType:
    """Resource groups, one row each."""
    rows = [(g.get("name", ""), g.get("location", ""), tag_text(g.get("tags"))) for g in items]
    return out.grid_table(f"{len(items)} resource groups", ("name", "location", "tags"), rows)


def group(res: Mapping[str, Any]) -> RenderableType:
    """One resource group."""
    rows = [
        ("id", res.get("id", "")),
        ("location", res.get("location", "")),
        ("tags", tag_text(res.get("tags"))),
    ]
    return out.kv_table(f"resource group {res.get('name', '')}", rows)


def size(props: Mapping[str, Any]) -> str:
    """A resource's size for people: GiB when whole, else bytes."""
    size_bytes = props.get("diskSizeBytes")
    gb = props.get("diskSizeGB")
    if isinstance(size_bytes, int) and size_bytes % 1024**3 == 0:
        return f"{size_bytes // 1024**3} GiB"
    if isinstance(size_bytes, int):
        return out.size(size_bytes)
    return f"{gb} GiB" if gb is not None else "-"


def origin(creation: Mapping[str, Any]) -> str:
    """How a resource was made: ``Empty``, ``Upload``, or ``Copy of <source id>``."""
    option = str(creation.get("createOption", "-"))
    source = creation.get("sourceResourceId")
    return f"{option} of {source}" if source else option


def tag_text(tags: Mapping[str, str] | None) -> str:
    """``k=v, k2=v2`` or ``-``."""
    return ", ".join(f"{k}={v}" for k, v in sorted((tags or {}).items())) or "-"


def when(epoch: object) -> str:
    """Epoch seconds as UTC ISO time (or as given when not a number)."""
    if isinstance(epoch, int | float):
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    return str(epoch)


def group_of(res: Mapping[str, Any]) -> str:
    """The resource group named in a resource's id."""
    parts = str(res.get("id", "")).split("/")
    lower = [p.lower() for p in parts]
    return parts[lower.index("resourcegroups") + 1] if "resourcegroups" in lower[:-1] else ""


def _state(res: Mapping[str, Any]) -> str:
    props = res.get("properties") or {}
    provisioning = props.get("provisioningState", "-")
    if provisioning != "Succeeded":
        return str(provisioning)
    return str(props.get("diskState", "-"))


def _short_source(creation: Mapping[str, Any]) -> str:
    source = creation.get("sourceResourceId")
    return str(source).rsplit("/", 1)[-1] if source else "-"
